"""Pretrained gene2vec vectors restricted to the screened genes (rule embed_gene2vec)."""
from opsembed.io.logs import script_logging
from opsembed.models.gene2vec import run_gene2vec

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    run_gene2vec(snakemake.input.cells, snakemake.input.vectors, snakemake.output.embeddings)  # noqa: F821
