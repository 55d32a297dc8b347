"""Latent codes of Source and screen under the Source, fine-tuned and random VAEs, and the
gene embedding (rule extract_vae)."""
import torch

from opsembed.io.logs import script_logging
from opsembed.train.vae_extract import extract_vae, read_features

smk = snakemake  # noqa: F821  (snakemake is injected)
with script_logging(smk.log[0]):
    torch.set_num_threads(smk.threads)
    features = None
    if "source_features" in smk.input.keys():
        features = {"source": read_features(smk.input.source_features),
                    "screen": read_features(smk.input.screen_features)}
    out = {key: smk.output[key] for key in smk.output.keys()}
    extract_vae(smk.input.source_model, smk.input.model, smk.input.source, smk.input.cells, smk.params.cfg,
                smk.params.seed, out, features)
