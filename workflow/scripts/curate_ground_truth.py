"""Curate each ground truth's complexes against the screened genes (rule curate_ground_truth)."""
from opsembed.evaluate.curate import curate_ground_truth
from opsembed.io.h5 import read_obs
from opsembed.io.logs import script_logging
from opsembed.io.tables import write_table

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    screened = read_obs(snakemake.input.cells)["gene"].astype(str).unique()  # noqa: F821
    # the primary ground truth first, then the further ones (rules/common.smk GROUND_TRUTHS)
    outputs = [(snakemake.output.curated, snakemake.output.log_table)]  # noqa: F821
    outputs += list(zip(snakemake.output.extra, snakemake.output.extra_logs))  # noqa: F821
    for path, (curated_path, log_path) in zip(snakemake.input.ground_truth, outputs, strict=True):  # noqa: F821
        curated, log_table = curate_ground_truth(path, screened, snakemake.params.controls,  # noqa: F821
                                                 snakemake.params.cfg)  # noqa: F821
        write_table(curated, curated_path)
        write_table(log_table, log_path)
