"""Frozen GRAPE style-encoder features of the Source rows and the screen's cells, for the
vae_features variant (rule vae_deep_features)."""
import torch

from opsembed.io.logs import script_logging
from opsembed.train.vae_features import grape_features

smk = snakemake  # noqa: F821  (snakemake is injected)
with script_logging(smk.log[0]):
    torch.set_num_threads(smk.threads)
    grape_features(smk.input.grape, smk.input.source, smk.input.cells, smk.params.cfg, smk.output.source,
                   smk.output.screen)
