"""Latent traversal strips of the Source and fine-tuned pixel VAEs (rule vae_traversals)."""
import torch

from opsembed.io.logs import script_logging
from opsembed.train.vae_extract import vae_traversals

smk = snakemake  # noqa: F821  (snakemake is injected)
with script_logging(smk.log[0]):
    torch.set_num_threads(smk.threads)
    vae_traversals(smk.input.source_model, smk.input.model, smk.input.source_codes, smk.input.screen_codes,
                   smk.output.source_traversals, smk.output.traversals)
