"""The report's sections, each built into a :class:`Section` from read tables or image paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..evaluate.gene_figures import gene_significance
from ..io.tables import read_table
from .figures import cells_figure, loss_figure, montage_figure, png, significance_figure
from .html import Section, esc, fmt, image, table
from .versions import software_versions

TITLES = {
    "metrics": "Benchmark: how well each embedding groups protein complexes",
    "ksweep": "Clustering across the number of clusters k",
    "umap": "Gene embeddings at a glance (UMAP)",
    "complexes": "Which complexes each method recovers",
    "significance": "How many genes each method places significantly well",
    "montage": "What the cells of each gene look like",
    "ood": "Out-of-distribution benchmark: do gene predictors survive a new plate?",
    "vae": "Disentangled latents (Ada-GVAE)",
    "dataset": "Dataset summary",
    "preprocessing": "Preprocessing quality control",
    "ground-truth": "Ground truth: curated protein complexes",
    "training": "Training",
    "config": "Configuration used",
    "versions": "Software versions",
}
"""Section id -> heading, in report order."""

SCORES = [  # (label, mean column, sd column or None)
    ("mAP", "mAP", None),
    ("Purity", "purity_mean", "purity_sd"),
    ("NMI", "nmi_mean", "nmi_sd"),
    ("ARI", "ari_mean", "ari_sd"),
    ("Recall", "recall", None),
    ("Recall 10/90", "recall_10_90", None),
]
SIDE_BY_SIDE = [("mAP", "mAP"), ("ARI", "ari_mean"), ("Recall 10/90", "recall_10_90")]
"""(label, metrics.tsv column) of the scores shown once per ground truth."""
COUNTS = [("Genes evaluated", "n_genes_evaluated"), ("Complexes", "n_complexes"), ("Coverage", "coverage")]


def _get(config: dict, *keys, default=None):
    for key in keys:
        if not isinstance(config, dict) or key not in config:
            return default
        config = config[key]
    return config


def _as_bool(values: pd.Series) -> np.ndarray:
    if values.dtype == bool:
        return values.to_numpy()
    return values.astype(str).str.strip().str.lower().isin(["true", "1", "yes"]).to_numpy()


def ground_truth_names(metrics: pd.DataFrame) -> list:
    """The ground truths of a metrics table in order (the primary one first); ``[None]``
    for a table without a ``ground_truth`` column."""
    if "ground_truth" not in metrics.columns:
        return [None]
    return list(dict.fromkeys(metrics["ground_truth"].astype(str)))


def primary_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    """The rows of the primary (first) ground truth of a metrics table."""
    name = ground_truth_names(metrics)[0]
    return metrics if name is None else metrics[metrics["ground_truth"].astype(str) == name]


def _bold_best(values: np.ndarray, texts: list[str]) -> list[str]:
    """``texts`` escaped, the ones at the column's largest finite value in bold."""
    best = np.nanmax(values) if np.isfinite(values).any() else np.nan
    return [f"<b>{esc(t)}</b>" if np.isfinite(v) and np.isclose(v, best) else esc(t)
            for v, t in zip(values, texts)]


def _score_table(m: pd.DataFrame, warn: np.ndarray) -> str:
    """Method x scores (mean ± sd) of one ground truth's rows, best per column in bold."""
    shown = pd.DataFrame({"Method": [esc(x) + (" &#9888;" if w else "") for x, w in zip(m["method"], warn)]})
    for label, mean_col, sd_col in SCORES:
        if mean_col not in m.columns:
            continue
        means = m[mean_col].to_numpy(dtype=float)
        texts = [fmt(mean) + (f" ± {fmt(float(sd))}" if sd_col in m.columns else "")
                 for mean, sd in zip(means, m[sd_col] if sd_col in m.columns else means)]
        shown[label] = _bold_best(means, texts)
    for label, col in COUNTS:
        if col == "coverage" and col in m.columns:
            shown[label] = [f"{c:.0%}" if np.isfinite(c) else "–" for c in m[col].to_numpy(dtype=float)]
        elif col in m.columns:
            shown[label] = m[col].to_numpy()
    raw = tuple(c for c in shown.columns if c not in ("Genes evaluated", "Complexes"))  # built above
    return table(shown, raw_html=raw)


def _side_by_side(m: pd.DataFrame, names: list[str]) -> str:
    """One row per method, each of SIDE_BY_SIDE's scores once per ground truth."""
    methods = list(dict.fromkeys(m["method"].astype(str)))
    shown = pd.DataFrame({"Method": [esc(x) for x in methods]})
    for label, col in SIDE_BY_SIDE:
        if col not in m.columns:
            continue
        for name in names:
            sub = m[m["ground_truth"].astype(str) == name]
            values = (pd.Series(sub[col].to_numpy(dtype=float), index=sub["method"].astype(str))
                      .reindex(methods).to_numpy(dtype=float))
            shown[f"{label} · {name}"] = _bold_best(values, [fmt(v) if np.isfinite(v) else "–" for v in values])
    return table(shown, raw_html=tuple(shown.columns))


def metrics_section(metrics: pd.DataFrame, config: dict) -> Section:
    """Table 1 analogue: method x scores (mean ± sd), best per column in bold; one table
    per ground truth, and the main scores of every ground truth side by side when there
    are several (``ground_truth`` column of metrics.tsv)."""
    m = metrics.reset_index(drop=True)
    if "coverage_warning" in m.columns:
        warn = _as_bool(m["coverage_warning"])
    elif "coverage" in m.columns:
        warn = m["coverage"].to_numpy(dtype=float) < 0.5
    else:
        warn = np.zeros(len(m), dtype=bool)
    names = ground_truth_names(m)
    n_runs = _get(config, "evaluation", "kmeans", "n_runs", default="several")
    pct = _get(config, "evaluation", "recall", "percentile", default=5)
    body = [
        "<div class=\"explain\"><p>Each method turns the screen into one vector per gene. A good "
        "representation places genes whose proteins form the same complex (CORUM) close together. "
        "Higher is better for every score; the best value in each column is in <b>bold</b>.</p><ul>"
        "<li><b>mAP</b> (mean average precision): for each gene, all other evaluated genes are ranked "
        "by cosine similarity; average precision is high when the gene's complex partners come first. "
        "The mean over genes is shown (1 = partners always ranked first; a random embedding scores "
        "about the fraction of pairs that share a complex).</li>"
        f"<li><b>Purity</b>, <b>NMI</b>, <b>ARI</b>: k-means with k = number of complexes, repeated "
        f"{esc(n_runs)} times from different random starts (mean ± sd over runs). Purity: fraction "
        "of genes whose cluster's majority complex is their own. NMI (normalised mutual information): "
        "how much knowing the cluster tells about the complex (0 = nothing, 1 = everything). ARI "
        "(adjusted Rand index): agreement on which pairs of genes belong together, corrected for "
        "chance (0 = random, 1 = identical).</li>"
        f"<li><b>Recall</b>: fraction of same-complex gene pairs whose cosine similarity is in the top "
        f"or bottom {esc(pct)}% of all gene pairs (a random embedding gives about "
        f"{2 * float(pct) / 100:.2f}). <b>Recall 10/90</b>: the same at EFAAR's thresholds, the 10th "
        "and 90th percentiles (chance 0.20). Strongly anti-correlated pairs count too, as in EFAAR.</li>"
        "<li><b>Coverage</b>: fraction of the curated genes present in the embedding.</li></ul></div>",
    ]
    if len(names) > 1:
        body.append("<h3>Ground truths side by side</h3><div class=\"explain\">Every method scored "
                    f"against each of the {len(names)} ground truths ({esc(', '.join(names))}; the first "
                    "is the primary one, used by the figures below). Each ground truth is curated "
                    "against the screen separately, so its genes and complexes differ; compare methods "
                    "within a column, not columns with each other.</div>" + _side_by_side(m, names))
    for name in names:
        rows = np.ones(len(m), dtype=bool) if name is None else (m["ground_truth"].astype(str) == name).to_numpy()
        if len(names) > 1:
            body.append(f"<h3>Ground truth: {esc(name)}</h3>")
        body.append(_score_table(m[rows], warn[rows]))
    if warn.any():
        labels = [esc(m["method"].iloc[i]) + (f" ({esc(m['ground_truth'].iloc[i])})" if len(names) > 1 else "")
                  for i in np.flatnonzero(warn)]
        body.append(f"<div class=\"warning\">&#9888; Low coverage: {', '.join(labels)}. Under half of the "
                    "curated genes have an embedding, so these scores rest on a subset of the "
                    "complexes and are not directly comparable with the other rows.</div>")
    body.append("<details><summary>All columns of metrics.tsv</summary>" + table(m) + "</details>")
    return Section("metrics", TITLES["metrics"], "".join(body))


def ksweep_section(ksweep_png) -> Section:
    body = ("<div class=\"explain\">The clustering scores above use k = number of complexes. Here "
            "k-means is repeated for each k over a range; lines are the mean over random starts, "
            "shaded bands ± one standard deviation. A representation that captures complexes keeps "
            "its lead over the random baseline across k.</div>"
            + image(ksweep_png, "k sweep", "Purity, NMI and ARI against k, per method."))
    return Section("ksweep", TITLES["ksweep"], body)


def umap_section(methods: list[str], umaps: list) -> Section:
    if len(methods) != len(umaps):
        raise ValueError(f"report: {len(umaps)} UMAP figures for {len(methods)} methods")
    figures = "".join(image(p, f"UMAP {m}", f"{m}: each dot is a gene, coloured by its complex; "
                            "a complex captured by the method forms one tight group of its colour.")
                      for m, p in zip(methods, umaps))
    body = ("<div class=\"explain\">Two-dimensional UMAP projections of each method's gene "
            "embeddings, coloured by curated complex. Genes of one complex forming a tight group "
            "means the method captured that complex. Distances between groups are not meaningful "
            "in a UMAP; the heat maps below show them.</div>" + figures)
    return Section("umap", TITLES["umap"], body)


def complexes_section(methods: list[str], heatmaps: list, complex_aps: list) -> Section:
    """Per method: the clustered gene x gene similarity heat map and the mean AP per complex."""
    if not len(methods) == len(heatmaps) == len(complex_aps):
        raise ValueError(f"report: {len(heatmaps)} heat maps and {len(complex_aps)} AP-per-complex "
                         f"figures for {len(methods)} methods")
    parts = ["<div class=\"explain\">The heat map is the figure OPS papers show: cosine similarity "
             "between every pair of genes, genes ordered by hierarchical clustering (average "
             "linkage), with a strip giving each gene's curated complex. The bars give, per complex, "
             "the mean average precision of its genes (the per-gene AP behind the mAP of the "
             "benchmark table).</div>"]
    for method, heat, bars in zip(methods, heatmaps, complex_aps):
        parts.append(f"<h3>{esc(method)}</h3>")
        parts.append(image(heat, f"similarity heat map {method}",
                           f"{method}: bright squares on the diagonal whose strip has one colour are "
                           "complexes whose genes look alike to the method; a complex split over "
                           "several squares, or mixed into another's, is not recovered."))
        parts.append(image(bars, f"AP per complex {method}",
                           f"{method}: a long bar means the complex's members are each other's "
                           "nearest genes; light bars are complexes whose mAP is not significant "
                           "(BH-corrected p >= 0.05), the dashed line is what a random ranking gives."))
    return Section("complexes", TITLES["complexes"], "".join(parts))


def significance_section(methods: list[str], ap_tables: list, metrics: pd.DataFrame) -> Section:
    """Per method: genes whose AP beats copairs' permutation null after BH correction over
    genes (``ap_per_gene.tsv``: p_value, corrected_p_value, significant), next to the
    fraction of significant complexes and the overall mAP p-value from ``metrics``."""
    if len(methods) != len(ap_tables):
        raise ValueError(f"report: {len(ap_tables)} per-gene AP tables for {len(methods)} methods")
    rows = []
    primary = primary_rows(metrics)  # the per-gene tables are the primary ground truth's
    by_method = primary.set_index(primary["method"].astype(str))
    for method, path in zip(methods, ap_tables):
        ap = read_table(path)
        if "significant" not in ap.columns:  # written before the per-gene q-values existed
            ap = gene_significance(ap)
        sig = _as_bool(ap["significant"])
        row = by_method.loc[method] if method in by_method.index else pd.Series(dtype=float)
        rows.append({"Method": method, "Genes evaluated": len(ap), "Genes significant": int(sig.sum()),
                     "Fraction of genes significant": float(sig.mean()) if len(ap) else np.nan,
                     "Fraction of complexes significant": float(row.get("map_fraction_significant", np.nan)),
                     "mAP p-value": float(row.get("map_p_value", np.nan))})
    shown = pd.DataFrame(rows)
    body = ("<div class=\"explain\">copairs compares each gene's AP with the AP of random rankings "
            "of the same size (a permutation null); its p-values are corrected over the genes of the "
            "method with Benjamini-Hochberg, and a gene counts as significant when the corrected "
            "p-value (q-value) is below 0.05. The complexes column does the same with each "
            "complex's mAP; the last column tests the mAP of all genes together.</div>"
            + image(png(significance_figure(shown["Method"].tolist(),
                                            shown["Fraction of genes significant"].to_numpy())),
                    "fraction of significant genes",
                    "A longer bar means more of the method's genes have their complex partners "
                    "ranked first more often than chance; a random embedding should be near 0.")
            + table(shown, digits=3))
    return Section("significance", TITLES["significance"], body)


def montage_section(cells, curated: pd.DataFrame, controls: str | None, n_cells: int,
                    seed: int) -> Section:
    """``n_cells`` random real cells (seeded) of every curated gene, grouped by complex, and
    of the controls, from the cells file ``cells``."""
    from ..io.h5 import read_attrs, read_crops, read_obs

    cur = curated.astype(str).sort_values(["complex", "gene"])
    obs = read_obs(cells)
    present = set(obs["gene"].astype(str))
    genes = [g for g in cur["gene"] if g in present]
    if controls is not None and str(controls) in present:
        genes.append(str(controls))
    channels = [str(c) for c in read_attrs(cells)["channels"]]
    fig = montage_figure(obs, lambda index: read_crops(cells, index), channels, genes, n_cells, seed,
                         dict(zip(cur["gene"], cur["complex"])))
    by_complex, groups = complex_cells(obs, cur, controls)
    per_complex = 2 * n_cells
    fig_complex = montage_figure(by_complex, lambda index: read_crops(cells, index), channels, groups,
                                 per_complex, seed, genes_per_row=2, unit="complex")
    body = ("<div class=\"explain\">Real cells from <code>cells.h5</code> (after illumination "
            f"correction and standardisation), {n_cells} per gene drawn at random with seed "
            f"{esc(seed)}, genes grouped by complex, the controls last; then {per_complex} per "
            "complex, drawn from all cells of its curated genes together.</div>"
            + image(png(fig, dpi=80), "cells per gene",
                    "Compare each gene's cells with the control cells (last): a knockout with a "
                    "phenotype looks different from them, and genes of one complex should look "
                    "different in the same way.")
            + image(png(fig_complex, dpi=80), "cells per complex",
                    "Two complexes per row, each with cells drawn from all its genes' knockouts, the "
                    "controls last: a complex with a phenotype shows it in most of its cells, "
                    "whichever gene was knocked out."))
    return Section("montage", TITLES["montage"], body)


def complex_cells(obs: pd.DataFrame, curated: pd.DataFrame, controls: str | None) -> tuple[pd.DataFrame, list[str]]:
    """``obs`` (same rows) with ``gene`` replaced by the cell's curated complex (controls
    keep their label, other cells get ""), and the labels to show: the complexes with
    cells, sorted, then the controls when present."""
    complex_of = dict(zip(curated["gene"].astype(str), curated["complex"].astype(str)))
    genes = obs["gene"].astype(str)
    label = genes.map(complex_of).fillna("")
    if controls is not None:
        label = label.where(genes != str(controls), str(controls))
    groups = sorted(set(label) - {"", str(controls)})
    if controls is not None and (label == str(controls)).any():
        groups.append(str(controls))
    return obs.assign(gene=label.to_numpy()), groups


def dataset_section(obs: pd.DataFrame, controls: str | None, summary: pd.DataFrame) -> Section:
    """Cells per gene and plate (from cells.h5 obs), and kept/dropped cells (preprocess summary)."""
    genes = obs["gene"].astype(str)
    is_ctrl = genes == str(controls)
    n_genes = genes[~is_ctrl].nunique()
    per_plate = (obs.assign(_ctrl=is_ctrl.to_numpy(), _gene=genes.where(~is_ctrl))
                 .groupby(obs["plate"].astype(str))
                 .agg(wells=("well", "nunique"), cells=("gene", "size"), genes=("_gene", "nunique"),
                      control_cells=("_ctrl", "sum"))
                 .reset_index().rename(columns={"plate": "Plate", "wells": "Wells", "cells": "Cells",
                                                "genes": "Genes", "control_cells": "Control cells"}))
    counts = [c for c in ("n_cells", "n_kept", "n_dropped_edge", "n_dropped_blank", "n_padded")
              if c in summary.columns]
    by_plate = summary.groupby(summary["plate"].astype(str))[counts].sum().reset_index()
    total = pd.DataFrame([{"plate": "all plates", **{c: summary[c].sum() for c in counts}}])
    by_plate = pd.concat([by_plate, total], ignore_index=True)
    body = (
        f"<p>{len(obs):,} cells in <code>cells.h5</code>: {n_genes:,} targeted genes and "
        f"{int(is_ctrl.sum()):,} control cells (<code>{esc(controls)}</code>), "
        f"{obs['plate'].nunique()} plate(s).</p>"
        + image(png(cells_figure(obs, controls)), "cells per gene and plate")
        + "<h3>Cells per plate</h3>" + table(per_plate)
        + "<h3>Cells kept and dropped during cropping</h3>"
        "<div class=\"explain\"><b>n_cells</b>: cells in the input table; <b>n_kept</b>: cells "
        "written to cells.h5; <b>n_dropped_edge</b>: cells too close to the tile edge for a full "
        "crop (dropped); <b>n_dropped_blank</b>: blank crops, constant in every channel (e.g. from an "
        "all-zero tile; dropped); <b>n_padded</b>: crops completed by padding at the tile edge.</div>"
        + table(by_plate)
        + "<details><summary>Per well</summary>" + table(summary) + "</details>"
    )
    return Section("dataset", TITLES["dataset"], body)


def preprocessing_section(flatfield_qc: list, percentiles: pd.DataFrame, zscore: pd.DataFrame,
                          config: dict) -> Section:
    low = _get(config, "preprocess", "rescale", "low", default="low")
    high = _get(config, "preprocess", "rescale", "high", default="high")
    figures = "".join(image(p, f"flatfield {i}", Path(p).stem) for i, p in enumerate(flatfield_qc))
    body = (
        "<h3>Illumination (flatfield) correction</h3>"
        "<div class=\"explain\">Microscope illumination is uneven across the field of view. A "
        "flatfield (and darkfield) profile is estimated per plate and channel with BaSiC and divided "
        "out. The panels show the estimated flatfield (top) and darkfield (bottom) of each channel.</div>"
        + (f"<div class=\"grid\">{figures}</div>" if figures
           else "<p class=\"note\">Flatfield correction was not run.</p>")
        + "<h3>Intensity rescaling</h3>"
        f"<div class=\"explain\">Each channel is rescaled so that its {esc(low)}th percentile maps "
        f"to 0 and its {esc(high)}th percentile to 1, clipping the rest.</div>"
        + table(percentiles, digits=4)
        + "<h3>Standardisation against controls</h3>"
        "<div class=\"explain\">Per batch and channel, pixel intensities are z-scored with the mean "
        "and standard deviation of the negative-control cells, so that control cells look alike "
        "across batches.</div>"
        + table(zscore, digits=4)
    )
    return Section("preprocessing", TITLES["preprocessing"], body)


def ground_truth_section(curated: pd.DataFrame, log: pd.DataFrame, config: dict) -> Section:
    """Kept complexes with their genes; dropped entries counted by reason."""
    gt = _get(config, "evaluation", "ground_truth", default={}) or {}
    kept = (curated.groupby("complex")["gene"]
            .agg(n_genes="size", genes=_join_sorted)
            .reset_index().sort_values(["n_genes", "complex"], ascending=[False, True]))
    kept.columns = ["Complex", "Genes (n)", "Genes"]
    if len(log):
        dropped = (log.groupby("reason")
                   .agg(entries=("reason", "size"), complexes=("complex", "nunique"),
                        genes=("gene", "nunique")).reset_index())
        dropped.columns = ["Reason", "Entries", "Complexes", "Genes"]
        dropped_html = table(dropped)
    else:
        dropped_html = "<p class=\"note\">Nothing was dropped.</p>"
    body = (
        "<div class=\"explain\">The evaluation set is built from the complex file: complexes with at "
        f"least {esc(gt.get('min_genes', '?'))} screened genes are kept, made non-overlapping (largest "
        f"first, each gene in one complex only) and capped at {esc(gt.get('max_genes', '?'))} genes "
        "by a seeded subsample. Control genes are never included.</div>"
        f"<p>{curated['complex'].nunique()} complexes, {curated['gene'].nunique()} genes kept.</p>"
        + table(kept) + "<h3>Dropped, by reason</h3>" + dropped_html
    )
    return Section("ground-truth", TITLES["ground-truth"], body)


def training_section(training: dict) -> Section:
    """Loss curves and sample grids per learned method; a note when none ran.

    ``training`` maps method -> {"losses": TSV path (step + one column per loss),
    "samples": image path, "check_table": generative-check metrics TSV (metric, value, meaning),
    "check_features": its top-feature TSV, "check_figure": its PNG};
    any key may be missing.
    """
    if not training:
        body = ("<p class=\"note\">No learned method ran in this run, so there are no training "
                "curves. Enable a learned method in the config to see its losses and sample "
                "images here.</p>")
        return Section("training", TITLES["training"], body)
    parts = ["<div class=\"explain\">Loss curves during training (lower is better) and images "
             "sampled from each trained model.</div>"]
    for method, files in training.items():
        parts.append(f"<h3>{esc(method)}</h3>")
        if files.get("losses"):
            parts.append(image(png(loss_figure(read_table(files["losses"]), method)), f"{method} losses"))
        if files.get("samples"):
            parts.append(image(files["samples"], f"{method} samples",
                               f"{method}: the same control cells (first column) restyled to a fixed set of genes"))
        if files.get("check_table"):
            parts.append(_generative_check(method, files["check_table"], files.get("check_features"),
                                           files.get("check_figure")))
    return Section("training", TITLES["training"], "".join(parts))


GENERATIVE_GOALS = {"nucleus_iou": (">=", 0.6), "centroid_shift_px": ("<=", 3.0), "input_dependence": (">=", 0.5),
                    "gap_closed_mean": (">=", 0.3)}
"""Headline generative metrics and the value each should reach (issue 16's bar)."""
GENERATIVE_SHOWN = ["nucleus_iou", "nucleus_iou_other_input", "centroid_shift_px", "centroid_shift_other_input_px",
                    "input_dependence", "gap_closed_mean", "gap_closed",
                    "class_accuracy_generated", "class_accuracy_inputs", "class_accuracy_chance",
                    "class_accuracy_real_cv", "frechet_generated", "frechet_inputs"]


def _generative_verdict(m: dict, name: str) -> str:
    """'yes'/'no' where the metric has a goal (class accuracy: >= 2 x chance and above the inputs')."""
    value = m.get(name, np.nan)
    if not np.isfinite(value):
        return ""
    if name == "class_accuracy_generated":
        ok = value >= 2 * m.get("class_accuracy_chance", np.inf) and value > m.get("class_accuracy_inputs", np.inf)
    elif name == "frechet_generated":
        ok = value < m.get("frechet_inputs", -np.inf)
    elif name in GENERATIVE_GOALS:
        op, goal = GENERATIVE_GOALS[name]
        ok = value >= goal if op == ">=" else value <= goal
    else:
        return ""
    return "yes" if ok else "no"


def _generative_check(method: str, table_path, features_path, figure_path) -> str:
    """The generative check of ``method``: its quality metrics, each with what it means and
    whether it meets its goal, then the top-5 feature table and figure."""
    df = read_table(table_path)
    if "metric" not in df.columns:            # a features table from before the metrics existed
        return f"<p class=\"note\">{esc(method)}: the generative check's table is out of date; rerun it.</p>"
    m = dict(zip(df["metric"], df["value"].astype(float)))
    meaning = dict(zip(df["metric"], df["meaning"].fillna("") if "meaning" in df.columns else [""] * len(df)))
    rows = pd.DataFrame({"metric": GENERATIVE_SHOWN,
                         "value": [fmt(m.get(k, np.nan)) for k in GENERATIVE_SHOWN],
                         "meets goal": [_generative_verdict(m, k) for k in GENERATIVE_SHOWN],
                         "what it means": [meaning.get(k, "") for k in GENERATIVE_SHOWN]})
    gap = m.get("gap_closed", np.nan)
    verdict = ("generated cells move most of the way from control to perturbed" if gap >= 0.5 else
               "generated cells move part of the way from control to perturbed" if gap > 0 else
               "generated cells are no closer to perturbed cells than the controls are")
    body = [f"<h4>{esc(method)}: generative check</h4>",
            f"<div class=\"explain\">{int(m.get('n_inputs', 0))} control cells restyled to each of "
            f"{int(m.get('n_targets', 0))} genes, scored for content kept (the input's nucleus stays), input "
            "dependence (outputs differ as the inputs do), style carried (the target gene's features and "
            "complex) and realism (feature distributions). <em>gap closed</em> (Euclidean over the top-5 "
            f"features) is <b>{fmt(gap)}</b>: {verdict}.</div>", table(rows)]
    if features_path:
        feats = read_table(features_path)
        acc = float(feats["rf_balanced_accuracy"].iloc[0])
        body.append(f"<div class=\"explain\">The five engineered features a random forest finds most "
                    f"useful to tell real control from real perturbed cells (held-out balanced accuracy "
                    f"{acc:.2f}); shifts in control standard deviations. <em>per-gene corr</em> and "
                    f"<em>slope</em> compare each gene's generated shift with its real shift, over the genes: "
                    f"corr near 1 means each gene's change is carried in the right direction, the slope how "
                    f"much of it (1: all); a small corr means the change is the same whatever the gene, and "
                    f"<em>intercept</em>, the generated shift of a gene whose real cells do not move the "
                    f"feature, is a change added to every restyle (good: near 0).</div>")
        cols = [c for c in ["rank", "feature", "importance_mean", "control_mean", "perturbed_mean",
                            "generated_mean", "perturbed_shift_sd", "generated_shift_sd", "gap_closed_feature",
                            "per_gene_corr", "per_gene_slope", "per_gene_intercept"]
                if c in feats.columns]
        body.append(table(feats[cols]))
    if figure_path:
        body.append(image(figure_path, f"{method} generative check",
                          f"{method}: distributions of the top-5 features"))
    return "".join(body)


OOD_SCORES = {"clisi": "cLISI", "blisi": "bLISI", "knn_batchcv": "kNN BatchCV"}


def ood_section(files: dict) -> Section:
    """The IST paper's Table 1 and Fig. 5 analogues: macro-F1 per OOD level and IID, cLISI,
    bLISI and kNN BatchCV per predictor, the per-fold rows, and the IID UMAPs.

    ``files``: {"table": ood.tsv (method, macro_f1_<level>..., clisi, blisi, knn_batchcv,
    n_folds_<level>...), "folds": ood_folds.tsv, "umap": PNG}.
    """
    df = read_table(files["table"])
    levels = [c[len("macro_f1_"):] for c in df.columns if c.startswith("macro_f1_")]
    shown = pd.DataFrame({"method": df["method"]})
    for level in levels:
        n = int(df[f"n_folds_{level}"].max()) if f"n_folds_{level}" in df.columns else 0
        label = "IID" if level == "iid" else f"held-out {level} ({n} fold{'s' if n != 1 else ''})"
        shown[f"macro-F1 {label}"] = df[f"macro_f1_{level}"]
    for col, label in OOD_SCORES.items():
        shown[label] = df[col]
    best = {c: shown[c].max() for c in shown.columns[1:]}
    cells = shown.copy()
    for c in shown.columns[1:]:
        cells[c] = [f"<b>{fmt(v)}</b>" if v == best[c] else fmt(v) for v in shown[c]]
    for level in levels:      # mean ± SD over training seeds (ood.seeds > 1)
        col, sd = [c for c in shown.columns if c.startswith("macro-F1") and _level_of(c) == level], f"sd_macro_f1_{level}"
        if col and sd in df.columns and df[sd].notna().any():
            cells[col[0]] = [f"{v} ± {fmt(e)}" if pd.notna(e) else v for v, e in zip(cells[col[0]], df[sd])]
    body = [
        "<div class=\"explain\">Each predictor (a ResNet-18 classifying the gene of a cell) is trained "
        "with one observational environment (OE: a well, a plate, a series) held out and scored on it "
        "(macro-F1 over the genes it saw in training). A predictor that learned the plate instead of "
        "the gene loses accuracy from IID to held-out plates. <em>naive</em>: images as they are; "
        "<em>dr</em>: domain-adversarial; <em>mixstyle</em>: feature-statistics mixing across OEs; "
        "<em>stargan</em> and <em>ist</em>: trained on cells re-imaged into random OEs by a style-transfer "
        "model; <em>_harmony_knn</em>: Harmony-corrected features with kNN; <em>ist_ttc</em>: IST "
        "test-time correction. cLISI (1 = neighbours share the gene), bLISI (1 = OEs fully mixed) and "
        "kNN BatchCV (kNN accuracy with the query's own OE removed from the reference) are measured on "
        "the IID fold's features. Best per column in bold.</div>",
        table(cells, raw_html=tuple(shown.columns[1:])),
    ]
    if files.get("folds"):
        body.append(_ist_sentence(read_table(files["folds"])))
    body += _ood_classes(files)
    if files.get("restyle"):
        body.append(_restyle_table(read_table(files["restyle"])))
    if files.get("folds"):
        body.append("<details><summary>Every fold</summary>" + table(read_table(files["folds"])) + "</details>")
    if files.get("umap"):
        body.append(image(files["umap"], "OOD UMAPs", "IID-fold predictor features: coloured by gene (left) "
                          "and by OE (right). Genes should form islands; OEs should mix."))
    return Section("ood", TITLES["ood"], "".join(body))


def _level_of(column: str) -> str:
    """The level of a shown OOD column: "macro-F1 IID" -> iid, "macro-F1 held-out plate (3 folds)" -> plate."""
    rest = column[len("macro-F1 "):]
    return "iid" if rest == "IID" else rest[len("held-out "):].split(" (")[0]


def _ist_sentence(folds: pd.DataFrame) -> str:
    """One sentence: does IST beat naive on held-out plates, by how much ± SD over seeds."""
    from ..evaluate.ood_eval import method_gap

    gap = method_gap(folds, "ist", "naive", "plate")
    if gap is None:
        return ""
    verdict = "beats" if gap["mean"] > 0 else "does not beat"
    spread = (f" ± {gap['sd']:.3f} (SD over {gap['n_seeds']} training seeds; ahead in {gap['wins']} of them)"
              if gap["n_seeds"] > 1 else " (one training seed, so no SD; set ood.seeds for one)")
    return (f"<p><b>On this screen IST {verdict} naive on held-out plates:</b> macro-F1 difference "
            f"{gap['mean']:+.3f}{spread}.</p>")


def _restyle_table(restyle: pd.DataFrame) -> str:
    """IST's restyles per fold: phenotype kept and style taken beside chance (ood_restyle.tsv)."""
    if restyle.empty:
        return ""
    wide = restyle.pivot_table(index="fold", columns="metric", values="value", sort=False).reset_index()
    cols = [c for c in ("fold", "phenotype_kept", "accuracy_original", "accuracy_restyled", "style_taken",
                        "style_chance", "style_taken_original", "oe_accuracy_original", "nucleus_iou",
                        "centroid_shift_px", "input_dependence") if c in wide.columns]
    return ("<h3>IST restyles</h3><div class=\"explain\">Training cells of each fold re-imaged into another "
            "training OE, scored by the IST model's own frozen encoder. <em>phenotype_kept</em>: its gene head's "
            "accuracy on the restyled cells divided by that on the same cells unmodified (1: the phenotype "
            "survives restyling; goal at least 0.8). <em>style_taken</em>: share of restyled cells its OE head "
            "assigns to the style image's OE, beside <em>style_chance</em> (goal at least twice chance) and "
            "beside the unmodified cells' share (<em>style_taken_original</em>); nucleus IoU, centroid shift "
            "and input dependence are the generator-agnostic metrics of the generative check.</div>" + table(wide[cols]))


def _ood_classes(files: dict) -> list[str]:
    """The classes the benchmark chose and why (classes.tsv), and the hit list (activity.tsv)."""
    body = []
    if files.get("classes"):
        c = read_table(files["classes"])
        chosen = c[c["chosen"].astype(str).str.lower().isin(["true", "1"])]
        body.append(f"<h3>Classes ({chosen['class'].nunique()})</h3><div class=\"explain\">The benchmark "
                    "classifies only genes with a phenotype (significant mAP against the controls), the most "
                    "active one per curated complex, since genes of one complex look alike; "
                    "<code>ood.genes</code> overrides the choice.</div>"
                    + table(chosen[["class", "gene", "complex", "mean_average_precision", "corrected_p_value",
                                    "reason"]]))
    if files.get("activity"):
        a = read_table(files["activity"])
        n_sig = int(a["significant"].astype(str).str.lower().isin(["true", "1"]).sum())
        body.append(f"<details><summary>Phenotypic activity: {n_sig} of {len(a)} genes significant "
                    "(the hit list)</summary><div class=\"explain\">Per gene, copairs' mean average precision "
                    "of its cells against the non-targeting controls (per-plate control-standardised engineered "
                    "features, cosine), permutation p-value and Benjamini-Hochberg q-value; most active "
                    "first.</div>" + table(a) + "</details>")
    return body


def config_section(config: dict) -> Section:
    text = yaml.safe_dump(_plain(config), sort_keys=False, default_flow_style=False)
    return Section("config", TITLES["config"], f"<pre>{esc(text)}</pre>")


def versions_section() -> Section:
    df = pd.DataFrame(software_versions(), columns=["Software", "Version"])
    return Section("versions", TITLES["versions"], table(df))



def _plain(value):
    """Plain dicts, lists and scalars (Snakemake's config classes and numpy types are not YAML-safe)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _join_sorted(values) -> str:
    return ", ".join(sorted(map(str, values)))
