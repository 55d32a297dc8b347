"""evaluate_embeddings outputs, coverage and errors; combine_metrics; the CLI; GRAPE's Random row."""

import logging

import numpy as np
import pandas as pd
import pytest

from opsembed.cli import main
from opsembed.evaluate.benchmark import METRIC_COLUMNS, combine_metrics, evaluate_embeddings, write_gene_umaps
from opsembed.evaluate.kmeans import run_seeds
from opsembed.io.config import load_config
from opsembed.io.embeddings import write_embeddings
from opsembed.io.errors import InputError

SMALL = {
    "map": {"null_size": 200, "seed": 0},
    "kmeans": {"n_runs": 8, "k_min": 2, "k_max": 6, "max_iter": 100, "seed": 3},
    "recall": {"percentile": 5},
    "umap": {"n_neighbors": 5, "min_dist": 0.1, "seed": 0},
}
SPEC_FIRST = ["method", "ground_truth", "mAP", "purity_mean", "purity_sd", "nmi_mean", "nmi_sd",
              "ari_mean", "ari_sd", "recall"]


def _separated(n_complexes=4, size=5, d=12, seed=0):
    """Tight, well separated complexes: every score should be perfect."""
    rng = np.random.default_rng(seed)
    genes = [f"C{c}_{i}" for c in range(n_complexes) for i in range(size)]
    curated = pd.DataFrame({"gene": genes, "complex": [g.split("_")[0] for g in genes]})
    centres = 10.0 * np.eye(d)[:n_complexes] + 1.0
    values = centres[np.repeat(np.arange(n_complexes), size)] + 0.01 * rng.normal(size=(len(genes), d))
    return pd.DataFrame(values, index=genes), curated


def test_evaluate_embeddings_writes_every_output(tmp_path):
    emb, curated = _separated()
    extra = pd.DataFrame(np.random.default_rng(1).normal(size=(4, 12)),
                         index=["X1", "X2", "X3", "nontargeting"])
    metrics = evaluate_embeddings(pd.concat([emb, extra]), curated, SMALL, "toy", tmp_path,
                                  controls="nontargeting")
    assert list(metrics.index) == METRIC_COLUMNS and METRIC_COLUMNS[:10] == SPEC_FIRST
    assert metrics["mAP"] == pytest.approx(1.0)
    for s in ("purity", "nmi", "ari"):
        assert metrics[f"{s}_mean"] == pytest.approx(1.0) and metrics[f"{s}_sd"] == pytest.approx(0.0)
    assert metrics["n_genes_embedded"] == 23 and metrics["n_genes_ignored"] == 3
    assert metrics["n_genes_evaluated"] == 20 and metrics["n_complexes"] == 4
    assert metrics["coverage"] == 1.0 and not metrics["coverage_warning"]
    assert metrics["map_fraction_significant"] == 1.0
    # 40 of 190 pairs are same-complex and the most similar; the top 5% holds 10 of them
    assert metrics["recall"] == pytest.approx(10 / 40) and metrics["recall_chance"] == pytest.approx(0.1)
    # EFAAR's 10/90 thresholds: the 90th percentile of 190 pairs leaves the top 19 at or above it
    assert metrics["recall_10_90"] == pytest.approx(19 / 40)
    assert metrics["recall_10_90_chance"] == pytest.approx(0.2)

    table = pd.read_csv(tmp_path / "metrics.tsv", sep="\t")
    assert list(table.columns) == METRIC_COLUMNS and len(table) == 1
    assert table.loc[0, "method"] == "toy" and table.loc[0, "kmeans_seed"] == 3
    runs = pd.read_csv(tmp_path / "kmeans_runs.tsv", sep="\t")
    assert len(runs) == 8 and (runs["k"] == 4).all()
    np.testing.assert_array_equal(runs["seed"], run_seeds(3, 4, 8))
    sweep = pd.read_csv(tmp_path / "ksweep.tsv", sep="\t")
    assert list(sweep["k"]) == [2, 3, 4, 5, 6] and (sweep["method"] == "toy").all()
    assert sweep.set_index("k").loc[4, "purity_mean"] == pytest.approx(metrics["purity_mean"])
    ap = pd.read_csv(tmp_path / "ap_per_gene.tsv", sep="\t")
    assert sorted(ap["gene"]) == sorted(emb.index)
    assert (ap["corrected_p_value"] >= ap["p_value"] - 1e-9).all()  # 1e-9: TSV rounding
    assert ap["significant"].dtype == bool and ap["significant"].all()
    for png in ("ksweep.png", "heatmap.png", "complex_ap.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "umap.tsv").exists()      # the UMAP is write_gene_umaps's (rule gene_umaps)


def test_gene_umaps_place_each_method_s_complexes_apart(tmp_path):
    """One call draws every method; each map holds the evaluated genes only (controls, genes
    outside the ground truth and complexes with one embedded gene left out), in (complex, gene)
    order, and tight complexes come out as groups: every gene's nearest neighbour in the map
    is of its own complex."""
    emb, curated = _separated()
    noise = pd.DataFrame(np.random.default_rng(1).normal(size=(2, 12)), index=["X1", "nontargeting"])
    other, _ = _separated(seed=5)
    other = other.drop(index=["C3_1", "C3_2", "C3_3", "C3_4"])          # C3 keeps one gene: left out
    write_gene_umaps({"a": pd.concat([emb, noise]), "b": other}, curated, SMALL["umap"],
                     {"a": tmp_path / "a", "b": tmp_path / "b"}, controls="nontargeting")
    for method, n in (("a", 20), ("b", 15)):
        umap = pd.read_csv(tmp_path / method / "umap.tsv", sep="\t")
        assert list(umap.columns) == ["gene", "complex", "umap_1", "umap_2"] and len(umap) == n
        assert list(umap["gene"]) == sorted(umap["gene"]) and "X1" not in set(umap["gene"])
        xy = umap[["umap_1", "umap_2"]].to_numpy()
        dist = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.diag(np.full(n, np.inf))
        assert (umap["complex"].to_numpy()[dist.argmin(1)] == umap["complex"].to_numpy()).all()
        assert (tmp_path / method / "umap.png").read_bytes()[:4] == b"\x89PNG"


def test_k_max_is_clipped_to_the_number_of_genes(tmp_path):
    emb, curated = _separated(n_complexes=2, size=3)
    cfg = {**SMALL, "kmeans": {**SMALL["kmeans"], "k_max": 30}}
    evaluate_embeddings(emb, curated, cfg, "tiny", tmp_path)
    assert list(pd.read_csv(tmp_path / "ksweep.tsv", sep="\t")["k"]) == [2, 3, 4, 5]


def test_low_coverage_is_flagged(tmp_path, caplog):
    emb, curated = _separated()
    kept = [g for g in emb.index if g.endswith(("_0", "_1"))]      # 8 of 20 curated genes
    with caplog.at_level(logging.WARNING):
        metrics = evaluate_embeddings(emb.loc[kept], curated, SMALL, "sparse", tmp_path)
    assert metrics["coverage"] == pytest.approx(0.4) and metrics["coverage_warning"]
    assert metrics["n_genes_evaluated"] == 8 and metrics["n_complexes"] == 4
    assert "8 of 20 curated genes" in caplog.text


def test_bad_embeddings_are_input_errors(tmp_path):
    emb, curated = _separated()
    nan = emb.copy()
    nan.iloc[3, 2] = np.nan
    with pytest.raises(InputError, match="NaN"):
        evaluate_embeddings(nan, curated, SMALL, "m", tmp_path)
    with pytest.raises(InputError, match="more than one row"):
        evaluate_embeddings(pd.concat([emb, emb.iloc[:1]]), curated, SMALL, "m", tmp_path)
    zero = emb.copy()
    zero.iloc[0] = 0.0
    with pytest.raises(InputError, match="all-zero"):
        evaluate_embeddings(zero, curated, SMALL, "m", tmp_path)
    one_complex = emb.loc[[g for g in emb.index if g.startswith("C0") or g == "C1_0"]]
    with pytest.raises(InputError, match=r"only 1 complex\(es\) have >= 2 embedded genes"):
        evaluate_embeddings(one_complex, curated, SMALL, "m", tmp_path)
    assert not (tmp_path / "metrics.tsv").exists()


def test_combine_metrics(tmp_path):
    emb, curated = _separated()
    noisy = emb + np.random.default_rng(0).normal(scale=5.0, size=emb.shape)
    for name, frame in (("good", emb), ("noisy", noisy)):
        evaluate_embeddings(frame, curated, SMALL, name, tmp_path / name)
    metric_paths = [tmp_path / m / "metrics.tsv" for m in ("good", "noisy")]
    sweeps = [tmp_path / m / "ksweep.tsv" for m in ("good", "noisy")]
    table = combine_metrics(metric_paths, sweeps, tmp_path / "all.tsv", tmp_path / "ksweep.png")
    written = pd.read_csv(tmp_path / "all.tsv", sep="\t")
    assert list(written["method"]) == ["good", "noisy"] and list(written.columns) == METRIC_COLUMNS
    assert written.loc[0, "mAP"] > written.loc[1, "mAP"]
    assert (tmp_path / "ksweep.png").read_bytes()[:4] == b"\x89PNG"
    assert len(table) == 2
    with pytest.raises(InputError, match="'good'.* appears more than once"):
        combine_metrics(metric_paths[:1] * 2, sweeps[:1] * 2, tmp_path / "x.tsv", tmp_path / "x.png")


def test_load_config_defaults_and_errors(tmp_path):
    cfg = load_config()
    assert cfg["evaluation"]["kmeans"] == {"n_runs": 100, "k_min": 2, "k_max": 30,
                                           "max_iter": 300, "seed": 0}
    assert cfg["controls"] == "nontargeting"
    bad = tmp_path / "bad.yaml"
    bad.write_text("evaluation:\n  kmeans:\n    n_runs: 0\n")
    with pytest.raises(InputError, match="evaluation/kmeans/n_runs"):
        load_config(bad)


def _paper_screen(tmp_path, seed):
    """106 genes in 14 complexes of 6-10 genes, random 500-d Gaussian embeddings (+ control)."""
    sizes = [10, 10, 9, 9, 8, 8, 7, 7, 7, 7, 6, 6, 6, 6]
    genes = [f"G{i:03d}" for i in range(sum(sizes))]
    labels = np.repeat([f"complex{c:02d}" for c in range(len(sizes))], sizes)
    gt = tmp_path / "complexes.tsv"
    gt.write_text("".join(f"{c}\t{' '.join(np.array(genes)[labels == c])}\n" for c in sorted(set(labels))))
    values = np.random.default_rng(seed).normal(size=(len(genes) + 1, 500))
    write_embeddings(tmp_path / "random.tsv", genes + ["nontargeting"], values)
    return gt


def test_cli_reproduces_the_paper_random_row(tmp_path, capsys):
    """GRAPE Table 1, Random: mAP 0.104, purity 0.257 +/- 0.02, NMI 0.310 +/- 0.02, ARI 0.000 +/- 0.01.

    Chance level here: the expected AP of a random ranking for these complex sizes is 0.103.
    """
    gt = _paper_screen(tmp_path, seed=0)
    rc = main(["evaluate", str(tmp_path / "random.tsv"), "--ground-truth", str(gt),
               "--out", str(tmp_path / "out")])
    assert rc == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split("\t") == METRIC_COLUMNS and printed[1].startswith("random\t")
    m = pd.read_csv(tmp_path / "out" / "metrics.tsv", sep="\t").iloc[0]
    assert m["n_genes_evaluated"] == 106 and m["n_complexes"] == 14 and m["n_genes_embedded"] == 106
    assert m["n_runs"] == 100 and m["map_null_size"] == 10000
    assert abs(m["mAP"] - 0.104) < 0.02
    assert abs(m["purity_mean"] - 0.257) < 0.03 and 0.005 < m["purity_sd"] < 0.04
    assert abs(m["nmi_mean"] - 0.310) < 0.03 and 0.005 < m["nmi_sd"] < 0.04
    assert abs(m["ari_mean"]) < 0.02 and m["ari_sd"] < 0.03
    assert abs(m["recall"] - 0.10) < 0.05          # chance: 2 x 5%
    assert m["map_p_value"] > 0.05
    assert list(pd.read_csv(tmp_path / "out" / "ksweep.tsv", sep="\t")["k"]) == list(range(2, 31))
    curated = pd.read_csv(tmp_path / "out" / "ground_truth.tsv", sep="\t")
    assert len(curated) == 106 and "nontargeting" not in set(curated["gene"])


def test_cli_bad_input_exits_2(tmp_path, capsys):
    gt = _paper_screen(tmp_path, seed=1)
    bad = tmp_path / "bad.tsv"
    bad.write_text("gene\tdim_0\nG000\t1.0\nG000\t2.0\n")
    assert main(["evaluate", str(bad), "--ground-truth", str(gt), "--out", str(tmp_path / "o")]) == 2
    assert "more than one row" in capsys.readouterr().err
    cfg = tmp_path / "config.yaml"
    cfg.write_text("evaluation:\n  ground_truth:\n    min_genes: 11\n    max_genes: 12\n")
    assert main(["evaluate", str(tmp_path / "random.tsv"), "--ground-truth", str(gt),
                 "--out", str(tmp_path / "o"), "--config", str(cfg)]) == 2
    assert "fewer than 2 usable complexes" in capsys.readouterr().err
