"""The generative check of a restyling generator (GRAPE, IMPA): control cells restyled to
every screened gene, against real control and real perturbed cells (GRAPE paper Fig. 2,
bottom, for the feature part).

1. Up to ``n_cells`` random control cells (``seed``) are restyled to every non-control
   gene of the model's vocabulary: GRAPE G(x, F(M_z)); IMPA G(x, S(z, n)) with one fixed
   noise draw n per control cell (``seed``). Generated set: n_controls x n_genes cells.
2. Engineered features (:func:`opsembed.models.features.cell_features`) of the real
   controls, of real perturbed cells (up to ``n_cells`` random cells of each non-control
   gene, the same per-gene cap as the generated set, so both pools weigh genes alike) and
   of the generated cells, all at the model's ``image_size``. The feature geometry
   (ring width, smoothing sigma; defined in pixels of the cells file's crops) is scaled by
   image_size / crop_size so that it covers the same part of the cell as on full crops.
3. The quality metrics of :mod:`opsembed.evaluate.generative_quality` (content kept,
   input dependence, class accuracy with the curated complexes as classes, Fréchet
   distances), written one per row with the gap-closed numbers of step 5.
4. A random forest (``N_TREES`` trees) tells real controls from real perturbed cells.
   Crops without a nucleus (all features missing) are dropped, then the larger group is
   subsampled (``seed``) to the size of the smaller: controls are usually far fewer than
   the pooled perturbed cells, and an unbalanced forest calls every cell perturbed.
   Features missing in every real cell or constant are left out; other missing values go
   to the forest as missing. Engineered features come in families of near-copies (mean,
   median, quantiles and integrated intensity of one channel), and permuting one of
   several copies costs the forest nothing, so the features are first grouped by
   average-linkage clustering on 1 - |Spearman rho| over the real cells, cut at
   ``1 - MAX_RHO``, and only the first feature of each group (in cell_features' column
   order) is kept. Permutation importance on a stratified held-out ``TEST_FRACTION`` ranks
   the kept features: the mean increase (over ``N_REPEATS`` shuffles) of the held-out Brier
   score, the squared error of the forest's predicted probability. A probability score still
   moves where the predicted class does not, so a feature keeps its importance when other
   features would also have told the groups apart (accuracy would score it 0).
5. For the top ``TOP_K`` features: mean and median per group; the mean shifts from
   control in control standard deviations, ``perturbed_shift_sd`` and ``generated_shift_sd``;
   ``shift_reproduced`` = generated / perturbed shift, the fraction of the control ->
   perturbed mean shift the generated cells reproduce (1: all of it, 0: none; unstable where
   the real shift is tiny); per feature ``gap_closed_feature`` = 1 - |generated shift -
   perturbed shift| / |perturbed shift|; and one number over the top features, ``gap_closed`` =
   1 - ||generated shift - perturbed shift|| / ||perturbed shift|| (Euclidean over the top
   features, shifts in control SDs): the fraction of the control -> perturbed distance of
   the means that the generated cells close. 1: generated mean = perturbed mean; 0: no
   closer than the unmodified controls; below 0: farther from the perturbed cells than the
   controls are (e.g. a shift in the right direction overshot by more than twice its size).
6. The same shifts per gene, for the top features: each gene's real and generated mean shift
   from control (control SDs), and over the genes ``per_gene_corr`` (Pearson) and
   ``per_gene_slope`` and ``per_gene_intercept`` (least-squares line of generated on real
   shift; the intercept is the generated shift of a gene whose real cells do not move the
   feature, in control SDs). Pooled means can hide what a generator does gene by gene:
   genes that move a feature in opposite directions cancel in the pooled shift. corr near 1
   with a slope below 1 says every gene's style is carried in the right direction but only
   part of the way; a small corr says the change does not depend on the gene, and an
   intercept far from 0 that the generator adds one change to every restyle (an artifact).
"""

from __future__ import annotations

import inspect
import logging
import os
from functools import partial
from typing import Iterable

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from sklearn.ensemble import RandomForestClassifier
from sklearn.inspection import permutation_importance
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split
from torch import nn

from ..io.errors import InputError
from ..io.figures import save_figure
from ..io.h5 import read_attrs, read_obs
from ..io.tables import read_table, write_table
from ..models.features import cell_features, map_feature_blocks
from ..models.files import read_model_file
from ..models.grape import load_grape
from ..models.impa import load_impa
from ..train.data import crop_reader
from ..train.device import resolve_device
from ..train.gan import cells_per_gene
from .generative_quality import METRIC_TEXT, restyle_quality

log = logging.getLogger(__name__)

GROUPS = {"control": "real control", "perturbed": "real perturbed", "generated": "generated"}
"""Group keys (table column prefixes) and their figure labels."""
TOP_K = 5
N_TREES = 200
N_REPEATS = 10
TEST_FRACTION = 0.3
MAX_RHO = 0.9
"""Features correlated more than this (|Spearman rho|, average linkage) count as one."""
BLOCK = 256
"""Crops per restyling batch and per feature job."""


def feature_geometry(image_size: int, crop_size: int) -> dict:
    """``ring_width`` (int px, at least 1) and ``sigma`` (px) for :func:`cell_features` on
    crops resized from ``crop_size`` to ``image_size``: its defaults times image_size / crop_size."""
    defaults = inspect.signature(cell_features).parameters
    scale = image_size / crop_size
    return {"ring_width": max(1, round(defaults["ring_width"].default * scale)),
            "sigma": defaults["sigma"].default * scale}


@torch.no_grad()
def restyle(nets: nn.ModuleDict, x: torch.Tensor, gene_id: int, batch_size: int = BLOCK,
            noise: torch.Tensor | None = None) -> np.ndarray:
    """G(x, s) for crops ``x`` (n, C, S, S) on the model's device: float32 (n, C, S, S).

    GRAPE (``noise`` None): s = F(M_g) for every crop. IMPA: s = S(g, noise_i), ``noise``
    (n, noise_dim) one draw per crop."""
    if noise is None:
        s = nets["style"](torch.tensor([gene_id], device=x.device)).expand(len(x), -1)   # (n, D)
    else:
        s = nets["style"](torch.full((len(x),), gene_id, device=x.device), noise.to(x.device))
    return torch.cat([nets["generator"](xb, sb) for xb, sb in zip(x.split(batch_size), s.split(batch_size))]
                     ).float().cpu().numpy()


def load_generator(model_path: str | os.PathLike, device: torch.device) -> tuple[str, dict, nn.ModuleDict]:
    """(method, payload, networks in eval mode) of a GRAPE or IMPA model file."""
    method = read_model_file(model_path, ("grape", "impa"), torch.device("cpu"))["method"]
    payload, nets = (load_grape if method == "grape" else load_impa)(model_path, device)
    return method, payload, nets


def block_features(blocks: Iterable[np.ndarray], channels: list[str], geometry: dict, total: int,
                   desc: str, threads: int = 1) -> pd.DataFrame:
    """:func:`cell_features` (with ``geometry``) of the crops of ``blocks`` (n_i, C, S, S), in order,
    in ``threads`` worker processes (at most 2 x threads blocks in flight); a bar counts cells."""
    work = partial(cell_features, channels=list(channels), progress=False, **geometry)
    return map_feature_blocks(work, blocks, total, desc, threads)


def decorrelated(x: pd.DataFrame, max_rho: float = MAX_RHO) -> list[str]:
    """One column of ``x`` per group of correlated columns: the first (in column order) of each
    cluster of average-linkage clustering on 1 - |Spearman rho| (pairwise-complete; a pair
    without overlap counts as uncorrelated) cut at distance 1 - ``max_rho``."""
    if x.shape[1] < 2:
        return list(x.columns)
    rho = x.corr(method="spearman").abs().fillna(0.0).to_numpy()
    distance = np.clip(1.0 - rho, 0.0, 1.0)
    np.fill_diagonal(distance, 0.0)
    labels = fcluster(linkage(squareform(distance, checks=False), "average"), 1.0 - max_rho, "distance")
    first = pd.Series(x.columns).groupby(labels).first()
    return [c for c in x.columns if c in set(first)]


def top_features(control: pd.DataFrame, perturbed: pd.DataFrame, seed: int, threads: int = 1,
                 k: int = TOP_K) -> tuple[pd.DataFrame, float]:
    """The ``k`` features that best tell ``control`` from ``perturbed`` cells (same columns).

    Returns (table of feature, importance_mean, importance_sd — held-out permutation
    importance, increase of the Brier score, best first — and the forest's held-out
    balanced accuracy). Rows with no finite feature are dropped, then the larger group is
    subsampled (``seed``) to the size of the smaller; columns with no finite value or zero
    variance over both groups are not used, nor near-copies (:func:`decorrelated`). See the
    module docstring. InputError with fewer than 2 cells with a nucleus in either group.
    """
    x = pd.concat([control, perturbed], ignore_index=True)
    y = np.r_[np.zeros(len(control), int), np.ones(len(perturbed), int)]
    has_nucleus = np.isfinite(x.to_numpy(dtype=float)).any(axis=1)
    n = min((has_nucleus & (y == 0)).sum(), (has_nucleus & (y == 1)).sum())
    if n < 2:
        raise InputError(f"generative check: only {n} control or perturbed cell(s) with a nucleus (a DNA "
                         "channel that is not flat); raise n_cells or check the crops.")
    rng = np.random.default_rng(seed)
    rows = np.sort(np.concatenate([rng.choice(np.flatnonzero(has_nucleus & (y == c)), n, replace=False)
                                   for c in (0, 1)]))
    x, y = x.iloc[rows], y[rows]
    std = x.std()
    x = x.loc[:, std.notna() & (std > 1e-12)]
    n_informative = x.shape[1]
    x = x[decorrelated(x)]
    log.info("generative check: random forest on %d control and %d perturbed cells, %d informative features, "
             "%d after merging near-copies (|rho| > %.2f)", n, n, n_informative, x.shape[1], MAX_RHO)
    x_fit, x_test, y_fit, y_test = train_test_split(x, y, test_size=TEST_FRACTION, stratify=y, random_state=seed)
    forest = RandomForestClassifier(n_estimators=N_TREES, random_state=seed, n_jobs=threads).fit(x_fit, y_fit)
    accuracy = float(balanced_accuracy_score(y_test, forest.predict(x_test)))
    imp = permutation_importance(forest, x_test, y_test, scoring="neg_brier_score", n_repeats=N_REPEATS,
                                 random_state=seed, n_jobs=threads)
    order = np.argsort(-imp.importances_mean, kind="stable")[:k]
    table = pd.DataFrame({"feature": x.columns[order], "importance_mean": imp.importances_mean[order],
                          "importance_sd": imp.importances_std[order]})
    return table, accuracy


def group_summary(groups: dict[str, pd.DataFrame], features: list[str]) -> pd.DataFrame:
    """Per feature (missing values ignored): ``<group>_mean`` and ``<group>_median`` for each
    group of GROUPS; ``perturbed_shift_sd`` and ``generated_shift_sd``, (group mean - control
    mean) / control sd (ddof 1; NaN where that sd is 0); ``shift_reproduced`` (NaN where the
    perturbed and control means agree) and ``gap_closed`` (module docstring; over the
    features with both shifts finite, NaN when none or no real shift; the same in every row)."""
    out = pd.DataFrame({"feature": features})
    for g in GROUPS:
        out[f"{g}_mean"] = groups[g][features].mean().to_numpy()
        out[f"{g}_median"] = groups[g][features].median().to_numpy()
    sd = groups["control"][features].std().to_numpy()
    sd = np.where(sd > 0, sd, np.nan)
    real = (out["perturbed_mean"] - out["control_mean"]) / sd
    fake = (out["generated_mean"] - out["control_mean"]) / sd
    out["perturbed_shift_sd"], out["generated_shift_sd"] = real, fake
    shift = out["perturbed_mean"] - out["control_mean"]
    out["shift_reproduced"] = (out["generated_mean"] - out["control_mean"]) / shift.where(shift != 0)
    both = np.isfinite(real) & np.isfinite(fake)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["gap_closed_feature"] = np.where(both & (real != 0), 1.0 - (fake - real).abs() / real.abs(), np.nan)
    distance = float(np.linalg.norm(real[both]))
    out["gap_closed"] = 1.0 - float(np.linalg.norm(fake[both] - real[both])) / distance if distance else np.nan
    return out


def per_gene_shifts(control: pd.DataFrame, perturbed: pd.DataFrame, perturbed_genes: np.ndarray,
                    generated: pd.DataFrame, generated_genes: np.ndarray, features: list[str]) -> pd.DataFrame:
    """Per feature of ``features`` (module docstring, step 6): ``per_gene_corr``, ``per_gene_slope``,
    ``per_gene_intercept`` and ``n_genes_compared``, over the genes present in both
    ``perturbed_genes`` (labels of the rows of ``perturbed``) and ``generated_genes`` (of
    ``generated``). Shifts are per-gene mean minus control mean, over the control SD (ddof 1),
    missing values ignored. corr, slope and intercept are NaN with fewer than 3 genes or no
    spread in the real shifts (slope, intercept) or either shift (corr)."""
    genes = sorted(set(map(str, perturbed_genes)) & set(map(str, generated_genes)))
    mu, sd = control[features].mean(), control[features].std()
    sd = sd.where(sd > 0)
    real = perturbed[features].groupby(np.asarray(perturbed_genes, str)).mean().reindex(genes)
    fake = generated[features].groupby(np.asarray(generated_genes, str)).mean().reindex(genes)
    real, fake = (real - mu) / sd, (fake - mu) / sd
    rows = []
    for f in features:
        r, q = real[f].to_numpy(float), fake[f].to_numpy(float)
        ok = np.isfinite(r) & np.isfinite(q)
        r, q = r[ok], q[ok]
        corr = slope = intercept = np.nan
        if len(r) >= 3 and r.std() > 0:
            slope, intercept = (float(v) for v in np.polyfit(r, q, 1))
            if q.std() > 0:
                corr = float(np.corrcoef(r, q)[0, 1])
        rows.append({"feature": f, "per_gene_corr": corr, "per_gene_slope": slope,
                     "per_gene_intercept": intercept, "n_genes_compared": int(ok.sum())})
    return pd.DataFrame(rows)


def distribution_figure(groups: dict[str, pd.DataFrame], table: pd.DataFrame, method: str = "GRAPE") -> Figure:
    """One panel per row of ``table`` (the table generative_check writes): density histograms of
    that feature in the three groups (shared bins over the pooled 1st-99th percentiles)."""
    fig = Figure(figsize=(3.3 * len(table), 3.4))
    axes = fig.subplots(1, len(table), squeeze=False)[0]
    colours = {"control": "#7f7f7f", "perturbed": "#2c5d8a", "generated": "#e69500"}
    for ax, row in zip(axes, table.itertuples()):
        values = {g: groups[g][row.feature].to_numpy(dtype=float) for g in GROUPS}
        values = {g: v[np.isfinite(v)] for g, v in values.items()}
        lo, hi = np.percentile(np.concatenate(list(values.values())), [1, 99])
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 31)
        for g, label in GROUPS.items():
            ax.hist(np.clip(values[g], bins[0], bins[-1]), bins=bins, density=True, histtype="step",
                    lw=1.6, color=colours[g], label=label)
        ax.set_title(f"{row.feature}\nshift from control (SDs): real {row.perturbed_shift_sd:+.2f}, "
                     f"generated {row.generated_shift_sd:+.2f}", fontsize=8)
        ax.set_xlabel("feature value", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].set_ylabel("density")
    axes[0].legend(frameon=False, fontsize=7)
    fig.suptitle(f"{method} generative check: top {len(table)} features telling real control from perturbed "
                 f"cells (random forest, held-out balanced accuracy {table['rf_balanced_accuracy'].iloc[0]:.2f}); "
                 f"generated cells close {table['gap_closed'].iloc[0]:.0%} of the gap", fontsize=9)
    fig.tight_layout()
    return fig


def generative_check(model_path: str | os.PathLike, cells_path: str | os.PathLike,
                     table_path: str | os.PathLike, figure_path: str | os.PathLike, n_cells: int,
                     seed: int, threads: int = 1, device: str = "auto", *,
                     features_path: str | os.PathLike | None = None,
                     ground_truth_path: str | os.PathLike | None = None) -> dict[str, pd.DataFrame]:
    """Run the generative check (module docstring) of a GRAPE or IMPA model file on ``cells.h5``.

    Writes ``table_path`` (TSV, one row per metric: columns metric, value, meaning; the metrics of
    :func:`opsembed.evaluate.generative_quality.restyle_quality`, ``gap_closed`` (Euclidean),
    ``gap_closed_mean`` and ``gap_closed_<feature>`` per top feature, ``rf_balanced_accuracy``,
    ``image_size``, ``seed``), ``features_path`` when given (TSV: one row per top feature,
    columns rank, feature, importance_mean, importance_sd, control/perturbed/generated _mean
    and _median, perturbed_shift_sd, generated_shift_sd, shift_reproduced, gap_closed_feature,
    gap_closed, per_gene_corr, per_gene_slope, per_gene_intercept, n_genes_compared,
    rf_balanced_accuracy, n_control, n_perturbed, n_generated, n_genes, image_size, seed) and ``figure_path`` (PNG). Classes for the class accuracy: the complexes
    of ``ground_truth_path`` (the curated table, columns gene and complex, as
    curate_ground_truth writes it), else each gene its own class.
    Returns {"metrics": ..., "features": ...}. InputError when the cells file has no cell of
    the model's control label or no other cell, or other channels.
    """
    dev = resolve_device(device)
    method, payload, nets = load_generator(model_path, dev)
    genes, controls, size = payload["genes"], payload["controls"], payload["config"]["image_size"]
    attrs = read_attrs(cells_path)
    if list(attrs["channels"]) != list(payload["channels"]):
        raise InputError(f"{cells_path}: channels {list(attrs['channels'])} differ from the channels "
                         f"{list(payload['channels'])} the model {model_path} was trained on.")
    gene_col = read_obs(cells_path)["gene"].astype(str).to_numpy()
    pool = np.flatnonzero(gene_col == controls)
    if not len(pool):
        raise InputError(f"{cells_path}: no cell has the control label {controls!r} (`controls` of the "
                         f"model {model_path}); the generative check restyles control cells. "
                         "Set `controls` to the label your cell table uses and rerun.")
    control_rows = np.sort(np.random.default_rng(seed).choice(pool, size=min(n_cells, len(pool)), replace=False))
    per_gene = cells_per_gene(gene_col, genes, controls, n_cells, seed)
    if not per_gene:
        raise InputError(f"{cells_path}: no cell of a non-control gene of the model {model_path}.")
    perturbed_rows = np.sort(np.concatenate(list(per_gene.values())))
    targets = [g for g, name in enumerate(genes) if name != controls]
    if ground_truth_path is not None:
        curated = read_table(ground_truth_path)                     # the curated gene, complex table
        target_class = {g: c for g, c in zip(curated["gene"].astype(str), curated["complex"].astype(str))}
    else:
        target_class = {genes[g]: genes[g] for g in targets}

    read = crop_reader(cells_path, size, dev)
    x = read(control_rows)
    noise = None
    if method == "impa":
        noise = torch.randn(len(x), payload["config"]["noise_dim"], generator=torch.Generator().manual_seed(seed))
    geometry = feature_geometry(size, int(attrs["crop_size"]))
    log.info("generative check (%s): %d control cells restyled to %d genes at %d px; %d real perturbed "
             "cells (up to %d per gene); feature geometry %s", method, len(x), len(targets), size,
             len(perturbed_rows), n_cells, geometry)
    channels = list(payload["channels"])

    def features(crops: np.ndarray, desc: str) -> pd.DataFrame:
        return block_features((crops[i:i + BLOCK] for i in range(0, len(crops), BLOCK)), channels, geometry,
                              len(crops), desc, threads)

    x_np = x.cpu().numpy()
    perturbed = block_features((read(perturbed_rows[i:i + BLOCK]).cpu().numpy()
                                for i in range(0, len(perturbed_rows), BLOCK)), channels, geometry,
                               len(perturbed_rows), "features: real perturbed", threads)
    outputs = ((genes[g], restyle(nets, x, g, noise=noise)) for g in targets)
    metrics, generated, control = restyle_quality(
        x_np, outputs, lambda crops: features(crops, "restyling + features"), perturbed,
        gene_col[perturbed_rows], target_class, geometry["sigma"], seed, threads)
    groups = {"control": control, "perturbed": perturbed,
              "generated": generated.drop(columns="target")}
    for g, frame in groups.items():
        empty = int(frame.isna().all(axis=1).sum())
        if empty:
            log.info("generative check: %d of %d %s crops have no nucleus (left out)", empty, len(frame), g)

    top, accuracy = top_features(groups["control"], groups["perturbed"], seed, threads)
    table = top.merge(group_summary(groups, list(top["feature"])), on="feature")
    table = table.merge(per_gene_shifts(groups["control"], perturbed, gene_col[perturbed_rows], groups["generated"],
                                        generated["target"].to_numpy(), list(top["feature"])), on="feature")
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table = table.assign(rf_balanced_accuracy=accuracy, n_control=len(groups["control"]),
                         n_perturbed=len(groups["perturbed"]), n_generated=len(groups["generated"]),
                         n_genes=len(targets), image_size=size, seed=seed)
    extra = {"gap_closed": float(table["gap_closed"].iloc[0]),
             "gap_closed_mean": float(np.nanmean(table["gap_closed_feature"])),
             **{f"gap_closed_{r.feature}": float(r.gap_closed_feature) for r in table.itertuples()},
             "rf_balanced_accuracy": accuracy, "image_size": float(size), "seed": float(seed)}
    metrics = pd.concat([metrics, pd.DataFrame({"metric": list(extra), "value": list(extra.values())})],
                        ignore_index=True)
    metrics["meaning"] = metrics["metric"].map(METRIC_TEXT).fillna("")
    if features_path is not None:
        write_table(table, features_path)
    fig = distribution_figure(groups, table, method.upper())
    save_figure(fig, figure_path, dpi=110)
    write_table(metrics, table_path)
    m = dict(zip(metrics["metric"], metrics["value"]))
    log.info("generative check (%s): nucleus IoU %.3f, centroid shift %.2f px, input dependence %.3f, gap "
             "closed %.2f (mean per feature %.2f), class accuracy %.3f (inputs %.3f, chance %.3f, real cv "
             "%.3f), Frechet %.2f (inputs %.2f)", method, m["nucleus_iou"], m["centroid_shift_px"],
             m["input_dependence"], m["gap_closed"], m["gap_closed_mean"], m["class_accuracy_generated"],
             m["class_accuracy_inputs"], m["class_accuracy_chance"], m["class_accuracy_real_cv"],
             m["frechet_generated"], m["frechet_inputs"])
    return {"metrics": metrics, "features": table}
