"""Seeded Gaussian gene embeddings (rule embed_random)."""
from opsembed.io.logs import script_logging
from opsembed.models.random import run_random

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    run_random(snakemake.input.cells, snakemake.params.cfg, snakemake.output.embeddings)  # noqa: F821
