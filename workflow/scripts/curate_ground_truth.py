"""Curate the protein complexes against the screened genes (rule curate_ground_truth)."""
from opsembed.evaluate.curate import curate_ground_truth
from opsembed.io.h5 import read_obs
from opsembed.io.logs import script_logging
from opsembed.io.tables import write_table

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    screened = read_obs(snakemake.input.cells)["gene"].astype(str).unique()  # noqa: F821
    curated, log_table = curate_ground_truth(
        snakemake.input.ground_truth, screened, snakemake.params.controls,  # noqa: F821
        snakemake.params.cfg)  # noqa: F821
    write_table(curated, snakemake.output.curated)  # noqa: F821
    write_table(log_table, snakemake.output.log_table)  # noqa: F821
