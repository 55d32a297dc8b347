"""The demo's coarser second ground truth: pairs of alike complexes (rule demo_processes)."""
from opsembed.evaluate.demo_truth import phenotype_pairs
from opsembed.io.ground_truth import read_complexes, write_long
from opsembed.io.logs import script_logging
from opsembed.simulate.complexes import PHENOTYPES
from opsembed.simulate.phenotypes import EFFECTS

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    groups = phenotype_pairs(read_complexes(snakemake.input.complexes), PHENOTYPES, EFFECTS)  # noqa: F821
    write_long(groups, snakemake.output.processes)  # noqa: F821
