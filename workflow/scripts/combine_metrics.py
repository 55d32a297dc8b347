"""Combine the per-method metrics into one table and one k-sweep figure (rule combine_metrics)."""
from opsembed.evaluate.benchmark import combine_metrics
from opsembed.io.logs import script_logging

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    combine_metrics(list(snakemake.input.metrics), list(snakemake.input.ksweeps),  # noqa: F821
                    snakemake.output.table, snakemake.output.ksweep_png)  # noqa: F821
