# Baseline: classical CellProfiler-like features per cell (or the cell table's own
# numeric feature columns), standardised, PCA, averaged per gene.

register_method("engineered", outputs=["engineered"])


rule embed_engineered:
    input:
        cells="results/preprocess/cells.h5",
    output:
        embeddings="results/embeddings/engineered.tsv",
        features="results/features/engineered_cells.parquet",
    params:
        cfg=config["methods"]["engineered"],
    log:
        "results/logs/embed_engineered.log",
    benchmark:
        "results/benchmarks/embed_engineered.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../../workflow/scripts/embed_engineered.py"
