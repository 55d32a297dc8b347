"""Z-score one well's crops against its batches' controls (rule zscore_well)."""
from opsembed.io.logs import script_logging
from opsembed.preprocess.merge import zscore_well

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    zscore_well(snakemake.input.crops, snakemake.input.stats, snakemake.output.h5)  # noqa: F821
