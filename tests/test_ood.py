"""OOD protocol: folds, macro-F1, LISI, kNN BatchCV, Harmony-kNN, the combined table."""

import numpy as np
import pandas as pd
import pytest
from harmonypy import compute_lisi
from sklearn.metrics import f1_score

from ood_toy import toy_obs
from opsembed.evaluate.ood import (harmony_knn, knn_batchcv, knn_predict, macro_f1, scaled_blisi, scaled_clisi,
                                   scored_macro_f1)
from opsembed.evaluate.ood_eval import combine_ood
from opsembed.io.errors import InputError
from opsembed.io.folds import IID, fold_id, gene_subset, list_folds, ood_folds
from opsembed.io.tables import read_table, write_table

LEVELS = {"levels": [{"name": "well", "columns": ["plate", "well"], "max_folds": None},
                     {"name": "plate", "columns": ["plate"], "max_folds": None},
                     {"name": "series", "columns": ["series"], "max_folds": None}]}


def test_folds_never_leak_a_held_out_oe():
    obs = toy_obs(n_plates=3, n_wells=2, n_genes=6, per_well=3, series=True)
    folds = ood_folds(obs, LEVELS, seed=0)
    assert [f["fold_id"] for f in folds] == [
        "iid", "well-P1_A1", "well-P1_A2", "well-P2_A1", "well-P2_A2", "well-P3_A1", "well-P3_A2",
        "plate-P1", "plate-P2", "plate-P3", "series-S1", "series-S2"]
    for f in folds:
        train, test = f["train_idx"], f["test_idx"]
        assert len(np.intersect1d(train, test)) == 0
        assert len(train) + len(test) == len(obs)
        if f["level"] == IID:
            continue
        labels = obs[f["columns"]].astype(str).agg("/".join, axis=1).to_numpy()
        assert set(labels[test]) == {f["held_out"]}
        assert f["held_out"] not in set(labels[train])


def test_iid_split_is_stratified_and_keeps_every_gene_in_training():
    obs = toy_obs(n_plates=2, n_wells=1, n_genes=4, per_well=5)
    iid = ood_folds(obs, {"iid_test_fraction": 0.2}, seed=3)[0]
    genes = obs["gene"].to_numpy()
    for g in set(genes):
        n = int((genes == g).sum())
        assert int((genes[iid["test_idx"]] == g).sum()) == int(np.floor(0.2 * n))
    assert set(genes[iid["train_idx"]]) == set(genes)


def test_missing_or_single_oe_levels_are_skipped():
    obs = toy_obs(n_plates=2, n_wells=1, n_genes=3, per_well=2)      # no series column, one well
    ids = [f["fold_id"] for f in ood_folds(obs, LEVELS)]
    assert ids == ["iid", "well-P1_A1", "well-P2_A1", "plate-P1", "plate-P2"]
    one_plate = obs[obs["plate"] == "P1"]
    assert [f["fold_id"] for f in ood_folds(one_plate, LEVELS)] == ["iid"]


def test_list_folds_on_the_layout_matches_the_cells_and_max_folds_is_seeded():
    obs = toy_obs(n_plates=4, n_wells=3, n_genes=5, per_well=2)
    cfg = {"levels": [{"name": "well", "columns": ["plate", "well"], "max_folds": 2},
                      {"name": "plate", "columns": ["plate"], "max_folds": None}], "seed": 5}
    layout = obs[["plate", "well"]].drop_duplicates()
    ids = list_folds(layout, cfg)
    assert ids == [f["fold_id"] for f in ood_folds(obs, cfg)]
    assert sum(i.startswith("well-") for i in ids) == 2
    assert ids == list_folds(layout, cfg)
    others = {tuple(list_folds(layout, dict(cfg, seed=s))) for s in range(10)}
    assert len(others) > 1
    assert fold_id("plate", "P 1/a:b") == "plate-P_1_a_b"


def test_gene_subset_keeps_the_genes_of_the_classes():
    genes = np.array(["B", "A", "ctrl", "C", "B", "A", "ctrl", "D", "C", "ctrl"])
    assert gene_subset(genes, None).all()
    assert gene_subset(genes, {"D": "D", "ctrl": "ctrl"}).tolist() == [
        False, False, True, False, False, False, True, True, False, True]
    assert sorted(set(genes[gene_subset(genes, {"A": "X", "C": "X"})])) == ["A", "C"]
    with pytest.raises(InputError, match="E"):
        gene_subset(genes, {"A": "A", "E": "E"})


def test_folds_drop_the_cells_of_other_genes_from_train_and_test():
    obs = toy_obs(n_plates=3, n_wells=2, n_genes=6, per_well=3)
    genes = obs["gene"].to_numpy()
    full = {f["fold_id"]: f for f in ood_folds(obs, LEVELS, seed=0)}
    classes = {g: g for g in ["G1", "G2", "nontargeting"]}
    sub = ood_folds(obs, LEVELS, seed=0, classes=classes)
    assert [f["fold_id"] for f in sub] == list(full)
    keep = np.isin(genes, ["G1", "G2", "nontargeting"])
    for f in sub:
        assert set(genes[f["train_idx"]]) == {"G1", "G2", "nontargeting"}
        if f["level"] != IID:     # the same held-out cells, less the other genes
            for part in ("train_idx", "test_idx"):
                assert f[part].tolist() == [i for i in full[f["fold_id"]][part] if keep[i]]
    iid = sub[0]
    assert len(iid["train_idx"]) + len(iid["test_idx"]) == int(keep.sum())
    # G1 (absent from P2) and G2 (absent from P3): 2 plates x 2 wells x 3 cells = 12 each; floor(0.2 * 12) = 2
    assert int((genes[iid["test_idx"]] == "G1").sum()) == 2


def test_level_names_must_be_unique():
    with pytest.raises(InputError, match="unique"):
        list_folds(toy_obs(), {"levels": [{"name": "iid", "columns": ["plate"]}]})


def test_macro_f1_equals_sklearn_and_scoring_skips_genes_unseen_in_training():
    y_true = np.array(["a", "a", "b", "b", "c", "c", "d"])
    y_pred = np.array(["a", "b", "b", "b", "a", "c", "a"])
    labels = ["a", "b", "c", "d"]
    assert macro_f1(y_true, y_pred, labels) == pytest.approx(
        f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))
    # by hand: a P=1/3 R=1/2 F=0.4; b P=2/3 R=1 F=0.8; c P=1 R=1/2 F=2/3; d F=0
    assert macro_f1(y_true, y_pred, labels) == pytest.approx((0.4 + 0.8 + 2 / 3 + 0) / 4)
    # "d" has no training cells: its test cell is not scored and it is not averaged
    out = scored_macro_f1(["a", "b", "c"], y_true, y_pred)
    assert out["n_scored_genes"] == 3 and out["n_scored_cells"] == 6 and out["n_test_cells"] == 7
    assert out["macro_f1"] == pytest.approx(f1_score(y_true[:6], y_pred[:6], labels=["a", "b", "c"],
                                                     average="macro"))
    assert out["accuracy"] == pytest.approx(4 / 6)


def test_lisi_on_identical_points_matches_the_hand_formula():
    # 10 identical points: every cell's 9 neighbours weigh the same, so
    # LISI = 1 / sum_b (n_b / 9)^2 over the other cells' labels.
    x = np.zeros((10, 2))
    genes = np.array(["a"] * 4 + ["b"] * 6)
    raw = compute_lisi(x, pd.DataFrame({"g": genes}), ["g"], perplexity=3)[:, 0]
    expected = np.where(genes == "a", 1 / ((3 / 9) ** 2 + (6 / 9) ** 2), 1 / ((4 / 9) ** 2 + (5 / 9) ** 2))
    np.testing.assert_allclose(raw, expected, rtol=1e-6)
    med = np.median(expected)
    assert scaled_clisi(x, genes, 3) == pytest.approx((2 - med) / 1, rel=1e-6)
    assert scaled_blisi(x, genes, 3) == pytest.approx(med - 1, rel=1e-6)


def test_scaled_lisi_is_the_scib_scaling_of_harmonypy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5))
    x[:40] += 4.0                                     # cluster of gene "a"
    genes = np.array(["a"] * 40 + ["b"] * 40 + ["c"] * 40)
    batches = np.tile(["p1", "p2"], 60)
    raw_g = compute_lisi(x, pd.DataFrame({"l": genes}), ["l"], 10)[:, 0]
    raw_b = compute_lisi(x, pd.DataFrame({"l": batches}), ["l"], 10)[:, 0]
    assert scaled_clisi(x, genes, 10) == pytest.approx((3 - np.median(raw_g)) / 2)
    assert scaled_blisi(x, batches, 10) == pytest.approx((np.median(raw_b) - 1) / 1)
    assert 0 < scaled_clisi(x, genes, 10) < 1 and scaled_blisi(x, batches, 10) > 0.8


def test_knn_batchcv_removes_the_query_oes_own_reference_cells():
    # Each plate's "b" cells sit exactly where its own "a" reference cells are not:
    # with its own plate's cells as reference, every query cell would be right; BatchCV
    # must use the other plate only, where the positions of a and b are swapped.
    x_ref = np.array([[0.0], [0.1], [5.0], [5.1], [0.0], [0.1], [5.0], [5.1]])
    y_ref = np.array(["a", "a", "b", "b", "b", "b", "a", "a"])
    oe_ref = np.array(["p1"] * 4 + ["p2"] * 4)
    x_q = np.array([[0.05], [5.05], [0.05], [5.05]])
    y_q = np.array(["a", "b", "b", "a"])
    oe_q = np.array(["p1", "p1", "p2", "p2"])
    assert knn_batchcv(x_ref, y_ref, oe_ref, x_q, y_q, oe_q, k=2) == 0.0
    same = knn_predict(x_ref[:4], y_ref[:4], x_q[:2], 2)
    assert list(same) == ["a", "b"]


def test_harmony_knn_removes_a_batch_shift_then_classifies_by_knn():
    rng = np.random.default_rng(0)
    n = 100
    genes = np.repeat(["a", "b"], n)
    x_ref = np.hstack([np.where(genes == "a", 0.0, 3.0)[:, None], np.zeros((2 * n, 3))]) \
        + rng.normal(0, 0.3, (2 * n, 4))
    x_q = x_ref + np.array([0.0, 2.0, 0.0, 0.0]) + rng.normal(0, 0.05, x_ref.shape)   # the query batch
    pred, z_ref, z_q = harmony_knn(x_ref, genes, ["r"] * (2 * n), x_q, ["q"] * (2 * n), k=5, n_pcs=4, seed=0)
    assert z_ref.shape == z_q.shape == (2 * n, 4)
    raw_gap = np.linalg.norm(x_ref.mean(0) - x_q.mean(0))
    assert np.linalg.norm(z_ref.mean(0) - z_q.mean(0)) < raw_gap / 3
    np.testing.assert_array_equal(pred, knn_predict(z_ref, genes, z_q, 5))
    assert (pred == genes).mean() > 0.95


def test_combine_ood_averages_folds_per_level(tmp_path):
    rows = [("iid", "iid", "", "naive", 0.8, 0.5, 0.6, 0.7), ("plate-P1", "plate", "P1", "naive", 0.2, *[np.nan] * 3),
            ("plate-P2", "plate", "P2", "naive", 0.4, *[np.nan] * 3),
            ("plate-P1", "plate", "P1", "ist", 0.5, *[np.nan] * 3)]
    paths = []
    for i, (fold, level, held, method, f1, cl, bl, bcv) in enumerate(rows):
        df = pd.DataFrame([{"fold": fold, "level": level, "held_out": held, "method": method, "macro_f1": f1,
                            "accuracy": f1, "n_test_cells": 10, "n_scored_cells": 10, "n_scored_genes": 3,
                            "clisi": cl, "blisi": bl, "knn_batchcv": bcv}])
        paths.append(tmp_path / f"m{i}.tsv")
        write_table(df, paths[-1])
    table = combine_ood(paths, tmp_path / "ood.tsv", tmp_path / "folds.tsv")
    assert list(table.columns) == ["method", "macro_f1_iid", "macro_f1_plate", "clisi", "blisi", "knn_batchcv",
                                   "n_folds_iid", "n_folds_plate", "n_seeds", "sd_macro_f1_iid",
                                   "sd_macro_f1_plate"]
    naive = table.set_index("method").loc["naive"]
    assert naive["macro_f1_plate"] == pytest.approx(0.3) and naive["macro_f1_iid"] == pytest.approx(0.8)
    assert naive["n_folds_plate"] == 2 and naive["clisi"] == pytest.approx(0.5)
    ist = table.set_index("method").loc["ist"]
    assert np.isnan(ist["macro_f1_iid"]) and ist["n_folds_iid"] == 0
    assert len(read_table(tmp_path / "folds.tsv")) == 4
    assert read_table(tmp_path / "ood.tsv").shape == table.shape
    assert table["n_seeds"].tolist() == [1, 1] and table["sd_macro_f1_plate"].isna().all()


def test_combine_ood_gives_the_mean_and_sd_over_seeds(tmp_path):
    # per seed the mean over the plate folds: seed 0 (0.2 + 0.4) / 2 = 0.3, seed 1 (0.5 + 0.7) / 2 = 0.6
    rows = [("plate-P1", 0, 0.2), ("plate-P2", 0, 0.4), ("plate-P1", 1, 0.5), ("plate-P2", 1, 0.7),
            ("iid", 0, 0.8), ("iid", 1, 0.9)]
    paths = []
    for i, (fold, seed, f1) in enumerate(rows):
        level = "iid" if fold == "iid" else "plate"
        df = pd.DataFrame([{"fold": fold, "level": level, "held_out": fold[-2:], "method": "naive", "seed": seed,
                            "macro_f1": f1, "clisi": 0.1 * (seed + 1) if level == "iid" else np.nan,
                            "blisi": np.nan, "knn_batchcv": np.nan}])
        paths.append(tmp_path / f"m{i}.tsv")
        write_table(df, paths[-1])
    row = combine_ood(paths, tmp_path / "ood.tsv").iloc[0]
    assert row["macro_f1_plate"] == pytest.approx(0.45) and row["sd_macro_f1_plate"] == pytest.approx(0.3 / 2 ** 0.5)
    assert row["macro_f1_iid"] == pytest.approx(0.85) and row["sd_macro_f1_iid"] == pytest.approx(0.1 / 2 ** 0.5)
    assert row["n_seeds"] == 2 and row["n_folds_plate"] == 2 and row["clisi"] == pytest.approx(0.15)


def test_phenotype_kept_is_the_ratio_of_gene_head_accuracies():
    from opsembed.evaluate.ood import phenotype_kept

    labels = np.array([0, 1, 2, 0])
    original = np.eye(4)[[0, 1, 2, 0]]                      # all 4 right
    restyled = np.eye(4)[[0, 1, 0, 3]]                      # 2 right; class 3 is not allowed -> next best
    restyled[3, 0] = 0.5                                    # the head's best allowed answer is then 0: right
    out = phenotype_kept(restyled, original, labels, allowed=[0, 1, 2])
    assert out == {"accuracy_restyled": 0.75, "accuracy_original": 1.0, "phenotype_kept": 0.75}
    half = phenotype_kept(restyled, np.eye(4)[[0, 1, 1, 1]], labels, allowed=[0, 1, 2])
    assert half["accuracy_original"] == 0.5 and half["phenotype_kept"] == pytest.approx(1.5)
    assert np.isnan(phenotype_kept(restyled, np.eye(4)[[1, 0, 0, 1]], labels, [0, 1, 2])["phenotype_kept"])


def test_style_taken_counts_cells_assigned_to_their_style_oe():
    from opsembed.evaluate.ood import style_taken

    logits = np.eye(5)[[1, 2, 2, 4]]
    out = style_taken(logits, style_oes=[1, 2, 3, 4], allowed=[1, 2, 3, 4])
    assert out == {"style_taken": 0.75, "chance": 0.25, "style_taken_over_chance": 3.0}
    # an OE outside ``allowed`` (e.g. the held-out plate's) is never the answer
    assert style_taken(np.eye(5)[[0, 0]] + 0.1 * np.eye(5)[[1, 2]], [1, 2], [1, 2])["style_taken"] == 1.0


def test_harmony_correct_runs_on_a_fold_of_fewer_than_15_cells():
    """harmonypy's cluster rule round(n / 30) is 0 below 15 cells and it refuses 0 clusters; a
    tiny fold (7 cells here, as a tiny screen's IID fold has) gets 1 cluster instead."""
    from opsembed.evaluate.ood import harmony_correct

    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 6))
    z = harmony_correct(x, ["a", "a", "a", "b", "b", "b", "b"], n_pcs=3, seed=0)
    assert z.shape == (7, 3) and np.isfinite(z).all()
