"""Fit one plate's BaSiC flatfield/darkfield on sampled tiles (rule fit_flatfield)."""
from opsembed.io.logs import script_logging
from opsembed.preprocess.flatfield import run_fit_flatfield

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    run_fit_flatfield(
        list(snakemake.params.tile_refs),  # noqa: F821  (one per tile; {channel} left in)
        snakemake.output.model,  # noqa: F821
        snakemake.output.qc,  # noqa: F821
        cfg=snakemake.params.cfg,  # noqa: F821
        channels=list(snakemake.params.channels),  # noqa: F821
        seed=int(snakemake.params.seed),  # noqa: F821
        plate=snakemake.wildcards.plate,  # noqa: F821
        threads=snakemake.threads,  # noqa: F821
        channel_tokens=dict(snakemake.params.channel_tokens),  # noqa: F821
        tiles_pattern=snakemake.params.tiles,  # noqa: F821
    )
