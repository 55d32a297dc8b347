"""cells.h5: obs, attributes and a virtual dataset over the z-scored well files (rule merge_cells)."""
from opsembed.io.logs import script_logging
from opsembed.preprocess.merge import merge_virtual

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    merge_virtual(
        list(snakemake.input.wells),  # noqa: F821
        snakemake.output.h5,  # noqa: F821
        snakemake.input.stats,  # noqa: F821
        controls=snakemake.params.controls,  # noqa: F821
        batch_key=snakemake.params.batch_key,  # noqa: F821
        channels=list(snakemake.params.channels),  # noqa: F821
        seed=int(snakemake.params.seed),  # noqa: F821
        crop_size=int(snakemake.params.crop_size),  # noqa: F821
    )
