"""Every method's gene embedding, the curated complexes, cell counts and metrics in one
AnnData (rule export_anndata)."""
from opsembed.evaluate.export import write_gene_anndata
from opsembed.io.embeddings import read_embeddings
from opsembed.io.h5 import read_obs
from opsembed.io.logs import script_logging
from opsembed.io.tables import read_table

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    methods = snakemake.params.methods  # noqa: F821
    embeddings = {m: read_embeddings(p) for m, p in zip(methods, snakemake.input.embeddings)}  # noqa: F821
    write_gene_anndata(
        snakemake.output.h5ad,  # noqa: F821
        embeddings,
        read_table(snakemake.input.curated),  # noqa: F821
        read_obs(snakemake.input.cells)["gene"].astype(str).to_numpy(),  # noqa: F821
        read_table(snakemake.input.metrics),  # noqa: F821
        seeds=snakemake.params.seeds,  # noqa: F821
        controls=snakemake.params.controls,  # noqa: F821
    )
