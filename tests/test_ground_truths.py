"""Several ground truths side by side: input.ground_truth's forms, the long writer, the demo's
coarser grouping, one method scored against each, and the combined table."""

import re

import numpy as np
import pandas as pd
import pytest

from opsembed.evaluate.benchmark import METRIC_COLUMNS, combine_metrics, evaluate_embeddings, evaluate_ground_truths
from opsembed.evaluate.demo_truth import phenotype_pairs
from opsembed.io.errors import InputError
from opsembed.io.ground_truth import ground_truth_files, read_complexes, write_long

SMALL = {
    "map": {"null_size": 200, "seed": 0},
    "kmeans": {"n_runs": 8, "k_min": 2, "k_max": 6, "max_iter": 100, "seed": 3},
    "recall": {"percentile": 5},
    "umap": {"n_neighbors": 5, "min_dist": 0.1, "seed": 0},
}


def test_one_file_a_list_or_a_mapping():
    assert ground_truth_files("data/corum/CORUM_clusters.tsv") == {"CORUM_clusters": "data/corum/CORUM_clusters.tsv"}
    assert ground_truth_files(["a/humap-2.0.tsv", "b/reactome.txt"]) == {
        "humap_2_0": "a/humap-2.0.tsv", "reactome": "b/reactome.txt"}
    assert list(ground_truth_files({"STRING": "s.tsv", "CORUM": "c.tsv"})) == ["STRING", "CORUM"]  # order kept


@pytest.mark.parametrize("value, message", [
    ([], "no ground-truth file"),
    ({}, "no ground-truth file"),
    (["x/c.tsv", "y/c.tsv"], "two ground truths are named 'c'"),
    ({"a": "c.tsv", "b": "c.tsv"}, "c.tsv is listed twice"),
    ({"my truth": "c.tsv"}, "'my truth' must consist of letters"),
    ({"a": 3}, "3 .ground truth 'a'. is not a file path"),
    (7, "expected a file, a list of files or a mapping"),
])
def test_bad_ground_truth_values_name_the_key(value, message):
    with pytest.raises(InputError, match=message) as err:
        ground_truth_files(value)
    assert str(err.value).startswith("input.ground_truth")


def test_write_long_reads_back_with_its_header(tmp_path):
    frame = pd.DataFrame({"complex": ["A + B", "A + B", "C"], "gene": ["G1", "G 2", "G3"]})
    write_long(frame, tmp_path / "long.tsv")
    assert (tmp_path / "long.tsv").read_text() == "complex\tgene\nA + B\tG1\nA + B\tG 2\nC\tG3\n"
    pd.testing.assert_frame_equal(read_complexes(tmp_path / "long.tsv"), frame)


def test_phenotype_pairs_joins_the_most_alike_complexes():
    complexes = pd.DataFrame({"complex": ["W", "W", "X", "Y", "Y", "Z", "Q"],
                              "gene": ["w1", "w2", "x1", "y1", "y2", "z1", "q1"]})
    # W and Y point the same way (cosine 1), X and Z are orthogonal to them and to each other
    # except for a shared small part (cosine 0.5 between X and Z); Q has no phenotype
    phenotypes = {"W": {"a": 1.0}, "Y": {"a": 2.0}, "X": {"b": 1.0, "c": 1.0}, "Z": {"c": 1.0, "d": 1.0}}
    out = phenotype_pairs(complexes, phenotypes, ["a", "b", "c", "d"])
    assert out.to_dict("list") == {
        "complex": ["W + Y"] * 4 + ["X + Z"] * 2 + ["Q"],
        "gene": ["w1", "w2", "y1", "y2", "x1", "z1", "q1"]}


def _two_pairs(seed=0):
    """Four tight complexes; processes P01 = C0 + C1 and P23 = C2 + C3 pair opposite ones
    (C1 = -C0, C3 = -C2 along their axis), so that a gene's process partners outside its
    complex are the least similar genes of all."""
    rng = np.random.default_rng(seed)
    genes = [f"C{c}_{i}" for c in range(4) for i in range(5)]
    fine = pd.DataFrame({"gene": genes, "complex": [g.split("_")[0] for g in genes]})
    coarse = fine.assign(complex=fine["complex"].map({"C0": "P01", "C1": "P01", "C2": "P23", "C3": "P23"}))
    centres = 10.0 * np.array([np.eye(12)[0], -np.eye(12)[0], np.eye(12)[2], -np.eye(12)[2]]) + 1.0
    values = centres[np.repeat(np.arange(4), 5)] + 0.01 * rng.normal(size=(20, 12))
    return pd.DataFrame(values, index=genes), fine, coarse


def test_each_ground_truth_gets_its_own_row_and_tables(tmp_path):
    emb, fine, coarse = _two_pairs()
    table = evaluate_ground_truths(emb, {"fine": fine, "coarse": coarse}, SMALL, "toy", tmp_path)
    assert list(table.columns) == METRIC_COLUMNS
    assert list(table["ground_truth"]) == ["fine", "coarse"] and list(table["method"]) == ["toy"] * 2
    written = pd.read_csv(tmp_path / "metrics.tsv", sep="\t")
    assert list(written["ground_truth"]) == ["fine", "coarse"]
    # the primary row is what one ground truth alone gives
    alone = evaluate_embeddings(emb, fine, SMALL, "toy", tmp_path / "alone", ground_truth="fine")
    pd.testing.assert_series_equal(table.iloc[0], alone, check_names=False)
    fine_row, coarse_row = table.iloc[0], table.iloc[1]
    assert fine_row["mAP"] == pytest.approx(1.0) and coarse_row["n_complexes"] == 2
    # a gene's 4 complex partners come first (cosine ~1), then the 10 genes of the other
    # process (cosine 0.24 and 0.09), its 5 opposite process partners last (-0.67):
    # AP = (1 + 1 + 1 + 1 + 5/15 + 6/16 + 7/17 + 8/18 + 9/19) / 9 for every gene
    assert coarse_row["mAP"] == pytest.approx((4 + 5 / 15 + 6 / 16 + 7 / 17 + 8 / 18 + 9 / 19) / 9)
    # the 10/90 tails hold 19 pairs each: the top 19 share a complex (40 such pairs), the
    # bottom 19 are opposite complexes of one process (90 pairs share a process)
    assert fine_row["recall_10_90"] == pytest.approx(19 / 40)
    assert coarse_row["recall_10_90"] == pytest.approx(38 / 90)
    extra = tmp_path / "ground_truths" / "coarse"
    assert set(pd.read_csv(extra / "ap_per_gene.tsv", sep="\t")["complex"]) == {"P01", "P23"}
    assert (extra / "ksweep.tsv").exists() and (extra / "map_per_complex.tsv").exists()
    assert not (extra / "heatmap.png").exists() and not (extra / "complex_ap.png").exists()  # primary only
    assert (tmp_path / "heatmap.png").exists() and (tmp_path / "complex_ap.png").exists()


def test_combine_keeps_one_row_per_method_and_ground_truth(tmp_path):
    emb, fine, coarse = _two_pairs()
    noisy = emb + np.random.default_rng(0).normal(scale=5.0, size=emb.shape)
    for name, frame in (("good", emb), ("noisy", noisy)):
        evaluate_ground_truths(frame, {"fine": fine, "coarse": coarse}, SMALL, name, tmp_path / name)
    paths = [tmp_path / m / "metrics.tsv" for m in ("good", "noisy")]
    sweeps = [tmp_path / m / "ksweep.tsv" for m in ("good", "noisy")]
    table = combine_metrics(paths, sweeps, tmp_path / "all.tsv", tmp_path / "ksweep.png")
    assert list(zip(table["method"], table["ground_truth"])) == [
        ("good", "fine"), ("good", "coarse"), ("noisy", "fine"), ("noisy", "coarse")]
    with pytest.raises(InputError, match="'good', 'ground_truth': 'fine'.* appears more than once"):
        combine_metrics(paths[:1] * 2, sweeps[:1] * 2, tmp_path / "x.tsv", tmp_path / "x.png")


def test_report_shows_the_ground_truths_side_by_side(tmp_path):
    from opsembed.report.sections import metrics_section

    metrics = pd.DataFrame({
        "method": ["random", "random", "engineered", "engineered"],
        "ground_truth": ["complexes", "processes", "complexes", "processes"],
        "mAP": [0.10, 0.20, 0.50, 0.40], "ari_mean": [0.0, 0.01, 0.3, 0.2],
        "recall_10_90": [0.21, 0.19, 0.45, 0.35], "recall": [0.1, 0.1, 0.3, 0.2],
        "coverage": [1.0, 1.0, 1.0, 0.4], "coverage_warning": [False, False, False, True]})
    body = metrics_section(metrics, {"evaluation": {"recall": {"percentile": 5}}}).body
    assert "Ground truths side by side" in body
    head = re.findall(r"<th[^>]*>([^<]*)</th>", body.split("Ground truths side by side")[1].split("</table>")[0])
    assert head == ["Method", "mAP · complexes", "mAP · processes", "ARI · complexes", "ARI · processes",
                    "Recall 10/90 · complexes", "Recall 10/90 · processes"]
    side = body.split("Ground truths side by side")[1].split("</table>")[0]
    assert "<b>0.500</b>" in side and "<b>0.400</b>" in side  # best per ground truth: engineered
    assert body.count("<h3>Ground truth: ") == 2
    assert "Low coverage: engineered (processes)" in body
    # one ground truth (or a table from before the column): no side-by-side table
    single = metrics_section(metrics[metrics["ground_truth"] == "complexes"], {}).body
    assert "side by side" not in single and "<h3>Ground truth" not in single


def _dry_run(tmp_path, ground_truth):
    import os
    import subprocess
    import sys

    import yaml
    from conftest import REPO

    cfg = tmp_path / "gt.yaml"
    cfg.write_text(yaml.safe_dump({"input": {"ground_truth": ground_truth}}))
    env = dict(os.environ, PYTHONPATH=str(REPO / "workflow" / "scripts"))
    return subprocess.run([sys.executable, "-m", "snakemake", "-n", "--directory", str(tmp_path), "--snakefile",
                           str(REPO / "Snakefile"), "--configfile", str(REPO / "config" / "config.yaml"), str(cfg),
                           "--", "results/evaluation/metrics.tsv"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)


def test_a_mapping_of_ground_truths_plans_their_curation_and_tables(tmp_path):
    proc = _dry_run(tmp_path, {"CORUM": "resources/demo/complexes.tsv", "coarse": "resources/demo/processes.tsv"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "results/evaluation/ground_truths/coarse.tsv" in proc.stdout
    assert "results/evaluation/random/ground_truths/coarse/metrics.tsv" in proc.stdout
    assert "results/evaluation/ground_truths/CORUM.tsv" not in proc.stdout  # the primary keeps its paths
    bad = _dry_run(tmp_path, {"my truth": "resources/demo/complexes.tsv"})
    assert bad.returncode != 0 and "input.ground_truth: ground-truth name 'my truth'" in bad.stdout + bad.stderr


def test_validation_stops_on_a_further_ground_truth_leaving_one_complex(tmp_path):
    """Every ground truth is curated at validation, not only the primary one."""
    from test_input_tables import _screen, _snakemake

    root = _screen(tmp_path, complexes="C1\tG1 G2\nC2\tG3 G4\n")
    (root / "humap.tsv").write_text("H1\tG1 G2\nH2\tG3 OTHER\n")
    proc = _snakemake(root, {"input": {"ground_truth": {"CORUM": str(root / "complexes.tsv"),
                                                        "HuMAP": str(root / "humap.tsv")}}})
    assert proc.returncode != 0
    assert "Error in rule validate_inputs" in proc.stderr
    assert "humap.tsv: fewer than 2 usable complexes" in proc.stderr
