"""Per-batch z-score statistics from the wells' control moments, and summary.tsv (rule combine_moments)."""
from opsembed.io.logs import script_logging
from opsembed.preprocess.merge import combine_moments

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    combine_moments(
        list(snakemake.input.moments),  # noqa: F821
        snakemake.input.cells,  # noqa: F821
        snakemake.output.zscore,  # noqa: F821
        snakemake.output.stats,  # noqa: F821
        snakemake.output.summary,  # noqa: F821
        batch_key=snakemake.params.batch_key,  # noqa: F821
        channels=list(snakemake.params.channels),  # noqa: F821
        crop_size=int(snakemake.params.crop_size),  # noqa: F821
    )
