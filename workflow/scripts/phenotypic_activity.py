"""Per-gene phenotypic activity against the controls and the OOD classes chosen from it (rule phenotypic_activity)."""
from opsembed.evaluate.activity import run_activity
from opsembed.io.logs import script_logging

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    run_activity(snakemake.input.features, snakemake.input.curated, snakemake.params.ood,  # noqa: F821
                 snakemake.params.controls, snakemake.output.activity, snakemake.output.classes)  # noqa: F821
