# IST (Pernice et al. 2023) and its out-of-distribution (OOD) benchmark. Per fold (a held-out
# well, plate or series, plus one IID split) one job trains each interventional generator
# (IST; StarGAN v2 over OEs) and one job trains and one scores each gene predictor. The
# IID fold's predictors give the embedding methods ist, naive, dr and mixstyle.

from opsembed.evaluate.ood import METRIC_KEYS
from opsembed.io.folds import CLASS_KEYS, FOLD_KEYS, PREDICTOR_KINDS, list_folds

OOD = config["ood"]
# the keys each kind of job reads (so that editing another key reruns none of them)
OOD_FOLDS_CFG = config_keys(OOD, FOLD_KEYS)
OOD_EVAL_CFG = config_keys(OOD, FOLD_KEYS + METRIC_KEYS)
OOD_CLASSES = "results/ood/classes.tsv"
IST_RESTYLE_ONLY = ["n_restyle_cells"]  # read by the restyle metrics, not by training
IST_RESTYLE = ["device", "data_in_memory", "memory_fraction", "batch_size"] + IST_RESTYLE_ONLY
# ood.seeds: training seed ood.seed + r of a predictor lives in {predictor}_seed{r} (r >= 1), r = 0 in {predictor}
OOD_REPS = [""] + [f"_seed{r}" for r in range(1, OOD["seeds"])]

PREDICTOR_EVAL_ONLY = ["eval_batch_size", "test_time_styles"]  # read by scoring, not training
PREDICTOR_EVAL = ["device", "data_in_memory", "memory_fraction"] + PREDICTOR_EVAL_ONLY
PREDICTOR_EMBED = ["device", "data_in_memory", "memory_fraction", "eval_batch_size"]
OOD_PREDICTORS = OOD["predictors"] if OOD["enabled"] else []
OOD_LEVEL_COLUMNS = sorted({c for level in OOD["levels"] for c in level["columns"]})
OOD_FOLDS = (
    list_folds(cell_groups(["plate", "well"], optional=OOD_LEVEL_COLUMNS), OOD)
    if OOD["enabled"]
    else []
)

for _kind in ("ist", "naive", "dr", "mixstyle"):
    register_method(
        _kind,
        outputs=[_kind],
        skip_reason=(
            None
            if _kind in OOD_PREDICTORS
            else "it needs ood.enabled: true and the kind in ood.predictors"
        ),
        training={
            _kind: {
                "losses": f"results/ood/iid/{_kind}/losses.tsv",
                "samples": f"results/ood/iid/{_kind}/samples.png",
            }
        },
    )


if OOD["enabled"]:
    register_benchmark(
        "ood",
        {
            "table": "results/evaluation/ood.tsv",
            "folds": "results/evaluation/ood_folds.tsv",
            "umap": "results/evaluation/ood_umap.png",
            "classes": OOD_CLASSES,
            "restyle": "results/evaluation/ood_restyle.tsv",
            "activity": "results/evaluation/activity.tsv",
        },
    )


wildcard_constraints:
    fold="[A-Za-z0-9_.-]+",
    predictor="|".join(PREDICTOR_KINDS),
    rep="(_seed[1-9][0-9]*)?",


rule phenotypic_activity:
    input:
        features="results/features/engineered_cells.parquet",
        curated="results/evaluation/ground_truth.tsv",
    output:
        activity="results/evaluation/activity.tsv",
        classes=OOD_CLASSES,
    params:
        ood=config_keys(OOD, CLASS_KEYS),
        controls=config["controls"],
    log:
        "results/logs/phenotypic_activity.log",
    benchmark:
        "results/benchmarks/phenotypic_activity.tsv"
    priority: 10  # every OOD job waits for its classes
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../../workflow/scripts/phenotypic_activity.py"


rule train_ist:
    input:
        cells="results/preprocess/cells.h5",
        classes=OOD_CLASSES,
    output:
        model="results/ood/{fold}/ist_generator/model.pt",
        losses="results/ood/{fold}/ist_generator/losses.tsv",
        samples="results/ood/{fold}/ist_generator/samples.png",
    params:
        ood=OOD_FOLDS_CFG,
        cfg=config_keys(OOD["ist"], omit=IST_RESTYLE_ONLY),
        seed=OOD["seed"],
        checkpoint_dir="results/ood/{fold}/ist_generator/checkpoints",
    log:
        "results/logs/train_ist/{fold}.log",
    benchmark:
        "results/benchmarks/train_ist/{fold}.tsv"
    threads: 1
    resources:
        mem_mb=16000,
        runtime=1440,
        gpu=GPU_JOB,
    conda:
        "../../envs/train.yaml"
    script:
        "../../workflow/scripts/train_ist.py"


rule ist_restyle:
    input:
        cells="results/preprocess/cells.h5",
        classes=OOD_CLASSES,
        generator="results/ood/{fold}/ist_generator/model.pt",
    output:
        restyle="results/ood/{fold}/ist_generator/restyle.tsv",
    params:
        ood=OOD_FOLDS_CFG,
        cfg=config_keys(OOD["ist"], IST_RESTYLE),
    log:
        "results/logs/ist_restyle/{fold}.log",
    benchmark:
        "results/benchmarks/ist_restyle/{fold}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
        gpu=GPU_JOB,
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../../workflow/scripts/ist_restyle.py"


rule train_stargan_oe:
    input:
        cells="results/preprocess/cells.h5",
        classes=OOD_CLASSES,
    output:
        model="results/ood/{fold}/stargan_generator/model.pt",
        losses="results/ood/{fold}/stargan_generator/losses.tsv",
        samples="results/ood/{fold}/stargan_generator/samples.png",
    params:
        ood=OOD_FOLDS_CFG,
        cfg=config_keys(OOD["stargan"], omit=["n_cells_p3", "n_cells_generative"]),
        seed=OOD["seed"],
        checkpoint_dir="results/ood/{fold}/stargan_generator/checkpoints",
    log:
        "results/logs/train_stargan_oe/{fold}.log",
    benchmark:
        "results/benchmarks/train_stargan_oe/{fold}.tsv"
    threads: 1
    resources:
        mem_mb=16000,
        runtime=1440,
        gpu=GPU_JOB,
    conda:
        "../../envs/train.yaml"
    script:
        "../../workflow/scripts/train_stargan_oe.py"


rule train_predictor:
    input:
        unpack(fold_generator),
        cells="results/preprocess/cells.h5",
        classes=OOD_CLASSES,
    output:
        model="results/ood/{fold}/{predictor}{rep}/model.pt",
        losses="results/ood/{fold}/{predictor}{rep}/losses.tsv",
        samples="results/ood/{fold}/{predictor}{rep}/samples.png",
    params:
        ood=OOD_FOLDS_CFG,
        cfg=config_keys(OOD["predictor"], omit=PREDICTOR_EVAL_ONLY),
        seed=lambda w: OOD["seed"] + (int(w.rep[len("_seed") :]) if w.rep else 0),
        checkpoint_dir="results/ood/{fold}/{predictor}{rep}/checkpoints",
    log:
        "results/logs/train_predictor/{fold}/{predictor}{rep}.log",
    benchmark:
        "results/benchmarks/train_predictor/{fold}/{predictor}{rep}.tsv"
    threads: 1
    resources:
        mem_mb=16000,
        runtime=720,
        gpu=GPU_JOB,
    conda:
        "../../envs/train.yaml"
    script:
        "../../workflow/scripts/train_predictor.py"


rule ood_fold_eval:
    input:
        unpack(fold_generator),
        cells="results/preprocess/cells.h5",
        classes=OOD_CLASSES,
        model="results/ood/{fold}/{predictor}{rep}/model.pt",
    output:
        predictions="results/ood/{fold}/{predictor}{rep}/predictions.tsv",
        metrics="results/ood/{fold}/{predictor}{rep}/metrics.tsv",
        features="results/ood/{fold}/{predictor}{rep}/features.tsv",
    params:
        ood=OOD_EVAL_CFG,
        cfg=config_keys(OOD["predictor"], PREDICTOR_EVAL),
    log:
        "results/logs/ood_fold_eval/{fold}/{predictor}{rep}.log",
    benchmark:
        "results/benchmarks/ood_fold_eval/{fold}/{predictor}{rep}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=GPU_JOB,
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../../workflow/scripts/ood_fold_eval.py"


rule combine_ood:
    input:
        metrics=expand(
            "results/ood/{fold}/{predictor}{rep}/metrics.tsv",
            fold=OOD_FOLDS,
            predictor=OOD_PREDICTORS,
            rep=OOD_REPS,
        ),
        features=expand("results/ood/iid/{predictor}/features.tsv", predictor=OOD_PREDICTORS),
        restyle=expand(
            "results/ood/{fold}/ist_generator/restyle.tsv",
            fold=OOD_FOLDS if "ist" in OOD_PREDICTORS else [],
        ),
    output:
        table="results/evaluation/ood.tsv",
        folds="results/evaluation/ood_folds.tsv",
        restyle="results/evaluation/ood_restyle.tsv",
        umap=report(
            "results/evaluation/ood_umap.png",
            caption="../../workflow/report/ood_umap.rst",
            category="Out-of-distribution benchmark",
            labels={"figure": "UMAP by gene and by OE"},
        ),
    params:
        methods=OOD_PREDICTORS,
        umap=config["evaluation"]["umap"],
        max_cells=OOD["umap_max_cells"],
    log:
        "results/logs/combine_ood.log",
    benchmark:
        "results/benchmarks/combine_ood.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../../workflow/scripts/combine_ood.py"


rule embed_predictor:
    input:
        cells="results/preprocess/cells.h5",
        model="results/ood/iid/{predictor}/model.pt",
    output:
        embeddings="results/embeddings/{predictor}.tsv",
    params:
        cfg=config_keys(OOD["predictor"], PREDICTOR_EMBED),
    log:
        "results/logs/embed_predictor/{predictor}.log",
    benchmark:
        "results/benchmarks/embed_predictor/{predictor}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=GPU_JOB,
    conda:
        "../../envs/train.yaml"
    script:
        "../../workflow/scripts/embed_predictor.py"
