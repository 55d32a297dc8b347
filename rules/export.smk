# Outputs for the field's tools: every method's gene embedding in one AnnData (scanpy),
# the engineered per-cell features as a pycytominer-style Parquet (pycytominer, copairs).
# Layouts: opsembed.evaluate.export.

from opsembed.evaluate.export import config_seeds


rule export_anndata:
    input:
        embeddings=embedding_files,
        curated="results/evaluation/ground_truth.tsv",
        metrics="results/evaluation/metrics.tsv",
        cells="results/preprocess/cells.h5",
    output:
        h5ad="results/embeddings/genes.h5ad",
    params:
        methods=method_names(),
        seeds=config_seeds(config),
        controls=config["controls"],
    log:
        "results/logs/export_anndata.log",
    benchmark:
        "results/benchmarks/export_anndata.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../workflow/scripts/export_anndata.py"


rule export_cell_profiles:
    input:
        features="results/features/engineered_cells.parquet",
        cells="results/preprocess/cells.h5",
    output:
        profiles="results/features/engineered.parquet",
    log:
        "results/logs/export_cell_profiles.log",
    benchmark:
        "results/benchmarks/export_cell_profiles.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../workflow/scripts/export_cell_profiles.py"


rule export_predictor_cells:
    input:
        features="results/ood/iid/{predictor}/features.tsv",
        cells="results/preprocess/cells.h5",
    output:
        profiles="results/features/ood_iid_{predictor}.parquet",
    log:
        "results/logs/export_predictor_cells/{predictor}.log",
    benchmark:
        "results/benchmarks/export_predictor_cells/{predictor}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../workflow/scripts/export_cell_profiles.py"
