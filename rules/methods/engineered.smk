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
    # The OOD benchmark waits for these features (its classes come from phenotypic_activity),
    # so the job runs first. One thread, because a job asking for 2 cannot start beside a
    # 1-thread training job on 2 cores and would hold the OOD benchmark back until one ends;
    # on a larger machine, `--set-threads embed_engineered=8` extracts in 8 processes.
    priority: 10
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../../workflow/scripts/embed_engineered.py"
