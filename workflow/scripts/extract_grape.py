"""Write GRAPE's embeddings at positions 1, 2 and 3 (rule extract_grape)."""
import torch

from opsembed.io.logs import script_logging
from opsembed.train.grape_trainer import extract_grape

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    extract_grape(snakemake.input.model, snakemake.input.cells, snakemake.output.p1,  # noqa: F821
                  snakemake.output.p2, snakemake.output.p3, snakemake.params.cfg,  # noqa: F821
                  snakemake.params.seed)  # noqa: F821
