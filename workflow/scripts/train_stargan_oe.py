"""Train StarGAN v2 over the OEs of one OOD fold (GRAPE's backbone), resuming (rule train_stargan_oe)."""
import torch

from opsembed.io.logs import script_logging
from opsembed.train.stargan_trainer import train_stargan

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    train_stargan(snakemake.input.cells, snakemake.params.ood, snakemake.params.cfg,  # noqa: F821
                  snakemake.wildcards.fold, snakemake.params.seed, snakemake.output.model,  # noqa: F821
                  snakemake.output.losses, snakemake.output.samples, snakemake.params.checkpoint_dir,  # noqa: F821
                  snakemake.input.classes)  # noqa: F821
