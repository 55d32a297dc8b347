"""The OOD table (method x metric), the IST restyle table and the UMAPs of the IID fold's features (rule combine_ood)."""
from opsembed.evaluate.ood_eval import combine_ood, combine_restyle, umap_figure
from opsembed.io.logs import script_logging

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    combine_ood(snakemake.input.metrics, snakemake.output.table, snakemake.output.folds)  # noqa: F821
    combine_restyle(snakemake.input.restyle, snakemake.output.restyle)  # noqa: F821
    umap_figure(snakemake.input.features, snakemake.params.methods, snakemake.output.umap,  # noqa: F821
                snakemake.params.umap, snakemake.params.max_cells)  # noqa: F821
