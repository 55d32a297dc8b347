"""The HTML report, built from small fabricated pipeline outputs."""

import base64
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from opsembed.io.errors import InputError
from opsembed.io.h5 import write_cells_h5
from opsembed.report.build import build_report
from opsembed.report.figures import cells_figure, loss_figure
from opsembed.report.html import esc
from opsembed.report.sections import TITLES
from opsembed.report.versions import software_versions

CONFIG = {"seed": 0, "controls": "nontargeting",
          "evaluation": {"ground_truth": {"min_genes": 5, "max_genes": 10},
                         "kmeans": {"n_runs": 100}, "recall": {"percentile": 5}},
          "preprocess": {"rescale": {"low": 0.1, "high": 99.9}},
          "methods": {"engineered": {"pca_variance": 0.95}}}


def tiny_png(path, colour):
    fig = Figure(figsize=(1, 1))
    fig.subplots().plot([0, 1], [0, 1], color=colour)
    fig.savefig(path, format="png", dpi=20)
    return path


def write_tsv(df, path):
    df.to_csv(path, sep="\t", index=False)
    return path


@pytest.fixture
def inputs(tmp_path):
    genes = ["A"] * 3 + ["B"] * 2 + ["nontargeting"] * 4 + ["C"]
    n = len(genes)
    obs = pd.DataFrame({"plate": ["P1"] * 6 + ["P2"] * 4, "well": "A1", "tile": "0",
                        "cell_id": [str(i) for i in range(n)], "y": 1.0, "x": 1.0, "gene": genes,
                        "sgRNA": genes, "batch": "b"})
    write_cells_h5(tmp_path / "cells.h5", obs, [np.zeros((n, 1, 4, 4))],
                   {"channels": ["DNA"], "controls": "nontargeting"})
    metrics = pd.DataFrame({
        "method": ["random", "engineered"], "mAP": [0.104, 0.345],
        "purity_mean": [0.257, 0.61], "purity_sd": [0.02, 0.031],
        "nmi_mean": [0.31, 0.52], "nmi_sd": [0.02, 0.04],
        "ari_mean": [0.0, 0.22], "ari_sd": [0.01, 0.05], "recall": [0.1, 0.3],
        "n_genes_evaluated": [106, 40], "n_complexes": [14, 14], "coverage": [1.0, 0.377],
        "coverage_warning": [False, True]})
    return dict(
        metrics=write_tsv(metrics, tmp_path / "metrics.tsv"),
        ksweep_png=tiny_png(tmp_path / "ksweep.png", "red"),
        umaps=[tiny_png(tmp_path / "umap_random.png", "blue"),
               tiny_png(tmp_path / "umap_eng.png", "green")],
        curated=write_tsv(pd.DataFrame({"gene": ["A", "B", "C"],
                                        "complex": ["Mediator", "Mediator", "Ragulator"]}),
                          tmp_path / "curated.tsv"),
        curation_log=write_tsv(pd.DataFrame({"complex": ["Exosome", "Exosome", "Mediator"],
                                             "gene": ["X", "Y", "Z"],
                                             "reason": ["fewer than min_genes", "fewer than min_genes",
                                                        "capped at max_genes"]}),
                               tmp_path / "log.tsv"),
        cells=tmp_path / "cells.h5",
        summary=write_tsv(pd.DataFrame({"plate": ["P1", "P1", "P2"], "well": ["A1", "A2", "A1"],
                                        "n_cells": [5, 3, 6], "n_kept": [4, 2, 4],
                                        "n_dropped_edge": [1, 1, 2], "n_padded": [0, 0, 0]}),
                          tmp_path / "summary.tsv"),
        percentiles=write_tsv(pd.DataFrame({"plate": ["P1"], "channel": ["DNA"], "low": [101.5],
                                            "high": [4321.25]}), tmp_path / "pct.tsv"),
        flatfield_qc=[tiny_png(tmp_path / "P1.png", "black"), tiny_png(tmp_path / "P2.png", "grey")],
        zscore=write_tsv(pd.DataFrame({"batch": ["P1"], "channel": ["DNA"], "mean": [0.1234],
                                       "std": [0.0567], "n_control_cells": [77]}), tmp_path / "z.tsv"),
        methods=["random", "engineered"],
        config=CONFIG,
    )


def build(tmp_path, inputs, training=None, benchmarks=None):
    out = tmp_path / "out" / "report.html"
    build_report(out, training=training, benchmarks=benchmarks, **inputs)
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temp file left
    return out.read_text()


def test_report_has_every_section_and_only_embedded_images(tmp_path, inputs):
    text = build(tmp_path, inputs)
    for key, title in TITLES.items():
        assert (f"<h2>{esc(title)}</h2>" in text) == (key not in ("ood", "vae", "complexes", "significance", "montage"))  # only when given
    sources = re.findall(r'src="([^"]*)"', text)
    # k sweep, 2 UMAPs, cells-per-gene figure, 2 flatfield panels
    assert len(sources) == 6
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<link" not in text and "<script" not in text and "href=\"http" not in text
    for path in [inputs["ksweep_png"], *inputs["umaps"], *inputs["flatfield_qc"]]:
        assert base64.b64encode(path.read_bytes()).decode() in text


def test_report_tables(tmp_path, inputs):
    text = build(tmp_path, inputs)
    # Table 1: mean ± sd, best per column in bold, low coverage flagged
    assert "<b>0.345</b>" in text and "<b>0.610 ± 0.031</b>" in text
    assert "0.257 ± 0.020" in text and "<b>0.257" not in text
    assert "engineered &#9888;" in text and "Low coverage: engineered" in text
    assert "random &#9888;" not in text
    # dataset: 10 cells, 3 genes, 4 controls, 2 plates; dropped-cells totals over wells
    assert "10 cells in" in text and "3 targeted genes" in text and "4 control cells" in text
    assert ("all plates</td><td class=\"num\">14</td><td class=\"num\">10</td>"
            "<td class=\"num\">4</td>") in text
    # preprocessing tables
    assert "4321.2500" in text and "0.1234" in text and "77" in text
    # ground truth: kept complexes with genes, dropped counted by reason
    assert "<td class=\"text\">Mediator</td><td class=\"num\">2</td><td class=\"text\">A, B</td>" in text
    assert ("<td class=\"text\">fewer than min_genes</td><td class=\"num\">2</td>"
            "<td class=\"num\">1</td><td class=\"num\">2</td>") in text
    # config and versions
    assert "pca_variance: 0.95" in text
    assert f"<td class=\"text\">numpy</td><td class=\"text\">{np.__version__}</td>" in text


def test_training_section_switches_between_note_and_curves(tmp_path, inputs):
    text = build(tmp_path, inputs, training={})
    assert "No learned method ran" in text
    losses = write_tsv(pd.DataFrame({"step": [0, 10, 20], "recon": [1.0, 0.5, 0.3],
                                     "kl": [0.2, 0.1, 0.05]}), tmp_path / "losses.tsv")
    samples = tiny_png(tmp_path / "samples.png", "purple")
    text = build(tmp_path, inputs, training={"grape": {"losses": losses, "samples": samples}})
    assert "No learned method ran" not in text
    assert "<h3>grape</h3>" in text and 'alt="grape losses"' in text
    assert base64.b64encode(samples.read_bytes()).decode() in text
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 8


def test_loss_figure_draws_each_loss():
    df = pd.DataFrame({"step": [0, 1, 2], "recon": [1.0, 0.5, 0.3], "kl": [0.2, 0.1, 0.05]})
    ax = loss_figure(df, "m").axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["recon", "kl"]
    np.testing.assert_array_equal(ax.get_lines()[1].get_ydata(), [0.2, 0.1, 0.05])
    assert ax.get_yscale() == "log"
    df.loc[1, "kl"] = -0.1
    assert loss_figure(df, "m").axes[0].get_yscale() == "linear"


def test_cells_figure_counts():
    obs = pd.DataFrame({"gene": ["A", "A", "B", "ctrl", "ctrl", "C"],
                        "plate": ["1", "1", "1", "2", "2", "2"]})
    ax_hist, ax_bar = cells_figure(obs, "ctrl").axes
    assert sum(p.get_height() for p in ax_hist.patches) == 3  # genes A, B, C; controls excluded
    assert [p.get_height() for p in ax_bar.patches] == [3, 3]


def test_versions_mark_missing_packages():
    versions = dict(software_versions(["numpy", "no-such-package-opsembed"]))
    assert versions["numpy"] == np.__version__
    assert versions["no-such-package-opsembed"] == "not installed"
    assert "python" in versions and "opsembed" in versions


def test_report_input_errors(tmp_path, inputs):
    with pytest.raises(ValueError, match="1 UMAP figures for 2 methods"):
        build(tmp_path, {**inputs, "umaps": inputs["umaps"][:1]})
    bad = write_tsv(pd.DataFrame({"gene": ["A"]}), tmp_path / "bad.tsv")
    with pytest.raises(InputError, match="missing column"):
        build(tmp_path, {**inputs, "curated": bad})
    assert not (tmp_path / "out" / "report.html").exists()


def test_ood_section_shows_levels_best_scores_folds_and_umap(tmp_path, inputs):
    table = pd.DataFrame({"method": ["naive", "ist"], "macro_f1_iid": [0.71, 0.49],
                          "macro_f1_plate": [0.46, 0.52], "clisi": [0.98, 0.94], "blisi": [0.57, 0.51],
                          "knn_batchcv": [0.83, 0.67], "n_folds_iid": [1, 1], "n_folds_plate": [3, 3]})
    folds = pd.DataFrame({"fold": ["iid", "plate-P1"], "level": ["iid", "plate"], "held_out": ["", "P1"],
                          "method": ["naive", "naive"], "macro_f1": [0.71, 0.4]})
    umap = tiny_png(tmp_path / "ood_umap.png", "orange")
    files = {"table": write_tsv(table, tmp_path / "ood.tsv"), "folds": write_tsv(folds, tmp_path / "f.tsv"),
             "umap": umap}
    text = build(tmp_path, inputs, benchmarks={"ood": files})
    assert f"<h2>{esc(TITLES['ood'])}</h2>" in text
    assert "macro-F1 IID" in text and "macro-F1 held-out plate (3 folds)" in text
    # best per column in bold: naive wins IID, IST wins held-out plates
    assert "<b>0.710</b>" in text and "<b>0.520</b>" in text and "<b>0.490</b>" not in text
    assert "plate-P1" in text  # the per-fold rows
    assert base64.b64encode(umap.read_bytes()).decode() in text
    # the section sits right after the embedding UMAPs
    assert text.index(TITLES["umap"]) < text.index(esc(TITLES["ood"])) < text.index(TITLES["dataset"])


def test_ood_section_lists_the_chosen_classes_and_the_hit_list(tmp_path, inputs):
    table = pd.DataFrame({"method": ["naive"], "macro_f1_iid": [0.7], "clisi": [0.9], "blisi": [0.5],
                          "knn_batchcv": [0.8], "n_folds_iid": [1]})
    classes = pd.DataFrame({"gene": ["GENEA", "GENEB"], "class": ["GENEA", ""], "complex": ["cxQ", "cxQ"],
                            "mean_average_precision": [0.8, 0.7], "corrected_p_value": [0.001, 0.001],
                            "chosen": [True, False], "reason": ["most active significant gene of cxQ",
                                                                "same complex as GENEA"]})
    activity = pd.DataFrame({"gene": ["GENEA", "GENEB", "GENEC"], "complex": ["cxQ", "cxQ", ""],
                             "n_cells": [10, 10, 10], "mean_average_precision": [0.8, 0.7, 0.3],
                             "p_value": [0.001, 0.001, 0.6], "corrected_p_value": [0.001, 0.001, 0.6],
                             "significant": [True, True, False]})
    files = {"table": write_tsv(table, tmp_path / "ood.tsv"), "classes": write_tsv(classes, tmp_path / "c.tsv"),
             "activity": write_tsv(activity, tmp_path / "a.tsv")}
    text = build(tmp_path, inputs, benchmarks={"ood": files})
    assert "Classes (1)" in text and "most active significant gene of cxQ" in text
    assert "same complex as GENEA" not in text               # only the chosen rows are listed
    assert "2 of 3 genes significant" in text and "GENEC" in text


def test_ood_section_states_whether_ist_beats_naive_with_the_sd_over_seeds(tmp_path, inputs):
    table = pd.DataFrame({"method": ["naive", "ist"], "macro_f1_iid": [0.7, 0.6], "macro_f1_plate": [0.3, 0.45],
                          "clisi": [0.9, 0.9], "blisi": [0.5, 0.5], "knn_batchcv": [0.8, 0.8],
                          "n_folds_iid": [1, 1], "n_folds_plate": [1, 1], "n_seeds": [2, 2],
                          "sd_macro_f1_iid": [0.01, 0.02], "sd_macro_f1_plate": [0.05, 0.04]})
    # per seed: ist - naive = 0.2 and 0.1 -> +0.150 +- 0.071, ahead in both
    folds = pd.DataFrame({"fold": ["plate-P1"] * 4, "level": ["plate"] * 4, "held_out": ["P1"] * 4,
                          "method": ["naive", "ist", "naive", "ist"], "seed": [0, 0, 1, 1],
                          "macro_f1": [0.3, 0.5, 0.3, 0.4]})
    restyle = pd.DataFrame({"fold": ["iid", "iid"], "metric": ["phenotype_kept", "style_taken"],
                            "value": [0.876, 0.543], "meaning": ["", ""]})
    files = {"table": write_tsv(table, tmp_path / "ood.tsv"), "folds": write_tsv(folds, tmp_path / "f.tsv"),
             "restyle": write_tsv(restyle, tmp_path / "r.tsv")}
    text = build(tmp_path, inputs, benchmarks={"ood": files})
    assert "IST restyles" in text and "0.876" in text and "0.543" in text
    assert "IST beats naive on held-out plates" in text and "+0.150" in text and "± 0.071" in text
    assert "ahead in 2 of them" in text
    assert "<b>0.450</b> ± 0.040" in text and "0.600 ± 0.020" in text     # mean ± SD over seeds


def vae_files(tmp_path, features=True, screen=True):
    """Hand-made evaluate_vae / vae_traversals outputs: pixel (and deep-feature) rows."""
    variants = ["vae", "vae_features"] if features else ["vae"]
    cls = pd.DataFrame([
        {"variant": v, "finetuning": t, "classifier": c, "accuracy": acc, "sd": sd, "chance": 0.125, "n_seeds": 5}
        for v, rows in zip(variants, [[("without", 0.41, 0.021, 0.38, 0.034), ("with", 0.57, 0.012, 0.52, 0.018)],
                                      [("without", 0.33, 0.05, 0.29, 0.041), ("with", 0.46, 0.03, 0.44, 0.027)]])
        for t, gbt, gbt_sd, mlp, mlp_sd in rows
        for c, acc, sd in (("GBT", gbt, gbt_sd), ("MLP", mlp, mlp_sd))])
    dis = [("source", "source", 0.412), ("random", "source", 0.031)]
    if screen:
        dis += [("finetuned", "screen", 0.186), ("source", "screen", 0.122), ("random", "screen", 0.062)]
    dis_df = pd.DataFrame([{"variant": v, "model": m, "dataset": d, "mig": mig, "disentanglement": 0.5,
                            "completeness": 0.25, "informativeness": 0.75} for v in variants for m, d, mig in dis])
    return {"disentanglement": write_tsv(dis_df, tmp_path / "vae_disentanglement.tsv"),
            "classification": write_tsv(cls, tmp_path / "vae_classification.tsv"),
            "mi": tiny_png(tmp_path / "vae_mi.png", "purple"),
            "traversals": tiny_png(tmp_path / "vae_traversals.png", "cyan"),
            "source_traversals": tiny_png(tmp_path / "vae_source_traversals.png", "olive")}


def test_vae_section_shows_table2_mig_dci_and_figures(tmp_path, inputs):
    files = vae_files(tmp_path)
    text = build(tmp_path, inputs, benchmarks={"vae": files})
    assert f"<h2>{esc(TITLES['vae'])}</h2>" in text
    section = text[text.index('<section id="vae">'):text.index('<section id="dataset">')]
    rows = re.findall(r"<tr>(.*?)</tr>", section)
    cells = [c for c in (re.findall(r"<td[^>]*>(.*?)</td>", r) for r in rows) if c]  # header rows left out
    # Table 2: {pixels, deep features} x {without, with}, GBT and MLP mean ± sd (best in bold), chance
    assert cells[:4] == [
        ["pixels", "without", "0.410 ± 0.021", "0.380 ± 0.034", "0.125"],
        ["pixels", "with", "<b>0.570 ± 0.012</b>", "<b>0.520 ± 0.018</b>", "0.125"],
        ["deep features", "without", "0.330 ± 0.050", "0.290 ± 0.041", "0.125"],
        ["deep features", "with", "0.460 ± 0.030", "0.440 ± 0.027", "0.125"]]
    assert "over 5 seeds" in section
    # MIG / DCI: Source on Source, fine-tuned on the screen and the random floors, per input
    assert cells[4] == ["pixels", "Source model on Source", "0.412", "0.500", "0.250", "0.750"]
    labels = [c[1] for c in cells[4:]]
    assert labels[:5] == ["Source model on Source", "random-init encoder on Source (floor)",
                          "fine-tuned model on the screen", "Source model on the screen (no fine-tuning)",
                          "random-init encoder on the screen (floor)"]
    assert len(cells) == 4 + 10
    assert "MIG on the screen is <b>0.186</b> against 0.062 for the random-init encoder (3.0× the floor)" in section
    for key in ("mi", "traversals", "source_traversals"):  # every figure, each with how to read it
        assert base64.b64encode(files[key].read_bytes()).decode() in section
    assert section.count("How to read:") == 3
    # after the embedding UMAPs, before the dataset summary
    assert text.index(TITLES["umap"]) < text.index(esc(TITLES["vae"])) < text.index(TITLES["dataset"])


def test_vae_section_notes_missing_rows_and_is_absent_without_its_tables(tmp_path, inputs):
    files = vae_files(tmp_path, features=False, screen=False)
    del files["traversals"]
    text = build(tmp_path, inputs, benchmarks={"vae": files})
    section = text[text.index('<section id="vae">'):text.index('<section id="dataset">')]
    assert "deep features</td>" not in section and "need <code>methods.vae.features</code>" in section
    assert "No screen rows" in section and "fine-tuned model on the screen" not in section
    assert section.count("How to read:") == 2  # the missing figure is left out
    # no section: method not run, or a table missing
    heading = f"<h2>{esc(TITLES['vae'])}</h2>"
    assert heading not in build(tmp_path, inputs)
    gone = {**files, "classification": tmp_path / "absent.tsv"}
    assert heading not in build(tmp_path, inputs, benchmarks={"vae": gone})
