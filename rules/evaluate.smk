# Evaluation against protein complexes: curate each ground truth once, score every
# method against each (mAP, repeated k-means, k sweep, recall; figures for the primary
# one), combine into one table (one row per method and ground truth); the UMAPs of all
# methods in one job (umap-learn compiles its numba code once per process, ~15 s).


rule demo_processes:
    input:
        complexes=DEMO_INPUT["ground_truth"],
    output:
        processes=f"{DEMO_DIR}/processes.tsv",
    log:
        "results/logs/demo_processes.log",
    benchmark:
        "results/benchmarks/demo_processes.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../workflow/scripts/demo_processes.py"


rule curate_ground_truth:
    input:
        ground_truth=list(GROUND_TRUTHS.values()),
        cells="results/preprocess/cells.h5",
    output:
        curated="results/evaluation/ground_truth.tsv",
        log_table="results/evaluation/ground_truth_log.tsv",
        extra=expand("results/evaluation/ground_truths/{name}.tsv", name=EXTRA_GROUND_TRUTHS),
        extra_logs=expand("results/evaluation/ground_truths/{name}_log.tsv", name=EXTRA_GROUND_TRUTHS),
    params:
        cfg=config["evaluation"]["ground_truth"],
        controls=config["controls"],
    log:
        "results/logs/curate_ground_truth.log",
    benchmark:
        "results/benchmarks/curate_ground_truth.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../workflow/scripts/curate_ground_truth.py"


rule evaluate_method:
    input:
        embeddings="results/embeddings/{method}.tsv",
        curated="results/evaluation/ground_truth.tsv",
        extra=expand("results/evaluation/ground_truths/{name}.tsv", name=EXTRA_GROUND_TRUTHS),
    output:
        metrics="results/evaluation/{method}/metrics.tsv",
        ksweep="results/evaluation/{method}/ksweep.tsv",
        heatmap=report(
            "results/evaluation/{method}/heatmap.png",
            caption="../workflow/report/heatmap.rst",
            category="Gene embeddings",
            labels={"figure": "similarity heat map", "method": "{method}"},
        ),
        complex_ap=report(
            "results/evaluation/{method}/complex_ap.png",
            caption="../workflow/report/complex_ap.rst",
            category="Gene embeddings",
            labels={"figure": "AP per complex", "method": "{method}"},
        ),
        ap_per_gene="results/evaluation/{method}/ap_per_gene.tsv",
        map_per_complex="results/evaluation/{method}/map_per_complex.tsv",
        extra=expand("results/evaluation/{{method}}/ground_truths/{name}/metrics.tsv", name=EXTRA_GROUND_TRUTHS),
    params:
        cfg=config["evaluation"],
        controls=config["controls"],
        ground_truths=list(GROUND_TRUTHS),
    log:
        "results/logs/evaluate_method/{method}.log",
    benchmark:
        "results/benchmarks/evaluate_method/{method}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../workflow/scripts/evaluate_method.py"


rule gene_umaps:
    input:
        embeddings=expand("results/embeddings/{method}.tsv", method=method_names()),
        curated="results/evaluation/ground_truth.tsv",
    output:
        umaps=[
            report(
                f"results/evaluation/{method}/umap.png",
                caption="../workflow/report/umap.rst",
                category="Gene embeddings",
                labels={"figure": "UMAP", "method": method},
            )
            for method in method_names()
        ],
        tables=expand("results/evaluation/{method}/umap.tsv", method=method_names()),
    params:
        methods=method_names(),
        cfg=config["evaluation"]["umap"],
        controls=config["controls"],
    log:
        "results/logs/gene_umaps.log",
    benchmark:
        "results/benchmarks/gene_umaps.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../workflow/scripts/gene_umaps.py"


rule combine_metrics:
    input:
        metrics=method_metrics,
        ksweeps=method_ksweeps,
    output:
        table=report(
            "results/evaluation/metrics.tsv",
            caption="../workflow/report/metrics.rst",
            category="Benchmark",
        ),
        ksweep_png=report(
            "results/evaluation/ksweep.png",
            caption="../workflow/report/ksweep.rst",
            category="Benchmark",
        ),
    log:
        "results/logs/combine_metrics.log",
    benchmark:
        "results/benchmarks/combine_metrics.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../workflow/scripts/combine_metrics.py"
