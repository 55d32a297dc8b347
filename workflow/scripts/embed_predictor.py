"""Gene embedding of a predictor: mean penultimate feature per gene (rule embed_predictor)."""
import torch

from opsembed.io.logs import script_logging
from opsembed.train.predictor_trainer import embed_predictor

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    embed_predictor(snakemake.input.cells, snakemake.input.model, snakemake.output.embeddings,  # noqa: F821
                    snakemake.params.cfg)  # noqa: F821
