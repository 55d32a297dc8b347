"""Train IMPA (control -> perturbed), resuming from its checkpoint folder (rule train_impa).

``input.embedding`` (optional): an embedding TSV, e.g. gene2vec's, used as the frozen
perturbation embedding; without it the embedding is trained.
"""
import torch

from opsembed.io.logs import script_logging
from opsembed.train.impa_trainer import train_impa

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    train_impa(snakemake.input.cells, snakemake.params.cfg, snakemake.params.seed,  # noqa: F821
               snakemake.output.model, snakemake.output.losses, snakemake.output.samples,  # noqa: F821
               snakemake.params.checkpoint_dir, snakemake.params.tensorboard_dir,  # noqa: F821
               embedding_path=snakemake.input.embedding or None)  # noqa: F821
