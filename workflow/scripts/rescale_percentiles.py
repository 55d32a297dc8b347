"""Estimate the low/high rescaling percentiles per plate and channel (rule rescale_percentiles)."""
from opsembed.io.logs import script_logging
from opsembed.preprocess.rescale import run_rescale_percentiles

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    run_rescale_percentiles(
        snakemake.input.cells,  # noqa: F821
        list(snakemake.input.flatfields),  # noqa: F821
        snakemake.output.table,  # noqa: F821
        snakemake.output.get("qc"),  # noqa: F821  (optional output)
        cfg=snakemake.params.cfg,  # noqa: F821
        channels=list(snakemake.params.channels),  # noqa: F821
        plates=list(snakemake.params.plates),  # noqa: F821
        seed=int(snakemake.params.seed),  # noqa: F821
        tiles_pattern=snakemake.params.tiles,  # noqa: F821
        channel_tokens=dict(snakemake.params.channel_tokens),  # noqa: F821
    )
