"""Train GRAPE on the preprocessed crops, resuming from its checkpoint folder (rule train_grape)."""
import torch

from opsembed.io.logs import script_logging
from opsembed.train.grape_trainer import train_grape

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    train_grape(snakemake.input.cells, snakemake.params.cfg, snakemake.params.seed,  # noqa: F821
                snakemake.output.model, snakemake.output.losses, snakemake.output.samples,  # noqa: F821
                snakemake.params.checkpoint_dir, snakemake.params.tensorboard_dir)  # noqa: F821
