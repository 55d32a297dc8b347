"""The generative check of GRAPE or IMPA: quality metrics and engineered features of real and
restyled cells (rules generative_check_grape, generative_check_impa)."""
import torch

from opsembed.evaluate.generative import generative_check
from opsembed.io.logs import script_logging

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    generative_check(snakemake.input.model, snakemake.input.cells, snakemake.output.table,  # noqa: F821
                     snakemake.output.figure, snakemake.params.n_cells, snakemake.params.seed,  # noqa: F821
                     threads=snakemake.threads, device=snakemake.params.device,  # noqa: F821
                     features_path=snakemake.output.features,  # noqa: F821
                     ground_truth_path=snakemake.input.ground_truth)  # noqa: F821
