"""Simulate the demo screen: tiles, cell table, complexes and true factors (rule simulate_demo)."""

from opsembed.io.logs import script_logging
from opsembed.simulate.screen import simulate_screen

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    simulate_screen(
        snakemake.params.sim,  # noqa: F821
        snakemake.params.channels,  # noqa: F821
        snakemake.params.controls,  # noqa: F821
        snakemake.params.tiles,  # noqa: F821
        snakemake.output.cells,  # noqa: F821
        snakemake.output.ground_truth,  # noqa: F821
        snakemake.output.factors,  # noqa: F821
    )
