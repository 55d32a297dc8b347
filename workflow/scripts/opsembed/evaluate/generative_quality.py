"""How good a restyling is, for any generator that maps input crops to a target label
(GRAPE and IMPA: a gene; IST or StarGAN over OEs: an observational environment).

Inputs are crops (n, C, S, S) with the DNA stain in channel 0; for each target label the
generator's outputs (n, C, S, S), row i restyled from input row i. Four families:

- **content kept** (:func:`content_kept`): nucleus masks of input and output (DNA channel
  smoothed with a Gaussian of ``sigma`` px, Otsu threshold per crop, the component at or
  nearest the centre: :func:`opsembed.models.features.nucleus_mask`); their IoU and the
  distance in px between the two masks' centroids. 1 and 0 px: the nucleus stays where and
  as it was. Beside them the same between each input and another input (row i + 1): what an
  output that keeps nothing of its own input but is a centred cell would score (cells are
  centred in their crops, so this is well above 0).
- **input dependence** (:func:`input_dependence`): for one target, the per-pixel standard
  deviation across the outputs of different inputs, averaged over pixels and channels,
  divided by the same for the inputs. 1: the outputs vary as much as the inputs; 0: one
  image for every input (mode collapse).
- **style carried**: the accuracy with which a classifier of real cells' engineered
  features (:func:`class_classifier`, trained on real cells' classes, e.g. the complex of
  the cell's gene; its cross-validated accuracy on real cells is reported too) assigns the
  outputs to their target's class, beside chance (the share of the most common class among
  the targets) and beside the same classifier on the unmodified inputs (each input counted
  once per target, against that target's class).
- **realism** (:func:`frechet_distance`): the Fréchet distance between Gaussian fits of
  the feature distributions of generated cells and real target cells, beside the same
  for real inputs vs real target cells (:func:`realism`). Features are first standardised
  on the real cells, missing values set to 0 (the real mean) and projected on the real
  cells' top principal components, so the covariances are well conditioned.

:func:`restyle_quality` combines them into one table of (metric, value) rows.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import pandas as pd
from scipy import linalg
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_score

from ..models.features import nucleus_mask

N_TREES = 200
"""Trees of the class classifier."""
CV_FOLDS = 3
N_COMPONENTS = 20
"""Principal components of the real cells' features the Fréchet distance is measured in."""

METRIC_TEXT = {
    "nucleus_iou": "IoU of the input's and the output's nucleus masks (mean over cells x targets); "
                   "1: the nucleus keeps its place and shape, 0: no overlap. Good: >= 0.6.",
    "centroid_shift_px": "distance between the input's and the output's nucleus centroids, in pixels of "
                         "the model's crops (mean). Good: <= 3 px.",
    "nucleus_iou_other_input": "the same IoU between each input and another input: what a centred cell "
                               "that is not the input scores. Content is kept only well above it.",
    "centroid_shift_other_input_px": "the same centroid shift between each input and another input.",
    "input_dependence": "per-pixel SD across outputs from different inputs / the same across the inputs "
                        "(mean over targets); 1: outputs as varied as the inputs, 0: one image for every "
                        "input (collapse). Good: >= 0.5.",
    "gap_closed_mean": "mean over the top engineered features of 1 - |generated shift - real shift| / "
                       "|real shift|; 1: generated cells match real target cells, 0: no closer than the "
                       "inputs. Good: >= 0.3.",
    "class_accuracy_generated": "share of generated cells a classifier of real cells' features assigns to "
                                "their target's class (complex). Good: >= 2 x chance and above the inputs'.",
    "class_accuracy_inputs": "the same classifier on the unmodified inputs, scored against the targets' "
                             "classes: what restyling must beat.",
    "class_accuracy_chance": "share of the most common class among the targets.",
    "class_accuracy_real_cv": "cross-validated accuracy of that classifier on real cells: the ceiling.",
    "frechet_generated": "Fréchet distance between generated and real target cells' features (PCA of "
                         "standardised engineered features); lower is more realistic.",
    "frechet_inputs": "the same between the real inputs and real target cells: restyling should get "
                      "below it.",
}
"""One sentence per headline metric: what it means and what a good value is."""


def nucleus_masks(dna: np.ndarray, sigma: float) -> np.ndarray:
    """Nucleus masks (n, S, S) bool of DNA crops (n, S, S) (module docstring; empty where flat)."""
    return np.stack([nucleus_mask(np.asarray(d, dtype=np.float32), sigma) for d in dna])


def _centroids(masks: np.ndarray) -> np.ndarray:
    """(n, 2) float64 row/column centroids of masks (n, S, S); NaN for an empty mask."""
    area = masks.sum(axis=(1, 2)).astype(float)
    rows = np.arange(masks.shape[1], dtype=float)
    cols = np.arange(masks.shape[2], dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = (masks.sum(axis=2) * rows).sum(axis=1) / area
        cx = (masks.sum(axis=1) * cols).sum(axis=1) / area
    return np.stack([np.where(area > 0, cy, np.nan), np.where(area > 0, cx, np.nan)], axis=1)


def content_kept(inputs: np.ndarray, outputs: np.ndarray, sigma: float,
                 input_masks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per pair (input row i, output row i) of crops (n, C, S, S): (nucleus IoU (n,), centroid
    shift in px (n,)), float64. Two empty masks: IoU 1, shift NaN; one empty: IoU 0, shift NaN.
    ``input_masks`` (n, S, S): the inputs' masks, when already computed."""
    a = nucleus_masks(inputs[:, 0], sigma) if input_masks is None else input_masks
    b = nucleus_masks(outputs[:, 0], sigma)
    inter = (a & b).sum(axis=(1, 2)).astype(float)
    union = (a | b).sum(axis=(1, 2)).astype(float)
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    shift = np.linalg.norm(_centroids(a) - _centroids(b), axis=1)
    return iou, shift


def input_dependence(inputs: np.ndarray, outputs: np.ndarray) -> float:
    """Mean over pixels and channels of the SD (ddof 0) across rows of ``outputs`` (n, C, S, S),
    all restyled to one target, divided by the same for ``inputs`` (n, C, S, S). NaN when the
    inputs do not vary or n < 2."""
    if len(inputs) < 2:
        return float("nan")
    spread = float(np.asarray(inputs, dtype=np.float64).std(axis=0).mean())
    if spread <= 0:
        return float("nan")
    return float(np.asarray(outputs, dtype=np.float64).std(axis=0).mean()) / spread


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of samples ``a`` (n, d) and ``b`` (m, d):
    ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)). 0 for identical samples."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mu = a.mean(0) - b.mean(0)
    sa, sb = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = linalg.sqrtm(sa @ sb)
    root = np.real(root)
    return float(max(mu @ mu + np.trace(sa) + np.trace(sb) - 2 * np.trace(root), 0.0))


class FeatureSpace:
    """Standardise on ``real`` (n, F) features (missing -> 0 after standardising; columns that are
    missing everywhere or constant are dropped), then project on the top ``n_components``
    principal components of the real cells: ``transform(frame)`` -> (m, k) float64."""

    def __init__(self, real: pd.DataFrame, n_components: int = N_COMPONENTS, seed: int = 0):
        values = real.to_numpy(dtype=np.float64)
        self.mean, self.sd = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
        self.keep = np.isfinite(self.mean) & (self.sd > 1e-12)
        self.columns = list(real.columns)
        z = self._standardise(values)
        self.pca = PCA(min(n_components, z.shape[1], len(z) - 1), random_state=seed).fit(z)

    def _standardise(self, values: np.ndarray) -> np.ndarray:
        z = (values[:, self.keep] - self.mean[self.keep]) / self.sd[self.keep]
        return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        return self.pca.transform(self._standardise(frame[self.columns].to_numpy(dtype=np.float64)))


def class_classifier(features: pd.DataFrame, classes: np.ndarray, seed: int,
                     threads: int = 1) -> tuple[RandomForestClassifier, float]:
    """A random forest (``N_TREES``) of real cells' features (n, F; missing values allowed) to
    their classes (n,), fitted on all cells, and its ``CV_FOLDS``-fold stratified
    cross-validated accuracy on them. Cells without any finite feature are left out."""
    ok = np.isfinite(features.to_numpy(dtype=float)).any(axis=1)
    x, y = features[ok], np.asarray(classes)[ok]
    forest = RandomForestClassifier(n_estimators=N_TREES, random_state=seed, n_jobs=threads)
    folds = min(CV_FOLDS, int(pd.Series(y).value_counts().min()))
    cv = float("nan")
    if folds >= 2:
        cv = float(cross_val_score(forest, x, y, cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                                   scoring="accuracy", n_jobs=1).mean())
    return forest.fit(x, y), cv


def class_accuracy(forest: RandomForestClassifier, features: pd.DataFrame, target_classes: np.ndarray) -> float:
    """Share of rows of ``features`` whose predicted class equals ``target_classes`` (n,);
    rows without any finite feature count as wrong. NaN for no rows."""
    if not len(features):
        return float("nan")
    ok = np.isfinite(features.to_numpy(dtype=float)).any(axis=1)
    hits = np.zeros(len(features), bool)
    if ok.any():
        hits[ok] = forest.predict(features[ok]) == np.asarray(target_classes)[ok]
    return float(hits.mean())


def restyle_quality(inputs: np.ndarray, outputs: Iterable[tuple[str, np.ndarray]],
                    features: Callable[[np.ndarray], pd.DataFrame], real_features: pd.DataFrame,
                    real_targets: np.ndarray, target_class: dict[str, str], sigma: float, seed: int,
                    threads: int = 1) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """All metrics of the module docstring except gap closed (the caller's feature ranking).

    ``inputs`` (n, C, S, S) crops; ``outputs`` yields (target label, (n, C, S, S) outputs,
    row i from input i), one per target; ``features(crops)`` -> engineered features (one row
    per crop, the columns of ``real_features``); ``real_features`` of real target cells with
    their target labels ``real_targets``; ``target_class`` maps every target label to its
    class (e.g. gene -> complex); targets without a class are restyled for content and input
    dependence but left out of the class and realism metrics.

    Returns (metrics: one row per metric, columns metric and value; generated features with a
    ``target`` column; the inputs' features), the last two for the caller's feature comparisons.
    """
    in_masks = nucleus_masks(inputs[:, 0], sigma)
    other_iou, other_shift = content_kept(inputs, np.roll(inputs, -1, axis=0), sigma, in_masks)
    in_feat = features(inputs)
    ious, shifts, deps, generated = [], [], [], []
    for label, out in outputs:
        iou, shift = content_kept(inputs, out, sigma, in_masks)
        ious.append(iou)
        shifts.append(shift)
        deps.append(input_dependence(inputs, out))
        generated.append(features(out).assign(target=label))
    gen = pd.concat(generated, ignore_index=True)
    scored = [t for t in gen["target"].unique() if t in target_class]
    real_ok = np.isin(real_targets, scored)
    real_classes = np.array([target_class[t] for t in np.asarray(real_targets)[real_ok]])
    forest, cv = class_classifier(real_features[real_ok], real_classes, seed, threads)
    gen_scored = gen[gen["target"].isin(scored)]
    gen_classes = gen_scored["target"].map(target_class).to_numpy()
    input_rows = pd.concat([in_feat] * len(scored), ignore_index=True)
    input_classes = np.repeat([target_class[t] for t in scored], len(in_feat))
    target_share = pd.Series([target_class[t] for t in scored]).value_counts(normalize=True)
    space = FeatureSpace(pd.concat([in_feat, real_features[real_ok]], ignore_index=True), seed=seed)
    real_z = space.transform(real_features[real_ok])
    values = {
        "nucleus_iou": float(np.mean(np.concatenate(ious))),
        "centroid_shift_px": float(np.nanmean(np.concatenate(shifts))),
        "nucleus_iou_other_input": float(np.mean(other_iou)),
        "centroid_shift_other_input_px": float(np.nanmean(other_shift)) if np.isfinite(other_shift).any() else float("nan"),
        "input_dependence": float(np.nanmean(deps)),
        "class_accuracy_generated": class_accuracy(forest, gen_scored[real_features.columns], gen_classes),
        "class_accuracy_inputs": class_accuracy(forest, input_rows, input_classes),
        "class_accuracy_chance": float(target_share.max()) if len(target_share) else float("nan"),
        "class_accuracy_real_cv": cv,
        "frechet_generated": frechet_distance(space.transform(gen_scored[real_features.columns]), real_z),
        "frechet_inputs": frechet_distance(space.transform(in_feat), real_z),
        "n_inputs": float(len(inputs)),
        "n_targets": float(len(deps)),
        "n_targets_scored": float(len(scored)),
        "n_classes": float(len(target_share)),
        "n_pairs_without_nucleus": float(np.isnan(np.concatenate(shifts)).sum()),
    }
    return pd.DataFrame({"metric": list(values), "value": list(values.values())}), gen, in_feat
