"""Scoring one predictor on one OOD fold, and the combined OOD table and UMAP figure.

Per fold x predictor (``evaluate_fold``), variants:
- ``<kind>``: the classifier's own prediction (argmax over genes with training cells);
- ``<kind>_harmony_knn``: Harmony on the penultimate features of training and test cells
  (batches: OEs of ``ood.oe_columns``), then kNN from corrected training cells;
- ``ist_ttc`` (IST with ``test_time_styles`` k > 0): test cells re-imaged into k training
  styles (one cell each from k training OEs) and predictions averaged.
Training cells used as kNN/Harmony reference are a random subset of at most
``max_eval_cells`` (seeded). On the IID fold, where test cells come from every OE, each
variant also gets scaled cLISI (labels: gene) and bLISI (labels: OE of ``batch_level``)
on the test cells' features, and kNN BatchCV (reference: training cells of other OEs of
``batch_level``).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from ..io.errors import InputError
from ..io.figures import save_figure
from ..io.folds import IID, ood_config, oe_labels
from ..io.h5 import read_attrs, read_obs
from ..io.schema import block_config
from ..io.tables import read_table, write_table
from ..models.predictors import Predictor
from ..models.restyler import load_restyler
from ..train.device import resolve_device
from ..train.fold_data import load_fold
from ..train.predictor_trainer import predictor_config
from .ood import harmony_knn, knn_batchcv, phenotype_kept, scaled_blisi, scaled_clisi, scored_macro_f1, style_taken
from .umap_plot import umap_coordinates

log = logging.getLogger(__name__)

METRIC_COLUMNS = ["fold", "level", "held_out", "method", "seed", "macro_f1", "accuracy", "n_test_cells",
                  "n_scored_cells", "n_scored_genes", "clisi", "blisi", "knn_batchcv"]
"""Columns of a fold's metrics table (one row per variant)."""


def evaluate_fold(cells_path, ood_cfg: dict | None, predictor_cfg: dict | None, fold: str, predictor_path,
                  predictions_path, metrics_path, features_path, generator_path=None,
                  classes=None) -> pd.DataFrame:
    """Score the predictor file ``predictor_path`` on its fold; write three tables.

    - ``predictions_path``: one row per test cell: cell_id, gene, oe, then the predicted
      gene of each variant (column named after the variant);
    - ``metrics_path``: METRIC_COLUMNS, one row per variant (LISI and BatchCV only on IID);
    - ``features_path``: the evaluated cells (reference subset, then test cells) with
      cell_id, gene, oe (``batch_level``), split ("train"/"test") and the penultimate
      features f0.. of the plain classifier (for the UMAPs of ``combine_ood``).
    ``generator_path``: the fold's IST model, needed for IST test-time correction;
    ``classes``: the OOD classes table (``load_fold``).
    Returns the metrics table.
    """
    cfg = ood_config(ood_cfg)
    pcfg = predictor_config(predictor_cfg)
    device = resolve_device(pcfg["device"])
    pred = Predictor(predictor_path, device)
    if pred.fold != fold:
        raise InputError(f"{predictor_path}: trained for fold {pred.fold!r}, not {fold!r}.")
    data = load_fold(cells_path, ood_cfg, fold, pred.image_size, device, pcfg["data_in_memory"],
                     pcfg["memory_fraction"], classes)
    obs = read_obs(cells_path)
    f = data.fold
    rng = np.random.default_rng([int(cfg["seed"]), 7])
    ref = f["train_idx"]
    if len(ref) > cfg["max_eval_cells"]:
        ref = np.sort(rng.choice(ref, size=cfg["max_eval_cells"], replace=False))
    test = f["test_idx"]
    genes = np.array(data.images.genes, dtype=object)[data.images.gene_ids]
    oe = oe_labels(obs, cfg["oe_columns"])
    batch_cols = _batch_columns(cfg)
    batch = oe_labels(obs, batch_cols)
    bs = pcfg["eval_batch_size"]

    probs_ref, feats_ref = pred.outputs(data.images, ref, bs)
    probs_test, feats_test = pred.outputs(data.images, test, bs)
    gene_names = np.array(pred.genes, dtype=object)
    variants = {pred.kind: (gene_names[probs_test.argmax(1)], feats_ref, feats_test)}
    k, n_pcs, seed = cfg["knn_neighbors"], cfg["harmony_pcs"], int(cfg["seed"])
    hk, z_ref, z_test = harmony_knn(feats_ref, genes[ref], oe[ref], feats_test, oe[test], k, n_pcs, seed)
    variants[f"{pred.kind}_harmony_knn"] = (hk, z_ref, z_test)
    if pred.kind == "ist" and pcfg["test_time_styles"] > 0:
        if generator_path is None:
            raise InputError("IST test-time correction needs the fold's IST model file.")
        restyler = load_restyler(generator_path, device, fold)
        style_rows = _style_cells(data, pcfg["test_time_styles"], rng)
        p_ttc, f_ttc = pred.outputs(data.images, test, bs, restyler, style_rows, data.oe_ids[style_rows])
        _, f_ttc_ref = pred.outputs(data.images, ref, bs, restyler, style_rows, data.oe_ids[style_rows])
        variants["ist_ttc"] = (gene_names[p_ttc.argmax(1)], f_ttc_ref, f_ttc)

    rows = []
    for name, (y_pred, x_ref, x_test) in variants.items():
        row = {"fold": fold, "level": f["level"], "held_out": f["held_out"], "method": name, "seed": pred.seed,
               **scored_macro_f1(genes[f["train_idx"]], genes[test], y_pred),
               "clisi": np.nan, "blisi": np.nan, "knn_batchcv": np.nan}
        if f["level"] == IID:
            row["clisi"] = scaled_clisi(x_test, genes[test], cfg["lisi_perplexity"])
            row["blisi"] = scaled_blisi(x_test, batch[test], cfg["lisi_perplexity"])
            row["knn_batchcv"] = knn_batchcv(x_ref, genes[ref], batch[ref], x_test, genes[test], batch[test], k)
        rows.append(row)
        log.info("fold %s, %s: macro-F1 %.3f over %d genes (%d of %d test cells scored)", fold, name,
                 row["macro_f1"], row["n_scored_genes"], row["n_scored_cells"], row["n_test_cells"])
    metrics = pd.DataFrame(rows, columns=METRIC_COLUMNS)

    predictions = pd.DataFrame({"cell_id": data.cell_ids[test], "gene": genes[test], "oe": oe[test]})
    for name, (y_pred, _, _) in variants.items():
        predictions[name] = y_pred
    cells = np.concatenate([ref, test])
    features = pd.DataFrame(np.concatenate([feats_ref, feats_test]),
                            columns=[f"f{i}" for i in range(feats_ref.shape[1])])
    features.insert(0, "split", ["train"] * len(ref) + ["test"] * len(test))
    features.insert(0, "oe", batch[cells])
    features.insert(0, "gene", genes[cells])
    features.insert(0, "cell_id", data.cell_ids[cells])
    write_table(predictions, predictions_path)
    write_table(features, features_path)
    write_table(metrics, metrics_path)
    return metrics


def _batch_columns(cfg: dict) -> list[str]:
    """The OE columns of the level ``ood.batch_level`` names (a cross-key rule of the config
    makes sure there is one)."""
    return next(list(level["columns"]) for level in cfg["levels"] if level["name"] == cfg["batch_level"])


def _style_cells(data, k: int, rng: np.random.Generator) -> np.ndarray:
    """k training cells, one from each of k training OEs spread evenly over them (cycled when
    k exceeds the number of training OEs)."""
    oes = data.train_oes
    picks = [oes[i % len(oes)] for i in np.linspace(0, max(len(oes), k) - 1, k).round().astype(int)]
    train = np.zeros(data.images.n, dtype=bool)
    train[data.fold["train_idx"]] = True
    return np.array([rng.choice(np.flatnonzero(train & (data.oe_ids == o))) for o in picks], dtype=np.int64)


RESTYLE_COLUMNS = ["fold", "metric", "value", "meaning"]
"""Columns of a fold's restyle table (``restyle_metrics``)."""
RESTYLE_TEXT = {
    "phenotype_kept": "gene-head accuracy on restyled / on unmodified cells (1: phenotype fully kept; goal >= 0.8)",
    "accuracy_restyled": "accuracy of the frozen encoder's gene head on the restyled cells",
    "accuracy_original": "the same on the unmodified cells",
    "style_taken": "share of restyled cells the frozen OE head assigns to the style image's OE",
    "style_chance": "chance for style_taken: 1 / training OEs (goal: style_taken >= 2x chance)",
    "style_taken_original": "share of the unmodified cells assigned to that OE (what no restyling gives)",
    "oe_accuracy_original": "share of the unmodified cells the OE head assigns to their own OE (can it read OEs?)",
    "nucleus_iou": "IoU of input and restyled nucleus masks (evaluate.generative_quality; 1: nucleus kept)",
    "centroid_shift_px": "distance of input and restyled nucleus centroids, px of the model's crops (mean)",
    "input_dependence": "per-pixel SD across restyles into one OE / across their inputs (mean over OEs; 0: collapse)",
    "n_cells": "training cells restyled, each into one other training OE",
}


def restyle_metrics(cells_path, ood_cfg: dict | None, ist_cfg: dict | None, fold: str, generator_path,
                    out_path, classes=None) -> pd.DataFrame:
    """How well the fold's IST restyles keep the phenotype and take the style (``restyle.tsv``).

    Up to ``ood.ist.n_restyle_cells`` random training cells of the fold (seeded by ood.seed),
    each restyled into the style of a random training cell of another training OE (OE drawn
    uniformly), as the IST predictor sees them. The IST model's own frozen encoder scores
    them: ``phenotype_kept`` (``evaluate.ood.phenotype_kept``, over the fold's training
    genes) and ``style_taken`` (``evaluate.ood.style_taken``, over its training OEs).
    Writes and returns RESTYLE_COLUMNS rows."""
    import torch

    from ..train.ist_trainer import ist_config

    cfg, icfg = ood_config(ood_cfg), ist_config(ist_cfg)
    device = resolve_device(icfg["device"])
    restyler = load_restyler(generator_path, device, fold)
    if restyler.kind != "ist":
        raise InputError(f"{generator_path}: a {restyler.kind} model; restyle metrics need IST.")
    data = load_fold(cells_path, ood_cfg, fold, restyler.image_size, device, icfg["data_in_memory"],
                     icfg["memory_fraction"], classes)
    rng = np.random.default_rng([int(cfg["seed"]), 11])
    train = data.fold["train_idx"]
    cells = np.sort(rng.choice(train, size=min(int(icfg["n_restyle_cells"]), len(train)), replace=False))
    in_train = np.zeros(data.images.n, dtype=bool)
    in_train[train] = True
    pools = {o: np.flatnonzero(in_train & (data.oe_ids == o)) for o in data.train_oes}
    styles = []
    for c in cells:
        others = [o for o in data.train_oes if o != data.oe_ids[c]] or list(data.train_oes)
        styles.append(rng.choice(pools[others[rng.integers(len(others))]]))
    styles = np.array(styles, dtype=np.int64)
    enc = restyler.nets["encoder"]
    logits = {"gene_o": [], "gene_r": [], "oe_o": [], "oe_r": []}
    inputs, outputs = [], []
    bs = int(icfg["batch_size"])
    with torch.no_grad():
        for i in range(0, len(cells), bs):
            x, s = data.images.get(cells[i:i + bs]), data.images.get(styles[i:i + bs])
            fake = restyler(x, s, torch.as_tensor(data.oe_ids[styles[i:i + bs]], device=device))
            inputs.append(x.float().cpu().numpy())
            outputs.append(fake.float().cpu().numpy())
            for tag, img in (("o", x), ("r", fake)):
                g, o = enc(img)
                logits[f"gene_{tag}"].append(g.float().cpu().numpy())
                logits[f"oe_{tag}"].append(o.float().cpu().numpy())
    logits = {k: np.concatenate(v) for k, v in logits.items()}
    kept = phenotype_kept(logits["gene_r"], logits["gene_o"], data.images.gene_ids[cells], data.train_genes)
    taken = style_taken(logits["oe_r"], data.oe_ids[styles], data.train_oes)
    baseline = style_taken(logits["oe_o"], data.oe_ids[styles], data.train_oes)
    own = style_taken(logits["oe_o"], data.oe_ids[cells], data.train_oes)
    generic = _generic_restyle_quality(np.concatenate(inputs), np.concatenate(outputs), data.oe_ids[styles],
                                       restyler.image_size, int(read_attrs(cells_path)["crop_size"]))
    values = {**kept, "style_taken": taken["style_taken"], "style_chance": taken["chance"],
              "style_taken_original": baseline["style_taken"], "oe_accuracy_original": own["style_taken"],
              **generic, "n_cells": len(cells)}
    out = pd.DataFrame([{"fold": fold, "metric": k, "value": values[k], "meaning": RESTYLE_TEXT[k]}
                        for k in RESTYLE_TEXT], columns=RESTYLE_COLUMNS)
    log.info("fold %s IST restyles: phenotype kept %.3f (gene acc %.3f -> %.3f), style taken %.3f (chance %.3f)",
             fold, values["phenotype_kept"], values["accuracy_original"], values["accuracy_restyled"],
             values["style_taken"], values["style_chance"])
    write_table(out, out_path)
    return out


def _generic_restyle_quality(inputs: np.ndarray, outputs: np.ndarray, style_oes: np.ndarray, image_size: int,
                             crop_size: int) -> dict:
    """The generator-agnostic restyle metrics of ``evaluate.generative_quality`` on IST's restyles:
    nucleus IoU and centroid shift (means), input dependence (mean over style OEs with >= 2 cells)."""
    from .generative import feature_geometry
    from .generative_quality import content_kept, input_dependence

    iou, shift = content_kept(inputs, outputs, feature_geometry(image_size, crop_size)["sigma"])
    dep = [input_dependence(inputs[style_oes == o], outputs[style_oes == o]) for o in sorted(set(style_oes.tolist()))
           if (style_oes == o).sum() >= 2]
    return {"nucleus_iou": float(np.nanmean(iou)), "centroid_shift_px": float(np.nanmean(shift)),
            "input_dependence": float(np.nanmean(dep)) if dep else float("nan")}


def combine_restyle(paths, out_path) -> pd.DataFrame:
    """All folds' restyle tables (``restyle_metrics``) in one, RESTYLE_COLUMNS (empty without IST)."""
    parts = [read_table(p) for p in paths]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=RESTYLE_COLUMNS)
    write_table(table, out_path)
    return table


def combine_ood(metrics_paths, out_path, folds_path=None) -> pd.DataFrame:
    """The OOD table: one row per method (variant), columns ``macro_f1_<level>`` (``macro_f1_iid``
    first): per training seed the mean over that level's folds, then the mean over seeds;
    ``clisi``, ``blisi``, ``knn_batchcv`` (IID fold, mean over seeds); ``n_folds_<level>``;
    ``n_seeds``; ``sd_macro_f1_<level>``, the SD over seeds (ddof 1; NaN with one seed).
    ``folds_path``: also write all per-fold rows (long form, one per fold x method x seed).
    Metrics tables without a ``seed`` column count as seed 0."""
    folds = pd.concat([read_table(p) for p in metrics_paths], ignore_index=True)
    if folds.empty:
        raise InputError("combine_ood: no fold metrics were given.")
    if "seed" not in folds.columns:
        folds["seed"] = 0
    levels = [IID] + [lv for lv in dict.fromkeys(folds["level"]) if lv != IID]
    per_seed = folds.groupby(["method", "level", "seed"], sort=False)["macro_f1"].mean().reset_index()
    mean = per_seed.pivot_table(index="method", columns="level", values="macro_f1", aggfunc="mean")
    sd = per_seed.pivot_table(index="method", columns="level", values="macro_f1",
                              aggfunc=lambda v: v.std(ddof=1) if len(v) > 1 else np.nan, dropna=False)
    count = folds.groupby(["method", "level"])["fold"].nunique().unstack()
    seeds = folds.groupby("method")["seed"].nunique()
    iid = folds[folds["level"] == IID].groupby("method")[["clisi", "blisi", "knn_batchcv"]].mean()
    methods = list(dict.fromkeys(folds["method"]))
    table = pd.DataFrame({"method": methods})
    for lv in levels:
        table[f"macro_f1_{lv}"] = [mean.at[m, lv] if lv in mean.columns else np.nan for m in methods]
    for col in ("clisi", "blisi", "knn_batchcv"):
        table[col] = [iid.at[m, col] if m in iid.index else np.nan for m in methods]
    for lv in levels:
        table[f"n_folds_{lv}"] = [int(count.at[m, lv]) if lv in count.columns and
                                  not np.isnan(count.at[m, lv]) else 0 for m in methods]
    table["n_seeds"] = [int(seeds[m]) for m in methods]
    for lv in levels:
        table[f"sd_macro_f1_{lv}"] = [sd.at[m, lv] if lv in sd.columns and m in sd.index else np.nan
                                      for m in methods]
    write_table(table, out_path)
    if folds_path is not None:
        write_table(folds, folds_path)
    return table


def method_gap(folds: pd.DataFrame, method: str, baseline: str, level: str) -> dict | None:
    """How far ``method`` beats ``baseline`` on ``level`` in a long per-fold table (combine_ood's
    ``folds_path``): per seed the mean macro-F1 over the level's folds of each, their
    difference; returns ``mean``, ``sd`` (over seeds, ddof 1; NaN with one seed), ``n_seeds``
    and ``wins`` (seeds where the difference is > 0), or None when either is missing."""
    folds = folds.assign(seed=folds["seed"] if "seed" in folds.columns else 0)
    sub = folds[(folds["level"] == level) & folds["method"].isin([method, baseline])]
    per = sub.groupby(["seed", "method"])["macro_f1"].mean().unstack()
    if method not in per.columns or baseline not in per.columns:
        return None
    gap = (per[method] - per[baseline]).dropna()
    if gap.empty:
        return None
    return {"mean": float(gap.mean()), "sd": float(gap.std(ddof=1)) if len(gap) > 1 else float("nan"),
            "n_seeds": int(len(gap)), "wins": int((gap > 0).sum())}


def umap_figure(features_paths, methods: list[str], out_path: str | os.PathLike, umap_cfg: dict | None,
                max_cells: int) -> None:
    """One PNG: for each method (row), the UMAP of its IID-fold features coloured by gene
    (left) and by OE (right). ``features_paths`` and ``methods`` are parallel lists of the
    IID fold's feature tables. At most ``max_cells`` cells per panel (seeded subsample).
    UMAP as the embedding benchmark draws it (``umap_plot.umap_coordinates``: cosine
    distance), with the ``evaluation.umap`` keys ``umap_cfg``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    umap_cfg = block_config("evaluation.umap", umap_cfg)
    seed = int(umap_cfg["seed"])
    fig, axes = plt.subplots(len(methods), 2, figsize=(9, 4 * len(methods)), squeeze=False)
    for row, (path, method) in enumerate(zip(features_paths, methods)):
        df = read_table(path)
        if len(df) > max_cells:
            df = df.sample(n=max_cells, random_state=seed)
        x = df[[c for c in df.columns if c.startswith("f") and c[1:].isdigit()]].to_numpy(dtype=np.float64)
        xy = umap_coordinates(x, int(umap_cfg["n_neighbors"]), float(umap_cfg["min_dist"]), seed)
        for col, key in enumerate(("gene", "oe")):
            ax = axes[row, col]
            codes, names = pd.factorize(df[key].astype(str), sort=True)
            cmap = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
            ax.scatter(xy[:, 0], xy[:, 1], c=cmap(codes % cmap.N), s=4, linewidths=0)
            ax.set_title(f"{method}: coloured by {'gene' if key == 'gene' else 'OE'} ({len(names)})", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            if key == "oe" and len(names) <= 20:
                for i, name in enumerate(names):
                    ax.scatter([], [], color=cmap(i % cmap.N), label=name, s=10)
                ax.legend(fontsize=7, markerscale=1.5, loc="best")
    fig.tight_layout()
    save_figure(fig, out_path, dpi=100)
