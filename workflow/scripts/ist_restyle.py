"""Phenotype kept and style taken of a fold's IST restyles (rule ist_restyle)."""
import torch

from opsembed.evaluate.ood_eval import restyle_metrics
from opsembed.io.logs import script_logging

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    restyle_metrics(snakemake.input.cells, snakemake.params.ood, snakemake.params.cfg,  # noqa: F821
                    snakemake.wildcards.fold, snakemake.input.generator, snakemake.output.restyle,  # noqa: F821
                    snakemake.input.classes)  # noqa: F821
