"""Write the self-contained HTML report (rule report)."""
from opsembed.io.logs import script_logging
from opsembed.report.build import build_report

with script_logging(snakemake.log[0]):  # noqa: F821  (snakemake is injected)
    inp = snakemake.input  # noqa: F821
    build_report(
        snakemake.output.html,  # noqa: F821
        metrics=inp.metrics,
        ksweep_png=inp.ksweep_png,
        umaps=inp.umaps,
        curated=inp.curated,
        curation_log=inp.curation_log,
        cells=inp.cells,
        summary=inp.summary,
        percentiles=inp.percentiles,
        flatfield_qc=inp.flatfield_qc,
        zscore=inp.zscore,
        methods=list(snakemake.params.methods),  # noqa: F821
        config=snakemake.params.config,  # noqa: F821
        training=snakemake.params.training,  # noqa: F821
        benchmarks=snakemake.params.benchmarks,  # noqa: F821
        heatmaps=inp.heatmaps,
        complex_aps=inp.complex_aps,
        ap_tables=inp.ap_tables,
        montage_cells=4,
    )
