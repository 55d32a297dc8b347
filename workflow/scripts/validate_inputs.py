"""Check the cell table and ground truth before any long work (rule validate_inputs)."""
from opsembed.evaluate.curate import curate_ground_truth
from opsembed.io.logs import script_logging
from opsembed.preprocess.validate import run_validate_inputs

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    ground_truths = list(snakemake.input.ground_truth)  # noqa: F821  (the primary one first)
    run_validate_inputs(
        snakemake.input.cells,  # noqa: F821
        ground_truths[0],
        snakemake.output.cells,  # noqa: F821
        columns=snakemake.params.columns,  # noqa: F821
        preset=snakemake.params.preset,  # noqa: F821
        channels=list(snakemake.params.channels),  # noqa: F821
        controls=snakemake.params.controls,  # noqa: F821
        batch_key=snakemake.params.batch_key,  # noqa: F821
        tiles_pattern=None,  # the tiles: rules validate_tiles (per plate) and check_tiles
        crop_size=None,
        text_columns=list(snakemake.params.text_columns),  # noqa: F821
        # each ground truth must leave >= 2 usable complexes: curation itself, run now
        check_genes=lambda genes: [curate_ground_truth(
            path, genes, snakemake.params.controls,  # noqa: F821
            snakemake.params.ground_truth) for path in ground_truths],  # noqa: F821
    )
