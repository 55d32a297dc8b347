"""Metrics of the out-of-distribution (OOD) benchmark of IST (Pernice et al. 2023); the
folds it scores are defined in ``opsembed.io.folds``.

Scoring (``scored_labels``): a test cell counts only when its gene has training cells
in that fold, since a classifier cannot name a gene it never saw. Macro-F1 is averaged
over the genes that have both test and training cells. In the demo's sparse design every
gene is on at least two plates, so every gene of a held-out plate is scored.

Metrics: macro-F1 (sklearn), scaled cLISI and bLISI (harmonypy ``compute_lisi``, scaled
as in scIB with the median), kNN BatchCV and the Harmony + kNN classifier variant.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

METRIC_KEYS = ("max_eval_cells", "knn_neighbors", "harmony_pcs", "lisi_perplexity")
"""Keys of the ``ood`` block the metrics read besides the folds' (``opsembed.io.folds.FOLD_KEYS``)."""


def scored_labels(y_train, y_test) -> list:
    """Labels that have both training and test cells (sorted): the genes a fold scores."""
    return sorted(set(np.asarray(y_train).tolist()) & set(np.asarray(y_test).tolist()))


def macro_f1(y_true, y_pred, labels) -> float:
    """Unweighted mean over ``labels`` of per-label F1 (sklearn ``f1_score(average="macro")``).

    Predictions of other labels count as errors; a label never predicted has F1 0.
    """
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, labels=list(labels), average="macro", zero_division=0))


def scored_macro_f1(y_train, y_test, y_pred) -> dict:
    """Macro-F1 of the test cells whose gene has training cells, with the counts.

    Returns ``macro_f1``, ``accuracy`` (over scored cells), ``n_test_cells``,
    ``n_scored_cells`` and ``n_scored_genes``.
    """
    y_test, y_pred = np.asarray(y_test), np.asarray(y_pred)
    labels = scored_labels(y_train, y_test)
    keep = np.isin(y_test, labels)
    return {"macro_f1": macro_f1(y_test[keep], y_pred[keep], labels) if keep.any() else float("nan"),
            "accuracy": float((y_test[keep] == y_pred[keep]).mean()) if keep.any() else float("nan"),
            "n_test_cells": int(len(y_test)), "n_scored_cells": int(keep.sum()),
            "n_scored_genes": len(labels)}


def lisi(x: np.ndarray, labels, perplexity: float) -> np.ndarray:
    """Per-cell LISI of one label column (harmonypy ``compute_lisi``): float64 (n,) in [1, #labels].

    The perplexity is capped at (n - 1) / 3 so that its 3 * perplexity neighbours exist.
    """
    from harmonypy import compute_lisi

    perplexity = min(float(perplexity), (len(x) - 1) / 3)
    meta = pd.DataFrame({"label": np.asarray(labels).astype(str)})
    return compute_lisi(np.asarray(x, dtype=np.float64), meta, ["label"], perplexity)[:, 0]


def scaled_clisi(x: np.ndarray, genes, perplexity: float) -> float:
    """(G - median LISI over genes) / (G - 1), G = distinct genes: 1 = neighbours share the gene."""
    n = len(set(np.asarray(genes).tolist()))
    return float((n - np.median(lisi(x, genes, perplexity))) / (n - 1)) if n > 1 else float("nan")


def scaled_blisi(x: np.ndarray, batches, perplexity: float) -> float:
    """(median LISI over batches - 1) / (K - 1), K = distinct batches: 1 = batches fully mixed."""
    n = len(set(np.asarray(batches).tolist()))
    return float((np.median(lisi(x, batches, perplexity)) - 1) / (n - 1)) if n > 1 else float("nan")


def knn_predict(x_ref: np.ndarray, y_ref, x_query: np.ndarray, k: int) -> np.ndarray:
    """Majority label of the k nearest (Euclidean) reference cells for each query cell
    (sklearn KNeighborsClassifier, uniform weights; k capped at the reference size)."""
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=min(int(k), len(x_ref)))
    return knn.fit(x_ref, np.asarray(y_ref)).predict(x_query)


def knn_batchcv(x_ref: np.ndarray, y_ref, oe_ref, x_query: np.ndarray, y_query, oe_query, k: int) -> float:
    """kNN BatchCV: each query cell is classified by kNN on the reference cells of *other* OEs
    only (its own OE's reference cells removed); macro-F1 of the pooled predictions over the
    genes that occur both in the query and in some reference (``scored_labels``)."""
    y_ref, oe_ref, y_query, oe_query = map(np.asarray, (y_ref, oe_ref, y_query, oe_query))
    pred = np.empty(len(y_query), dtype=object)
    for oe in sorted(set(oe_query.tolist())):
        q, r = oe_query == oe, oe_ref != oe
        if not r.any():
            raise ValueError(f"knn_batchcv: OE {oe!r} is the only OE of the reference")
        pred[q] = knn_predict(x_ref[r], y_ref[r], x_query[q], k)
    return scored_macro_f1(y_ref, y_query, pred.astype(y_query.dtype))["macro_f1"]


def harmony_correct(x: np.ndarray, batches, n_pcs: int, seed: int) -> np.ndarray:
    """Harmony (harmonypy ``run_harmony``) on the first ``n_pcs`` principal components of
    ``x`` (n, d), batch variable ``batches`` (n,): corrected coordinates (n, min(n_pcs, d, n)).
    Clusters: harmonypy's own rule, min(round(n / 30), 100), but at least 1 (its rule gives 0
    below 15 cells, which harmonypy refuses)."""
    from harmonypy import run_harmony
    from sklearn.decomposition import PCA

    n_pcs = int(min(n_pcs, x.shape[1], x.shape[0]))
    pcs = PCA(n_components=n_pcs, random_state=seed).fit_transform(np.asarray(x, dtype=np.float64))
    meta = pd.DataFrame({"batch": np.asarray(batches).astype(str)})
    nclust = max(1, int(min(round(len(x) / 30.0), 100)))
    out = run_harmony(pcs, meta, "batch", nclust=nclust, verbose=False, random_state=seed, ncores=1)
    return np.asarray(out.Z_corr, dtype=np.float64).reshape(len(x), n_pcs)


def harmony_knn(x_train: np.ndarray, y_train, b_train, x_test: np.ndarray, b_test, k: int, n_pcs: int,
                seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Harmony-kNN (stand-in for Symphony): Harmony on train and test features together with
    their OEs as batches, then kNN (``k``) on the corrected training cells predicts the test
    cells. Returns (predictions (n_test,), corrected train, corrected test)."""
    z = harmony_correct(np.concatenate([x_train, x_test]),
                        np.concatenate([np.asarray(b_train), np.asarray(b_test)]), n_pcs, seed)
    z_train, z_test = z[:len(x_train)], z[len(x_train):]
    return knn_predict(z_train, y_train, z_test, k), z_train, z_test


def masked_argmax(logits: np.ndarray, allowed) -> np.ndarray:
    """Row-wise argmax of ``logits`` (n, k) over the column ids ``allowed`` only: int64 (n,)."""
    allowed = np.asarray(sorted(allowed), dtype=np.int64)
    return allowed[np.asarray(logits)[:, allowed].argmax(axis=1)]


def phenotype_kept(logits_restyled: np.ndarray, logits_original: np.ndarray, labels, allowed) -> dict:
    """IST's phenotype-kept score: accuracy of a frozen gene head on restyled cells divided by
    its accuracy on the same cells unmodified (1 = the restyling keeps all the phenotype the
    head can read; NaN when the head gets none of the originals right).

    ``logits_*`` (n, G) gene logits; ``labels`` (n,) true gene ids; ``allowed``: the gene ids
    the head may answer (the fold's training genes). Returns ``accuracy_restyled``,
    ``accuracy_original`` and ``phenotype_kept``."""
    labels = np.asarray(labels)
    acc_r = float((masked_argmax(logits_restyled, allowed) == labels).mean())
    acc_o = float((masked_argmax(logits_original, allowed) == labels).mean())
    return {"accuracy_restyled": acc_r, "accuracy_original": acc_o,
            "phenotype_kept": acc_r / acc_o if acc_o > 0 else float("nan")}


def style_taken(oe_logits: np.ndarray, style_oes, allowed) -> dict:
    """IST's style-taken score: the share of restyled cells that a frozen OE head assigns to
    their style image's OE (argmax over the OE ids ``allowed``), beside chance 1 / len(allowed).

    ``oe_logits`` (n, K); ``style_oes`` (n,) OE ids. Returns ``style_taken``, ``chance`` and
    ``style_taken_over_chance``."""
    share = float((masked_argmax(oe_logits, allowed) == np.asarray(style_oes)).mean())
    chance = 1.0 / len(list(allowed))
    return {"style_taken": share, "chance": chance, "style_taken_over_chance": share / chance}
