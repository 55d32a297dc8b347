"""Curate the protein complexes against the screened genes (rule curate_ground_truth)."""
from opsembed.evaluate.curate import curate_complexes
from opsembed.io.ground_truth import read_complexes
from opsembed.io.h5 import read_obs
from opsembed.io.logs import script_logging
from opsembed.io.tables import write_table

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    cfg = snakemake.params.cfg  # noqa: F821
    screened = read_obs(snakemake.input.cells)["gene"].astype(str).unique()  # noqa: F821
    curated, log_table = curate_complexes(
        read_complexes(snakemake.input.ground_truth), screened,  # noqa: F821
        snakemake.params.controls, cfg["min_genes"], cfg["max_genes"],  # noqa: F821
        cfg["max_complexes"], cfg["seed"])
    write_table(curated, snakemake.output.curated)  # noqa: F821
    write_table(log_table, snakemake.output.log_table)  # noqa: F821
