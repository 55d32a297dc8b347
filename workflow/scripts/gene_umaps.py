"""The UMAP of every method's gene embeddings, in one process (rule gene_umaps)."""
from pathlib import Path

from opsembed.evaluate.benchmark import write_gene_umaps
from opsembed.io.embeddings import read_embeddings
from opsembed.io.logs import script_logging
from opsembed.io.tables import read_table

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    methods = snakemake.params.methods  # noqa: F821
    write_gene_umaps(
        {m: read_embeddings(p) for m, p in zip(methods, snakemake.input.embeddings, strict=True)},  # noqa: F821
        read_table(snakemake.input.curated), snakemake.params.cfg,  # noqa: F821
        {m: Path(p).parent for m, p in zip(methods, snakemake.output.umaps, strict=True)},  # noqa: F821
        controls=snakemake.params.controls)  # noqa: F821
