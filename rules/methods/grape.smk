# GRAPE (Bigverdi, Hoeckendorf et al. 2024): a StarGAN v2 variant whose styles come from a
# trainable gene-embedding table M. One GPU training job, then extraction at the paper's
# three positions: rows of M (grape), F(M) (grape_p2), mean restyled style code (grape_p3).

GRAPE_TRAINING = {
    "losses": "results/train/grape/losses.tsv",
    "samples": "results/train/grape/samples.png",
    "check_table": "results/evaluation/grape_generative.tsv",
    "check_features": "results/evaluation/grape_generative_features.tsv",
    "check_figure": "results/evaluation/grape_generative.png",
}

register_method("grape", outputs=["grape", "grape_p2", "grape_p3"], training={"grape": GRAPE_TRAINING})

GRAPE = config["methods"]["grape"]
GRAPE_EXTRACT = ["device", "n_cells_p3"]  # what extract_grape reads; generative_check_grape names its own


rule train_grape:
    input:
        cells="results/preprocess/cells.h5",
    output:
        model="results/train/grape/model.pt",
        losses=GRAPE_TRAINING["losses"],
        samples=report(
            GRAPE_TRAINING["samples"],
            caption="../../workflow/report/samples.rst",
            category="Training",
            labels={"method": "grape", "figure": "samples"},
        ),
    params:
        cfg=config_keys(GRAPE, omit=["enabled", "n_cells_p3", "n_cells_generative"]),
        seed=GRAPE["seed"],
        checkpoint_dir="results/train/grape/checkpoints",
        tensorboard_dir="results/train/grape/tensorboard",
    log:
        "results/logs/train_grape.log",
    benchmark:
        "results/benchmarks/train_grape.tsv"
    # the longest job, and the report waits on its chain (check, extract, evaluate): start it first
    priority: 10
    threads: 1
    resources:
        mem_mb=16000,
        runtime=4320,
        gpu=GPU_JOB,
    conda:
        "../../envs/train.yaml"
    script:
        "../../workflow/scripts/train_grape.py"


rule extract_grape:
    input:
        model="results/train/grape/model.pt",
        cells="results/preprocess/cells.h5",
    output:
        p1="results/embeddings/grape.tsv",
        p2="results/embeddings/grape_p2.tsv",
        p3="results/embeddings/grape_p3.tsv",
    params:
        cfg=config_keys(GRAPE, GRAPE_EXTRACT),
        seed=GRAPE["seed"],
    log:
        "results/logs/extract_grape.log",
    benchmark:
        "results/benchmarks/extract_grape.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=GPU_JOB,
    conda:
        "../../envs/train.yaml"
    script:
        "../../workflow/scripts/extract_grape.py"


rule generative_check_grape:
    input:
        model="results/train/grape/model.pt",
        cells="results/preprocess/cells.h5",
        ground_truth="results/evaluation/ground_truth.tsv",
    output:
        table=GRAPE_TRAINING["check_table"],
        features=GRAPE_TRAINING["check_features"],
        figure=report(
            GRAPE_TRAINING["check_figure"],
            caption="../../workflow/report/generative.rst",
            category="Training",
            labels={"method": "grape", "figure": "generative check"},
        ),
    params:
        n_cells=GRAPE["n_cells_generative"],
        seed=GRAPE["seed"],
        device=GRAPE["device"],
    log:
        "results/logs/generative_check_grape.log",
    benchmark:
        "results/benchmarks/generative_check_grape.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=GPU_JOB,
    conda:
        "../../envs/train.yaml"
    script:
        "../../workflow/scripts/generative_check.py"
