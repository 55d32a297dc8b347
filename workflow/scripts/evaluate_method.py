"""Score one method's gene embeddings against each curated ground truth (rule evaluate_method)."""
from pathlib import Path

from opsembed.evaluate.benchmark import evaluate_ground_truths
from opsembed.io.embeddings import read_embeddings
from opsembed.io.logs import script_logging
from opsembed.io.tables import read_table

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    out_dir = Path(snakemake.output.metrics).parent  # noqa: F821  (ksweep, umap go there too)
    paths = [snakemake.input.curated, *snakemake.input.extra]  # noqa: F821
    evaluate_ground_truths(
        read_embeddings(snakemake.input.embeddings),  # noqa: F821
        {name: read_table(p) for name, p in zip(snakemake.params.ground_truths, paths, strict=True)},  # noqa: F821
        snakemake.params.cfg, snakemake.wildcards.method, out_dir,  # noqa: F821
        controls=snakemake.params.controls,  # noqa: F821
        threads=snakemake.threads)  # noqa: F821
