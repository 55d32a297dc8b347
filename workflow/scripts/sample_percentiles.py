"""Draw one plate's pixel sample for the rescaling percentiles (rule sample_percentiles)."""
from opsembed.io.logs import script_logging
from opsembed.preprocess.rescale import run_plate_sample

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    run_plate_sample(
        snakemake.input.cells,  # noqa: F821
        snakemake.input.flatfield,  # noqa: F821
        snakemake.output.sample,  # noqa: F821
        plate=snakemake.wildcards.plate,  # noqa: F821
        plates=list(snakemake.params.plates),  # noqa: F821
        cfg=snakemake.params.cfg,  # noqa: F821
        channels=list(snakemake.params.channels),  # noqa: F821
        seed=int(snakemake.params.seed),  # noqa: F821
        tiles_pattern=snakemake.params.tiles,  # noqa: F821
        channel_tokens=dict(snakemake.params.channel_tokens),  # noqa: F821
    )
