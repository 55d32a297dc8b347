"""Render the VAE's Source dataset of known factors (rule vae_source_dataset)."""

from opsembed.io.logs import script_logging
from opsembed.simulate.factors import write_source

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    p = snakemake.params  # noqa: F821
    write_source(snakemake.output.h5, p.channels, p.crop_size, p.size, p.repeats, p.seed,  # noqa: F821
                 p.low, p.high)
