"""Write IMPA's gene embeddings: mean style codes per gene (rule extract_impa)."""
import torch

from opsembed.io.logs import script_logging
from opsembed.train.impa_trainer import extract_impa

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    extract_impa(snakemake.input.model, snakemake.input.cells, snakemake.output.embeddings,  # noqa: F821
                 snakemake.params.cfg, snakemake.params.seed)  # noqa: F821
