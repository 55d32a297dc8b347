"""Phenotypic activity (copairs mAP against the controls) and the OOD classes chosen from it."""

import numpy as np
import pandas as pd
import pytest

from opsembed.evaluate.activity import CLASS_COLUMNS, choose_classes, control_standardised, phenotypic_activity
from opsembed.io.errors import InputError
from opsembed.io.folds import read_classes
from opsembed.io.tables import write_table


def _screen(seed=0, n=30):
    """Two plates; gene A shifts feature 0 by +4 control SDs, B feature 1 by +4, C and D nothing.
    Plate P2 adds +10 to every feature (removed by the per-plate control standardisation)."""
    rng = np.random.default_rng(seed)
    rows, genes, plates = [], [], []
    for plate, offset in (("P1", 0.0), ("P2", 10.0)):
        for g in ["A", "B", "C", "D", "ctrl", "ctrl"]:
            x = rng.normal(0, 1, (n, 4)) + offset
            if g == "A":
                x[:, 0] += 4
            if g == "B":
                x[:, 1] += 4
            rows.append(x)
            genes += [g] * n
            plates += [plate] * n
    return np.concatenate(rows), np.array(genes), np.array(plates)


def test_control_standardisation_centres_each_plate_on_its_controls():
    x = np.array([[1.0, 5.0], [3.0, 5.0], [10.0, 5.0], [11.0, 5.0], [13.0, 5.0], [20.0, 5.0]])
    plates = np.array(["P1"] * 3 + ["P2"] * 3)
    ctrl = np.array([True, True, False, True, True, False])
    z = control_standardised(x, plates, ctrl)
    assert z.shape == (6, 1)                        # the column constant in the controls is dropped
    np.testing.assert_allclose(z[:, 0], [-1, 1, 8, -1, 1, 8])   # controls mean 2 / 12, SD 1
    with pytest.raises(InputError, match="P2"):
        control_standardised(x, plates, np.array([True, True, False, True, False, False]))


def test_active_genes_are_significant_and_inactive_ones_are_not():
    x, genes, plates = _screen()
    act = phenotypic_activity(x, genes, plates, "ctrl", {"A": "cx1", "B": "cx2"}, null_size=200, fdr=0.05,
                              max_cells=1000, seed=0)
    act = act.set_index("gene")
    assert set(act.index) == {"A", "B", "C", "D"}
    assert act.loc[["A", "B"], "significant"].all() and not act.loc[["C", "D"], "significant"].any()
    assert (act.loc[["A", "B"], "mean_average_precision"] > 0.8).all()
    # an inactive gene's cells rank like random among 59 positives and 120 controls: mAP near 60/179
    assert (act.loc[["C", "D"], "mean_average_precision"] < 0.5).all()
    assert act.loc["A", "complex"] == "cx1" and act.loc["C", "complex"] == "" and act.loc["A", "n_cells"] == 60
    with pytest.raises(InputError, match="control"):
        phenotypic_activity(x, genes, plates, "NTC", {}, 50, 0.05, 100, 0)


def _activity(rows):
    return pd.DataFrame(rows, columns=["gene", "complex", "mean_average_precision", "corrected_p_value",
                                       "significant"]).assign(n_cells=10, p_value=0.01)


ACT = _activity([("A1", "cxA", 0.9, 0.001, True), ("B1", "cxB", 0.8, 0.001, True),
                 ("A2", "cxA", 0.7, 0.001, True), ("S", "", 0.6, 0.01, True),
                 ("B2", "cxB", 0.5, 0.2, False), ("N", "", 0.3, 0.5, False)])


def test_classes_are_the_most_active_significant_gene_per_complex():
    c = choose_classes(ACT, None, None, "gene")
    assert list(c.columns) == CLASS_COLUMNS
    chosen = c[c["chosen"]]
    assert chosen["gene"].tolist() == ["A1", "B1", "S"] and chosen["class"].tolist() == ["A1", "B1", "S"]
    reasons = dict(zip(c["gene"], c["reason"]))
    assert reasons["A2"] == "same complex as A1" and reasons["B2"].startswith("not significant")
    assert reasons["S"] == "significant, in no curated complex"
    capped = choose_classes(ACT, None, 2, "gene")
    assert capped.loc[capped["chosen"], "gene"].tolist() == ["A1", "B1"]
    assert dict(zip(capped["gene"], capped["reason"]))["S"] == "max_genes (2) reached"


def test_complex_labels_pool_the_significant_genes_of_a_complex():
    c = choose_classes(ACT, None, None, "complex")
    chosen = dict(zip(c.loc[c["chosen"], "gene"], c.loc[c["chosen"], "class"]))
    assert chosen == {"A1": "cxA", "A2": "cxA", "B1": "cxB", "S": "S"}     # B2 is not significant


def test_explicit_genes_override_and_a_screen_without_hits_falls_back():
    c = choose_classes(ACT, ["N", "B2"], None, "gene")
    assert sorted(c.loc[c["chosen"], "gene"]) == ["B2", "N"]
    assert set(c.loc[c["chosen"], "reason"]) == {"ood.genes"}
    with pytest.raises(InputError, match="ZZ"):
        choose_classes(ACT, ["ZZ"], None, "gene")
    none = ACT.assign(significant=False)
    c = choose_classes(none, None, None, "gene")
    assert c.loc[c["chosen"], "gene"].tolist() == ["A1", "B1"]       # the two most active groups
    assert c.loc[c["chosen"], "reason"].str.startswith("fallback").all()
    with pytest.raises(InputError, match="labels"):
        choose_classes(ACT, None, None, "plate")


def test_read_classes_returns_the_chosen_genes(tmp_path):
    path = tmp_path / "classes.tsv"
    write_table(choose_classes(ACT, None, None, "complex"), path)
    assert read_classes(path) == {"A1": "cxA", "A2": "cxA", "B1": "cxB", "S": "S"}
