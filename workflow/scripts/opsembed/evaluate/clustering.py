"""Agreement of repeated k-means partitions with the complexes: purity, NMI, ARI.

The scores are computed for all runs at once from their contingency tables and equal
scikit-learn's ``normalized_mutual_info_score`` (arithmetic normalisation) and
``adjusted_rand_score`` (tests check this). Purity is the fraction of genes that belong
to the most common complex of their cluster: ``sum_clusters max_complex n_ij / n``.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from tqdm import tqdm

from .kmeans import batched_kmeans, kmeans_plusplus, row_space, run_seeds

logger = logging.getLogger(__name__)

SCORES = ["purity", "nmi", "ari"]


def contingency(truth: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Counts int64 (R, n_classes, n_clusters) of class ``truth[i]`` x cluster ``labels[r, i]``.

    ``truth`` (n,) and ``labels`` (R, n) hold any integer codes; both are re-coded to 0..m-1.
    """
    _, t = np.unique(np.asarray(truth), return_inverse=True)
    labels = np.atleast_2d(np.asarray(labels))
    _, p = np.unique(labels, return_inverse=True)
    p = p.reshape(labels.shape)
    R, n = labels.shape
    n_t, n_p = t.max() + 1, p.max() + 1
    flat = (np.arange(R)[:, None] * n_t + t[None, :]) * n_p + p
    return np.bincount(flat.ravel(), minlength=R * n_t * n_p).reshape(R, n_t, n_p)


def partition_scores(truth: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """Purity, NMI and ARI of each partition ``labels`` (R, n) against ``truth`` (n,).

    Returns a float64 frame with columns ``purity, nmi, ari`` and R rows.
    """
    cont = contingency(truth, labels)
    return pd.DataFrame({"purity": purity(cont), "nmi": nmi(cont), "ari": ari(cont)})


def purity(cont: np.ndarray) -> np.ndarray:
    """Purity (R,) from contingency tables (R, classes, clusters)."""
    return cont.max(1).sum(1) / cont.sum((1, 2))


def nmi(cont: np.ndarray) -> np.ndarray:
    """NMI with arithmetic-mean normalisation (R,), as sklearn's, natural logs."""
    cont = cont.astype(np.float64)
    n = cont.sum((1, 2))[:, None, None]
    a = cont.sum(2, keepdims=True)                       # class sizes (R, C, 1)
    b = cont.sum(1, keepdims=True)                       # cluster sizes (R, 1, K)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(cont > 0, cont / n * np.log(cont * n / (a * b)), 0.0)
        mi = np.clip(terms.sum((1, 2)), 0.0, None)
        h_a = -np.where(a > 0, a / n * np.log(a / n), 0.0).sum((1, 2))
        h_b = -np.where(b > 0, b / n * np.log(b / n), 0.0).sum((1, 2))
    n_classes = (a[:, :, 0] > 0).sum(1)
    n_clusters = (b[:, 0, :] > 0).sum(1)
    norm = np.maximum((h_a + h_b) / 2.0, np.finfo(np.float64).eps)
    out = np.where(mi > 0, mi / norm, 0.0)
    return np.where((n_classes == 1) & (n_clusters == 1), 1.0, out)


def ari(cont: np.ndarray) -> np.ndarray:
    """Adjusted Rand index (R,) from the pair confusion matrix, as sklearn's."""
    cont = cont.astype(np.int64)
    n = cont.sum((1, 2))
    a = cont.sum(2)
    b = cont.sum(1)
    sq = (cont ** 2).sum((1, 2))
    tp = sq - n
    fp = (cont * b[:, None, :]).sum((1, 2)) - sq
    fn = (cont * a[:, :, None]).sum((1, 2)) - sq
    tn = n ** 2 - fp - fn - sq
    tp, fp, fn, tn = (x.astype(np.float64) for x in (tp, fp, fn, tn))
    denom = (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 2.0 * (tp * tn - fn * fp) / denom
    return np.where((fn == 0) & (fp == 0), 1.0, out)


def kmeans_runs(values: np.ndarray, truth: np.ndarray, k: int, n_runs: int,
                max_iter: int, seed: int) -> pd.DataFrame:
    """``n_runs`` k-means++/Lloyd restarts at ``k`` clusters, each scored against ``truth``.

    Returns one row per run: ``k, run, seed, purity, nmi, ari, inertia, n_iter``.
    """
    seeds = run_seeds(seed, k, n_runs)
    init = kmeans_plusplus(values, k, seeds)
    labels, _, inertia, n_iter = batched_kmeans(values, init, max_iter=max_iter)
    scores = partition_scores(truth, labels)
    runs = pd.DataFrame({"k": k, "run": np.arange(n_runs), "seed": seeds})
    return pd.concat([runs, scores], axis=1).assign(inertia=inertia, n_iter=n_iter)


def k_sweep(values: np.ndarray, truth: np.ndarray, ks, n_runs: int, max_iter: int,
            seed: int) -> pd.DataFrame:
    """:func:`kmeans_runs` for every k in ``ks``; the runs of all k in one frame.

    The data are first rotated into their row space (:func:`row_space`): same partitions,
    less work when there are more dimensions than genes.
    """
    ks = list(ks)
    values = row_space(values)
    frames = [kmeans_runs(values, truth, k, n_runs, max_iter, seed)
              for k in tqdm(ks, desc="k-means sweep", unit="k", leave=False)]
    if not frames:
        return pd.DataFrame(columns=["k", "run", "seed", *SCORES, "inertia", "n_iter"])
    return pd.concat(frames, ignore_index=True)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Per k: ``k, n_runs, purity_mean, purity_sd, nmi_mean, nmi_sd, ari_mean, ari_sd``.

    sd is the population standard deviation over runs (ddof=0; 0 for a single run).
    """
    columns = ["k", "n_runs"] + [f"{s}_{m}" for s in SCORES for m in ("mean", "sd")]
    rows = []
    for k, group in runs.groupby("k", sort=True):
        row = {"k": int(k), "n_runs": len(group)}
        for s in SCORES:
            row[f"{s}_mean"] = float(group[s].mean())
            row[f"{s}_sd"] = float(group[s].std(ddof=0))
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)
