"""The low/high rescaling percentiles per plate and channel from the plates' samples (rule rescale_percentiles)."""
from opsembed.io.logs import script_logging
from opsembed.preprocess.rescale import combine_percentiles

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    combine_percentiles(
        list(snakemake.input.samples),  # noqa: F821
        list(snakemake.params.plates),  # noqa: F821
        snakemake.output.table,  # noqa: F821
        snakemake.output.get("qc"),  # noqa: F821  (optional output)
        cfg=snakemake.params.cfg,  # noqa: F821
        channels=list(snakemake.params.channels),  # noqa: F821
    )
