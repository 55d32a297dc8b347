"""Check one plate's tiles and its cells' coordinates (rule validate_tiles)."""
from opsembed.io.logs import script_logging
from opsembed.preprocess.validate import run_validate_tiles

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    run_validate_tiles(
        snakemake.input.cells,  # noqa: F821
        snakemake.output.table,  # noqa: F821
        plate=snakemake.wildcards.plate,  # noqa: F821
        channels=list(snakemake.params.channels),  # noqa: F821
        tiles_pattern=snakemake.params.tiles,  # noqa: F821
        crop_size=int(snakemake.params.crop_size),  # noqa: F821
        channel_tokens=dict(snakemake.params.channel_tokens),  # noqa: F821
    )
