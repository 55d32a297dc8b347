"""Figures a biologist expects: the clustered similarity heat map, AP per complex, the
fraction of significant genes, and their place in the report."""

import base64
import re

import numpy as np
import pandas as pd
import pytest

from opsembed.evaluate.gene_figures import (complex_ap, cosine_similarity, gene_significance,
                                            plot_complex_ap, plot_similarity_heatmap,
                                            similarity_order)
from opsembed.report.html import esc
from opsembed.report.sections import TITLES

from test_report import build, inputs, write_tsv  # noqa: F401  (fixture)


def _planted(seed=0):
    """12 genes of 3 complexes, each complex a tight bundle around its own direction; the
    genes are interleaved (A0, B0, C0, A1, ...) so that input order puts no two together."""
    rng = np.random.default_rng(seed)
    centres = np.eye(3, 8) * 5
    genes, complexes, rows = [], [], []
    for i in range(4):
        for c, name in enumerate("ABC"):
            genes.append(f"{name}{i}")
            complexes.append(f"complex {name}")
            rows.append(centres[c] + rng.normal(0, 0.3, 8))
    return np.array(rows), np.array(genes), np.array(complexes)


def test_heatmap_order_puts_same_complex_genes_together(tmp_path):
    values, genes, complexes = _planted()
    order = similarity_order(values)
    assert sorted(order) == list(range(12))
    runs = [complexes[order][i] != complexes[order][i - 1] for i in range(1, 12)]
    assert sum(runs) == 2  # three contiguous blocks of four: two boundaries
    drawn = plot_similarity_heatmap(values, genes, complexes, tmp_path / "heat.png", "toy")
    np.testing.assert_array_equal(drawn, order)
    assert (tmp_path / "heat.png").read_bytes()[:4] == b"\x89PNG"
    # input order interleaves the complexes: it has a boundary between every neighbour
    assert sum(complexes[i] != complexes[i - 1] for i in range(1, 12)) == 11


def test_cosine_similarity_by_hand():
    sim = cosine_similarity(np.array([[1.0, 0.0], [1.0, 1.0], [0.0, -2.0]]))
    np.testing.assert_allclose(sim, [[1, 2 ** -0.5, 0], [2 ** -0.5, 1, -(2 ** -0.5)],
                                     [0, -(2 ** -0.5), 1]], atol=1e-12)


def test_complex_ap_is_the_mean_of_its_genes_best_first(tmp_path):
    ap = pd.DataFrame({"gene": list("abcdefg"),
                       "complex": ["X", "X", "Y", "Y", "Y", "Z", "Z"],
                       "average_precision": [0.2, 0.4, 1.0, 0.5, 0.6, 0.9, 0.7]})
    per_complex = pd.DataFrame({"complex": ["X", "Y", "Z"], "significant": [False, True, True]})
    table = complex_ap(ap, per_complex)
    assert list(table["complex"]) == ["Z", "Y", "X"]
    np.testing.assert_allclose(table["mean_ap"], [0.8, 0.7, 0.3])
    assert list(table["n_genes"]) == [2, 3, 2]
    assert list(table["significant"]) == [True, True, False]
    plot_complex_ap(table, tmp_path / "bars.png", "toy", chance=0.2)
    assert (tmp_path / "bars.png").read_bytes()[:4] == b"\x89PNG"


def test_gene_significance_is_benjamini_hochberg():
    # sorted p 0.01, 0.02, 0.03, 0.5 (n = 4): q = min over later of p * n / rank
    ap = pd.DataFrame({"gene": list("abcd"), "p_value": [0.03, 0.01, 0.5, 0.02]})
    out = gene_significance(ap)
    np.testing.assert_allclose(out["corrected_p_value"], [0.04, 0.04, 0.5, 0.04])
    assert list(out["significant"]) == [True, True, False, True]
    assert list(gene_significance(ap, alpha=0.039)["significant"]) == [False] * 4


def test_report_shows_heatmaps_complex_ap_and_significance(tmp_path, inputs):  # noqa: F811
    from test_report import tiny_png

    methods = inputs["methods"]  # random, engineered
    heatmaps = [tiny_png(tmp_path / f"heat_{m}.png", "red") for m in methods]
    bars = [tiny_png(tmp_path / f"bars_{m}.png", "blue") for m in methods]
    tables = [write_tsv(pd.DataFrame({"gene": list("abcd"), "complex": list("XXYY"),
                                      "average_precision": 0.5, "p_value": p,
                                      "corrected_p_value": p, "significant": [x < 0.05 for x in p]}),
                        tmp_path / f"ap_{m}.tsv")
              for m, p in zip(methods, [[0.5, 0.6, 0.7, 0.01], [0.01, 0.02, 0.03, 0.5]])]
    text = build(tmp_path, {**inputs, "heatmaps": heatmaps, "complex_aps": bars, "ap_tables": tables})
    for key in ("complexes", "significance"):
        assert f"<h2>{esc(TITLES[key])}</h2>" in text
    for path in heatmaps + bars:
        assert base64.b64encode(path.read_bytes()).decode() in text
    for caption in ("bright squares on the diagonal", "a long bar means the complex",
                    "A longer bar means more of the method"):
        assert caption in text
    assert text.index(TITLES["umap"]) < text.index(TITLES["complexes"]) < text.index(TITLES["significance"])
    section = text[text.index(f"<h2>{esc(TITLES['significance'])}</h2>"):]
    rows = re.findall(r"<tr><td class=\"text\">(\w+)</td><td class=\"num\">(\d+)</td>"
                      r"<td class=\"num\">(\d+)</td><td class=\"num\">([\d.]+)</td>", section)
    assert rows[:2] == [("random", "4", "1", "0.250"), ("engineered", "4", "3", "0.750")]


def test_report_without_the_new_figures_leaves_their_sections_out(tmp_path, inputs):  # noqa: F811
    text = build(tmp_path, inputs)
    assert TITLES["complexes"] not in text and TITLES["significance"] not in text


def test_report_rejects_a_missing_heatmap(tmp_path, inputs):  # noqa: F811
    with pytest.raises(ValueError, match="1 heat maps"):
        build(tmp_path, {**inputs, "heatmaps": [tmp_path / "x.png"], "complex_aps": [tmp_path / "y.png"] * 2})


def test_montage_draws_seeded_random_cells_of_each_gene():
    from opsembed.report.figures import montage_figure

    obs = pd.DataFrame({"gene": ["A", "B", "A", "ctrl", "A", "B", "A"]})
    asked = []

    def crops_of(index):
        asked.append(list(index))
        return np.ones((len(index), 2, 3, 3))

    montage_figure(obs, crops_of, ["DNA", "actin"], ["A", "B", "ctrl"], 2, seed=5)
    first = asked[0]
    assert len(first) == 5  # 2 of A, 2 of B (both), 1 of ctrl (all it has)
    assert set(first[:2]) <= {0, 2, 4, 6} and sorted(first[2:4]) == [1, 5] and first[4] == 3
    montage_figure(obs, crops_of, ["DNA", "actin"], ["A", "B", "ctrl"], 2, seed=5)
    assert asked[1] == first  # seeded


def test_report_montage_section(tmp_path, inputs):  # noqa: F811
    text = build(tmp_path, {**inputs, "montage_cells": 2})
    assert f"<h2>{esc(TITLES['montage'])}</h2>" in text
    assert "Compare each gene&#x27;s cells with the control cells" in text
    assert len(re.findall(r'src="data:image/png', text)) == 8  # 6 without the gene and complex montages
    assert "cells per complex" in text


def test_complex_montage_draws_cells_of_the_complex_genes_only():
    from opsembed.report.figures import montage_figure
    from opsembed.report.sections import complex_cells

    obs = pd.DataFrame({"gene": ["A", "B", "X", "ctrl", "C", "A", "B"]})
    curated = pd.DataFrame({"gene": ["A", "B", "C"], "complex": ["k2", "k2", "k1"]})
    by_complex, groups = complex_cells(obs, curated, "ctrl")
    assert groups == ["k1", "k2", "ctrl"] and list(by_complex["gene"]) == ["k2", "k2", "", "ctrl", "k1", "k2", "k2"]
    asked = []

    def crops_of(index):
        asked.append(list(index))
        return np.ones((len(index), 2, 3, 3))

    montage_figure(by_complex, crops_of, ["DNA", "actin"], groups, 3, seed=1, unit="complex")
    # k1: its one cell; k2: 3 of the 4 cells of A and B (never X's); ctrl: its one cell
    assert asked[0][0] == 4 and set(asked[0][1:4]) <= {0, 1, 5, 6} and len(set(asked[0][1:4])) == 3
    assert asked[0][4:] == [3]
