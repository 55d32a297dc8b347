"""Train the IST style-transfer model of one OOD fold, resuming from its checkpoint folder (rule train_ist)."""
import torch

from opsembed.io.logs import script_logging
from opsembed.train.ist_trainer import train_ist

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    train_ist(snakemake.input.cells, snakemake.params.ood, snakemake.params.cfg,  # noqa: F821
              snakemake.wildcards.fold, snakemake.params.seed, snakemake.output.model,  # noqa: F821
              snakemake.output.losses, snakemake.output.samples, snakemake.params.checkpoint_dir,  # noqa: F821
              snakemake.input.classes)  # noqa: F821
