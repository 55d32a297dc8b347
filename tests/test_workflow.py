"""The Snakemake workflow itself: lint, the whole DAG in a dry run, config errors at
start-up, and a real run on a tiny simulated screen (all_preprocess, then the report)."""

import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO

SNAKEMAKE = [sys.executable, "-m", "snakemake"]

TINY = {
    "simulate": {"n_plates": 2, "wells_per_plate": 2, "tiles_per_well": 2, "tile_size": 256,
                 "cells_per_tile": 30, "plate_gene_fraction": 0.8},
    "preprocess": {"flatfield": {"n_tiles": 4}, "rescale": {"n_tiles": 4}},
    "evaluation": {"ground_truth": {"min_genes": 3}, "map": {"null_size": 100},
                   "kmeans": {"n_runs": 10, "k_max": 8}},
    "methods": {
        "engineered": {"enabled": True},
        # GAN training on CPU: a few steps at tiny widths, one checkpoint on the way
        "grape": {"iterations": 12, "batch_size": 8, "embed_dim": 16, "mapping_hidden": 16,
                  "checkpoint_every": 6, "log_every": 3, "sample_every": 0, "n_cells_p3": 4,
                  "ema": {"every": 6}},
        "impa": {"iterations": 12, "batch_size": 8, "embed_dim": 16, "mapping_hidden": 16,
                 "checkpoint_every": 6, "log_every": 3, "sample_every": 0, "n_cells": 4},
    },
    # OOD benchmark: IID + two held-out plates, two predictor kinds, a few steps each
    "ood": {"levels": [{"name": "plate", "columns": ["plate"]}], "predictors": ["naive", "ist"], "genes": None,
            "harmony_pcs": 5, "knn_neighbors": 3, "lisi_perplexity": 5,
            "ist": {"pretrain_iterations": 4, "iterations": 8, "batch_size": 8, "log_every": 4,
                    "checkpoint_every": 4, "num_workers": 0},
            "predictor": {"iterations": 6, "batch_size": 8, "log_every": 3, "checkpoint_every": 3,
                          "num_workers": 0}},
}


def _run(args, cwd=REPO, check=True):
    env = dict(os.environ, PYTHONPATH=str(REPO / "workflow" / "scripts"))
    proc = subprocess.run(SNAKEMAKE + args, cwd=cwd, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def test_lint_is_clean():
    proc = _run(["--lint"], check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Lints for" not in out, out


def test_dry_run_shows_the_whole_dag(tmp_path):
    out = _run(["-n", "--directory", str(tmp_path), "--snakefile", str(REPO / "Snakefile"),
                "--configfile", str(REPO / "config" / "config.yaml")]).stdout
    for rule in ["simulate_demo", "validate_inputs", "fit_flatfield", "rescale_percentiles",
                 "crop_well", "merge_cells", "curate_ground_truth", "embed_random",
                 "embed_engineered", "train_grape", "extract_grape", "train_impa", "extract_impa",
                 "train_ist", "train_stargan_oe", "train_predictor", "ood_fold_eval", "combine_ood",
                 "embed_predictor", "evaluate_method", "combine_metrics", "report"]:
        assert rule in out, f"{rule} missing from the dry run"
    assert "embed_gene2vec" not in out  # no pretrained file configured: skipped


def test_unknown_config_key_fails_at_once_naming_it(tmp_path):
    proc = _run(["-n", "--directory", str(tmp_path), "--snakefile", str(REPO / "Snakefile"),
                 "--config", "bogus_key=1"], check=False)
    assert proc.returncode != 0
    assert "bogus_key" in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny simulated screen run to the end of preprocessing, then to the report."""
    work = tmp_path_factory.mktemp("tiny")
    config = work / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    base = ["--cores", "2", "--directory", str(work), "--snakefile", str(REPO / "Snakefile"),
            "--configfile", str(REPO / "config" / "config.yaml"), str(config)]
    preprocess = _run(["all_preprocess"] + base)
    return work, base, preprocess


@pytest.mark.integration
def test_all_preprocess_builds_cells_h5(tiny_run):
    from opsembed.io.h5 import read_attrs, read_crops, read_obs

    work, _, _ = tiny_run
    h5 = work / "results" / "preprocess" / "cells.h5"
    assert h5.exists()
    assert not (work / "results" / "report.html").exists()  # the stage target stops there
    obs, attrs = read_obs(h5), read_attrs(h5)
    cells = pd.read_csv(work / "resources" / "demo" / "cells.csv", dtype={"tile": str, "cell_id": str})
    summary = pd.read_csv(work / "results" / "preprocess" / "summary.tsv", sep="\t")
    # every fitting cell exactly once; the rest were dropped at tile edges
    assert obs["cell_id"].is_unique
    assert set(obs["cell_id"]) <= set(cells["cell_id"])
    assert len(obs) == summary["n_kept"].sum() == len(cells) - summary["n_dropped_edge"].sum()
    half = TINY["simulate"]["tile_size"]
    fits = cells[(cells.y >= 48) & (cells.x >= 48) & (cells.y + 48 <= half) & (cells.x + 48 <= half)]
    assert set(fits["cell_id"]) <= set(obs["cell_id"])
    images = read_crops(h5)
    assert images.shape == (len(obs), 4, 96, 96)
    assert attrs["channels"] == ["DNA", "gH2AX", "tubulin", "actin"]
    # each batch's controls are z-scored: per-channel mean ~0, sd ~1
    for batch in obs["batch"].unique():
        ctrl = images[((obs["batch"] == batch) & (obs["gene"] == "nontargeting")).to_numpy()]
        assert len(ctrl) > 0
        np.testing.assert_allclose(ctrl.mean(axis=(0, 2, 3)), 0, atol=0.02)
        np.testing.assert_allclose(ctrl.std(axis=(0, 2, 3)), 1, atol=0.02)
    # every job wrote its log and benchmark
    assert (work / "results" / "benchmarks" / "merge_cells.tsv").exists()
    assert (work / "results" / "logs" / "validate_inputs.log").exists()


@pytest.mark.integration
def test_full_run_writes_the_report(tiny_run):
    work, base, _ = tiny_run
    _run(["all"] + base)
    metrics = pd.read_csv(work / "results" / "evaluation" / "metrics.tsv", sep="\t")
    assert {"random", "engineered", "grape", "grape_p2", "grape_p3", "impa"} <= set(metrics["method"])
    for method in ("grape", "impa"):
        losses = pd.read_csv(work / "results" / "train" / method / "losses.tsv", sep="\t")
        assert losses["step"].tolist() == [3, 6, 9, 12]
        assert np.isfinite(losses.drop(columns="step").to_numpy()).all()
        assert (work / "results" / "train" / method / "checkpoints").is_dir()
    html = (work / "results" / "report.html").read_text()
    assert "<img" in html and "src=\"http" not in html
    assert "<h3>grape</h3>" in html and "<h3>impa</h3>" in html and "No learned method ran" not in html
    # OOD benchmark: every fold x predictor job ran, one table row per predictor (and variant)
    folds = pd.read_csv(work / "results" / "evaluation" / "ood_folds.tsv", sep="\t", keep_default_na=False)
    assert sorted(set(folds["fold"])) == ["iid", "plate-P1", "plate-P2"]
    ood = pd.read_csv(work / "results" / "evaluation" / "ood.tsv", sep="\t")
    assert {"naive", "ist", "naive_harmony_knn", "ist_harmony_knn"} <= set(ood["method"])
    assert {"macro_f1_iid", "macro_f1_plate", "clisi", "blisi", "knn_batchcv"} <= set(ood.columns)
    assert {"naive", "ist"} <= set(metrics["method"])  # the IID predictors' embeddings are scored
    assert "Out-of-distribution benchmark" in html and "<h3>ist</h3>" in html
    # two ground truths side by side: the demo's complexes and the coarser processes
    assert list(dict.fromkeys(metrics["ground_truth"])) == ["complexes", "processes"]
    assert not metrics.duplicated(["method", "ground_truth"]).any() and len(metrics) == 2 * metrics["method"].nunique()
    assert "Ground truths side by side" in html and "cells per complex" in html


def test_dry_run_adds_series_folds_when_the_cell_table_has_that_column(tmp_path):
    """OOD level 3: a `series` column of the user's cell table becomes held-out-series folds."""
    rows = [(p, w, "0", 50.0, 50.0, g, s) for p, s in (("P1", "S1"), ("P2", "S1"), ("P3", "S2"))
            for w in ("A1", "A2") for g in ("G1", "nontargeting")]
    pd.DataFrame(rows, columns=["plate", "well", "tile", "y", "x", "gene", "series"]).to_csv(
        tmp_path / "cells.csv", index=False)
    for p, w, *_ in rows:
        (tmp_path / "tiles" / p / w).mkdir(parents=True, exist_ok=True)
        (tmp_path / "tiles" / p / w / "0.tif").touch()  # a dry run never opens them
    (tmp_path / "complexes.tsv").write_text("complex\tgene\nC\tG1\n")
    config = {"input": {"tiles": str(tmp_path / "tiles/{plate}/{well}/{tile}.tif"),
                        "cells": str(tmp_path / "cells.csv"), "ground_truth": str(tmp_path / "complexes.tsv")},
              "ood": {"predictors": ["naive"], "genes": None}}
    (tmp_path / "screen.yaml").write_text(yaml.safe_dump(config))
    out = _run(["-n", "--directory", str(tmp_path), "--snakefile", str(REPO / "Snakefile"),
                "--configfile", str(REPO / "config" / "config.yaml"), str(tmp_path / "screen.yaml")]).stdout
    folds = set(re.findall(r"fold=([A-Za-z0-9_.-]+)", out))
    wells = {f for f in folds if f.startswith("well-")}  # config.yaml holds out 1 of the 6 wells
    assert len(wells) == 1 and wells <= {f"well-{p}_{w}" for p in ("P1", "P2", "P3") for w in ("A1", "A2")}
    assert folds - wells == {"iid", "plate-P1", "plate-P2", "plate-P3", "series-S1", "series-S2"}
