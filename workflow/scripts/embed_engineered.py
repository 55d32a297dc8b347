"""Classical per-cell features -> PCA -> per-gene mean (rule embed_engineered)."""
from opsembed.io.logs import script_logging
from opsembed.models.engineered import run_engineered

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    run_engineered(
        snakemake.input.cells,  # noqa: F821
        snakemake.params.cfg,  # noqa: F821
        embeddings_path=snakemake.output.embeddings,  # noqa: F821
        features_path=snakemake.output.features,  # noqa: F821
        threads=snakemake.threads,  # noqa: F821
    )
