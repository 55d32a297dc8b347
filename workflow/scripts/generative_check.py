"""GRAPE's generative check: engineered features of real and restyled cells (rule generative_check_grape)."""
import torch

from opsembed.evaluate.generative import generative_check
from opsembed.io.logs import script_logging

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    generative_check(snakemake.input.model, snakemake.input.cells, snakemake.output.table,  # noqa: F821
                     snakemake.output.figure, snakemake.params.n_cells, snakemake.params.seed,  # noqa: F821
                     threads=snakemake.threads, device=snakemake.params.device)  # noqa: F821
