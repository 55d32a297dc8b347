"""Per-cell features in pycytominer's conventions (rules export_cell_profiles, export_predictor_cells)."""
from opsembed.evaluate.export import write_cell_profiles
from opsembed.io.h5 import read_obs
from opsembed.io.logs import script_logging

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    write_cell_profiles(snakemake.input.features, snakemake.output.profiles,  # noqa: F821
                        obs=read_obs(snakemake.input.cells))  # noqa: F821
