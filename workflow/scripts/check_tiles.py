"""Check that every plate's tiles share one shape (rule check_tiles)."""
from opsembed.io.logs import script_logging
from opsembed.preprocess.validate import run_check_tiles

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    run_check_tiles(list(snakemake.input.plates), snakemake.output.table)  # noqa: F821
