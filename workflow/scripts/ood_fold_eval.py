"""Score one predictor on its OOD fold: predictions, metrics, features (rule ood_fold_eval)."""
import torch

from opsembed.evaluate.ood_eval import evaluate_fold
from opsembed.io.logs import script_logging

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    evaluate_fold(snakemake.input.cells, snakemake.params.ood, snakemake.params.cfg,  # noqa: F821
                  snakemake.wildcards.fold, snakemake.input.model, snakemake.output.predictions,  # noqa: F821
                  snakemake.output.metrics, snakemake.output.features,  # noqa: F821
                  snakemake.input.get("generator"), snakemake.input.classes)  # noqa: F821
