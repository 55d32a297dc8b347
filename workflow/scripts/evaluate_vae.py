"""MIG/DCI, the Table-2 classifiers and the MI heat maps of the VAEs (rule evaluate_vae)."""

from opsembed.evaluate.vae_eval import evaluate_vae
from opsembed.io.logs import script_logging

smk = snakemake  # noqa: F821  (snakemake is injected)
with script_logging(smk.log[0]):
    p = smk.params
    codes = {variant: {key: f"results/vae/codes/{variant}/{key}.tsv" for key in p.code_keys} for variant in p.variants}
    out = {key: smk.output[key] for key in smk.output.keys()}
    evaluate_vae(codes, smk.input.curated, p.controls, p.cfg, p.seed, out, smk.input.factors or None)
