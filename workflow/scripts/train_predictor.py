"""Train one gene predictor (naive, dr, mixstyle, stargan, ist) on one OOD fold (rule train_predictor)."""
import torch

from opsembed.io.logs import script_logging
from opsembed.train.predictor_trainer import train_predictor

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    train_predictor(snakemake.wildcards.predictor, snakemake.input.cells, snakemake.params.ood,  # noqa: F821
                    snakemake.params.cfg, snakemake.wildcards.fold, snakemake.params.seed,  # noqa: F821
                    snakemake.output.model, snakemake.output.losses, snakemake.output.samples,  # noqa: F821
                    snakemake.params.checkpoint_dir, snakemake.input.get("generator"),  # noqa: F821
                    snakemake.input.classes)  # noqa: F821
