"""Corrected, rescaled single-cell crops of one well and its control moments (rule crop_well)."""
from opsembed.io.logs import script_logging
from opsembed.preprocess.crops import run_crop_well

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    run_crop_well(
        snakemake.input.cells,  # noqa: F821
        snakemake.input.flatfield,  # noqa: F821
        snakemake.input.percentiles,  # noqa: F821
        snakemake.output.crops,  # noqa: F821
        crop_cfg=snakemake.params.crop,  # noqa: F821
        channels=list(snakemake.params.channels),  # noqa: F821
        tiles_pattern=snakemake.params.tiles,  # noqa: F821
        plate=snakemake.wildcards.plate,  # noqa: F821
        well=snakemake.wildcards.well,  # noqa: F821
        channel_tokens=dict(snakemake.params.channel_tokens),  # noqa: F821
        moments_path=snakemake.output.moments,  # noqa: F821
        controls=snakemake.params.controls,  # noqa: F821
    )
