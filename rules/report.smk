# The self-contained HTML report: results/report.html.


rule report:
    input:
        metrics="results/evaluation/metrics.tsv",
        ksweep_png="results/evaluation/ksweep.png",
        umaps=method_umaps,
        heatmaps=expand("results/evaluation/{method}/heatmap.png", method=method_names()),
        complex_aps=expand("results/evaluation/{method}/complex_ap.png", method=method_names()),
        ap_tables=expand("results/evaluation/{method}/ap_per_gene.tsv", method=method_names()),
        curated="results/evaluation/ground_truth.tsv",
        curation_log="results/evaluation/ground_truth_log.tsv",
        cells="results/preprocess/cells.h5",
        summary="results/preprocess/summary.tsv",
        percentiles="results/preprocess/percentiles.tsv",
        flatfield_qc=flatfield_figures,
        zscore="results/preprocess/zscore.tsv",
        training=training_outputs,
        benchmarks=benchmark_outputs,
    output:
        html=report(
            "results/report.html",
            caption="../workflow/report/report.rst",
            category="Report",
        ),
    params:
        methods=method_names(),
        config=config,
        training=training_runs(),
        benchmarks=BENCHMARKS,
    log:
        "results/logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        "../envs/report.yaml"
    script:
        "../workflow/scripts/report.py"
