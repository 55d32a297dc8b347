"""Merge the well crop files into cells.h5, z-scored against each batch's controls (rule merge_cells)."""
from opsembed.io.logs import script_logging
from opsembed.preprocess.merge import merge_cells

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    merge_cells(
        list(snakemake.input.crops),  # noqa: F821
        snakemake.input.cells,  # noqa: F821
        snakemake.output.h5,  # noqa: F821
        snakemake.output.zscore,  # noqa: F821
        snakemake.output.summary,  # noqa: F821
        controls=snakemake.params.controls,  # noqa: F821
        batch_key=snakemake.params.batch_key,  # noqa: F821
        channels=list(snakemake.params.channels),  # noqa: F821
        seed=int(snakemake.params.seed),  # noqa: F821
        crop_size=int(snakemake.params.crop_size),  # noqa: F821
    )
