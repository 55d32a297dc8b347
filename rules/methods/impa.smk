# IMPA (Palma et al.): StarGAN v2 translating control cells into perturbed ones, conditioned
# on a perturbation embedding (gene2vec, frozen, when configured; else trained) plus noise.
# Its gene embedding is the style encoder's code averaged over each gene's cells.

IMPA_TRAINING = {
    "losses": "results/train/impa/losses.tsv",
    "samples": "results/train/impa/samples.png",
    "check_table": "results/evaluation/impa_generative.tsv",
    "check_features": "results/evaluation/impa_generative_features.tsv",
    "check_figure": "results/evaluation/impa_generative.png",
}

register_method("impa", outputs=["impa"], training={"impa": IMPA_TRAINING})

IMPA = config["methods"]["impa"]


rule train_impa:
    input:
        cells="results/preprocess/cells.h5",
        # gene2vec's vectors, frozen, when gene2vec runs; otherwise IMPA trains its own table
        embedding=(
            embedding_if_registered("gene2vec")
            if IMPA["frozen_embedding"]
            else []
        ),
    output:
        model="results/train/impa/model.pt",
        losses=IMPA_TRAINING["losses"],
        samples=report(
            IMPA_TRAINING["samples"],
            caption="../../workflow/report/samples.rst",
            category="Training",
            labels={"method": "impa"},
        ),
    params:
        cfg=config_keys(IMPA, omit=["enabled", "n_cells", "n_cells_generative"]),
        seed=IMPA["seed"],
        checkpoint_dir="results/train/impa/checkpoints",
        tensorboard_dir="results/train/impa/tensorboard",
    log:
        "results/logs/train_impa.log",
    benchmark:
        "results/benchmarks/train_impa.tsv"
    threads: 1
    resources:
        mem_mb=16000,
        runtime=4320,
        gpu=GPU_JOB,
    conda:
        "../../envs/train.yaml"
    script:
        "../../workflow/scripts/train_impa.py"


rule extract_impa:
    input:
        model="results/train/impa/model.pt",
        cells="results/preprocess/cells.h5",
    output:
        embeddings="results/embeddings/impa.tsv",
    params:
        cfg=config_keys(IMPA, ["device", "n_cells"]),
        seed=IMPA["seed"],
    log:
        "results/logs/extract_impa.log",
    benchmark:
        "results/benchmarks/extract_impa.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=GPU_JOB,
    conda:
        "../../envs/train.yaml"
    script:
        "../../workflow/scripts/extract_impa.py"


rule generative_check_impa:
    input:
        model="results/train/impa/model.pt",
        cells="results/preprocess/cells.h5",
        ground_truth="results/evaluation/ground_truth.tsv",
    output:
        table=IMPA_TRAINING["check_table"],
        features=IMPA_TRAINING["check_features"],
        figure=report(
            IMPA_TRAINING["check_figure"],
            caption="../../workflow/report/generative.rst",
            category="Training",
            labels={"method": "impa", "figure": "generative check"},
        ),
    params:
        n_cells=IMPA["n_cells_generative"],
        seed=IMPA["seed"],
        device=IMPA["device"],
    log:
        "results/logs/generative_check_impa.log",
    benchmark:
        "results/benchmarks/generative_check_impa.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=GPU_JOB,
    conda:
        "../../envs/train.yaml"
    script:
        "../../workflow/scripts/generative_check.py"
