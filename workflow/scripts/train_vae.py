"""Train the VAE on Source (rule train_vae_source) or fine-tune it on the screen (rule
train_vae), resuming from its checkpoint folder. ``input.features``: the deep features of
the rows, for the vae_features variant."""
import torch

from opsembed.io.logs import script_logging
from opsembed.train.vae_extract import read_features
from opsembed.train.vae_trainer import finetune_vae, train_vae_source

smk = snakemake  # noqa: F821  (snakemake is injected)
with script_logging(smk.log[0]):
    torch.set_num_threads(smk.threads)
    features = read_features(smk.input.features) if "features" in smk.input.keys() else None
    outputs = (smk.output.model, smk.output.losses, smk.output.samples, smk.params.checkpoint_dir,
               smk.params.tensorboard_dir)
    name = smk.wildcards.vae
    if smk.rule == "train_vae_source":
        train_vae_source(smk.input.source, smk.params.cfg, smk.params.seed, *outputs, features=features,
                         name=f"{name}_source")
    else:
        finetune_vae(smk.input.cells, smk.input.source_model, smk.params.cfg, smk.params.seed, *outputs,
                     features=features, name=name)
