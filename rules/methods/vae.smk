# Disentangled representations (Dapueto et al.; Locatello et al. 2020): a weakly supervised
# Ada-GVAE trained on a synthetic Source dataset of known factors, fine-tuned on the screen
# with screen pairs. `vae`: its mean latent per gene; `vae_features`: the same on frozen
# GRAPE style-encoder features instead of pixels (when GRAPE runs and methods.vae.features).
# Evaluation: MIG/DCI against the Source factors and the demo's true per-cell factors, the
# Table-2 complex classifiers, MI heat map and latent traversals (results/evaluation/vae_*).

VAE_CFG = config["methods"]["vae"]
VAE_VARIANTS = ["vae"] + (
    ["vae_features"] if VAE_CFG["features"] and config["methods"]["grape"]["enabled"] else []
)
VAE_TRAINING = {
    name: {"losses": f"results/train/{name}/losses.tsv", "samples": f"results/train/{name}/samples.png"}
    for variant in VAE_VARIANTS
    for name in (f"{variant}_source", variant)
}
VAE_CODES = ["source_source", "random_source", "source_screen", "finetuned_screen", "random_screen"]
VAE_EVALUATION = {
    "disentanglement": "results/evaluation/vae_disentanglement.tsv",
    "classification": "results/evaluation/vae_classification.tsv",
    "classification_runs": "results/evaluation/vae_classification_runs.tsv",
    "mi": "results/evaluation/vae_mi.png",
    "traversals": "results/evaluation/vae_traversals.png",
    "source_traversals": "results/evaluation/vae_source_traversals.png",
}

register_method("vae", outputs=VAE_VARIANTS, training=VAE_TRAINING)
if "vae" in METHODS:
    register_benchmark("vae", VAE_EVALUATION)


wildcard_constraints:
    vae="vae|vae_features",


rule vae_source_dataset:
    output:
        h5="results/vae/source.h5",
    params:
        channels=config["channels"],
        crop_size=config["preprocess"]["crop"]["size"],
        size=VAE_CFG["image_size"],
        repeats=VAE_CFG["source_repeats"],
        seed=VAE_CFG["seed"],
        low=config["preprocess"]["rescale"]["low"],
        high=config["preprocess"]["rescale"]["high"],
    log:
        "results/logs/vae_source_dataset.log",
    benchmark:
        "results/benchmarks/vae_source_dataset.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/preprocess.yaml"
    script:
        "../../workflow/scripts/vae_source_dataset.py"


rule vae_deep_features:
    input:
        grape="results/train/grape/model.pt",
        source="results/vae/source.h5",
        cells="results/preprocess/cells.h5",
    output:
        source="results/vae/features/source.npz",
        screen="results/vae/features/screen.npz",
    params:
        cfg=VAE_CFG,
    log:
        "results/logs/vae_deep_features.log",
    benchmark:
        "results/benchmarks/vae_deep_features.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=GPU_JOB,
    conda:
        "../../envs/train.yaml"
    script:
        "../../workflow/scripts/vae_deep_features.py"


rule train_vae_source:
    input:
        # the deep features of the rows, for vae_features only
        unpack(lambda w: {"features": "results/vae/features/source.npz"} if w.vae == "vae_features" else {}),
        source="results/vae/source.h5",
    output:
        model="results/train/{vae}_source/model.pt",
        losses="results/train/{vae}_source/losses.tsv",
        samples=report(
            "results/train/{vae}_source/samples.png",
            caption="../../workflow/report/samples.rst",
            category="Training",
            labels={"method": "{vae}_source"},
        ),
    params:
        cfg=VAE_CFG,
        seed=VAE_CFG["seed"],
        checkpoint_dir=lambda w: f"results/train/{w.vae}_source/checkpoints",
        tensorboard_dir=lambda w: f"results/train/{w.vae}_source/tensorboard",
    log:
        "results/logs/train_{vae}_source.log",
    benchmark:
        "results/benchmarks/train_{vae}_source.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=1440,
        gpu=GPU_JOB,
    conda:
        "../../envs/train.yaml"
    script:
        "../../workflow/scripts/train_vae.py"


rule train_vae:
    input:
        # the deep features of the rows, for vae_features only
        unpack(lambda w: {"features": "results/vae/features/screen.npz"} if w.vae == "vae_features" else {}),
        source_model="results/train/{vae}_source/model.pt",
        cells="results/preprocess/cells.h5",
    output:
        model="results/train/{vae}/model.pt",
        losses="results/train/{vae}/losses.tsv",
        samples=report(
            "results/train/{vae}/samples.png",
            caption="../../workflow/report/samples.rst",
            category="Training",
            labels={"method": "{vae}"},
        ),
    params:
        cfg=VAE_CFG,
        seed=VAE_CFG["seed"],
        checkpoint_dir=lambda w: f"results/train/{w.vae}/checkpoints",
        tensorboard_dir=lambda w: f"results/train/{w.vae}/tensorboard",
    log:
        "results/logs/train_{vae}.log",
    benchmark:
        "results/benchmarks/train_{vae}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=1440,
        gpu=GPU_JOB,
    conda:
        "../../envs/train.yaml"
    script:
        "../../workflow/scripts/train_vae.py"


rule extract_vae:
    input:
        unpack(
            lambda w: (
                {f"{k}_features": f"results/vae/features/{k}.npz" for k in ("source", "screen")}
                if w.vae == "vae_features"
                else {}
            )
        ),
        source_model="results/train/{vae}_source/model.pt",
        model="results/train/{vae}/model.pt",
        source="results/vae/source.h5",
        cells="results/preprocess/cells.h5",
    output:
        embeddings="results/embeddings/{vae}.tsv",
        **{key: f"results/vae/codes/{{vae}}/{key}.tsv" for key in VAE_CODES},
    params:
        cfg=VAE_CFG,
        seed=VAE_CFG["seed"],
    log:
        "results/logs/extract_{vae}.log",
    benchmark:
        "results/benchmarks/extract_{vae}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=GPU_JOB,
    conda:
        "../../envs/train.yaml"
    script:
        "../../workflow/scripts/extract_vae.py"


rule vae_traversals:
    input:
        source_model="results/train/vae_source/model.pt",
        model="results/train/vae/model.pt",
        source_codes="results/vae/codes/vae/source_source.tsv",
        screen_codes="results/vae/codes/vae/finetuned_screen.tsv",
    output:
        traversals=report(
            VAE_EVALUATION["traversals"],
            caption="../../workflow/report/vae.rst",
            category="Disentanglement",
            labels={"figure": "traversals", "model": "fine-tuned"},
        ),
        source_traversals=report(
            VAE_EVALUATION["source_traversals"],
            caption="../../workflow/report/vae.rst",
            category="Disentanglement",
            labels={"figure": "traversals", "model": "Source"},
        ),
    log:
        "results/logs/vae_traversals.log",
    benchmark:
        "results/benchmarks/vae_traversals.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        "../../envs/train.yaml"
    script:
        "../../workflow/scripts/vae_traversals.py"


rule evaluate_vae:
    input:
        codes=expand("results/vae/codes/{vae}/{key}.tsv", vae=VAE_VARIANTS, key=VAE_CODES),
        curated="results/evaluation/ground_truth.tsv",
        # the simulator's true per-cell factors: only the demo has them
        factors=f"{DEMO_DIR}/factors.tsv" if IS_DEMO else [],
    output:
        disentanglement=report(
            VAE_EVALUATION["disentanglement"],
            caption="../../workflow/report/vae.rst",
            category="Disentanglement",
        ),
        classification=report(
            VAE_EVALUATION["classification"],
            caption="../../workflow/report/vae.rst",
            category="Disentanglement",
        ),
        classification_runs=VAE_EVALUATION["classification_runs"],
        mi=report(
            VAE_EVALUATION["mi"],
            caption="../../workflow/report/vae.rst",
            category="Disentanglement",
            labels={"figure": "latent x factor MI"},
        ),
    params:
        cfg=VAE_CFG,
        seed=VAE_CFG["seed"],
        controls=config["controls"],
        variants=VAE_VARIANTS,
        code_keys=VAE_CODES,
    log:
        "results/logs/evaluate_vae.log",
    benchmark:
        "results/benchmarks/evaluate_vae.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../../workflow/scripts/evaluate_vae.py"
