"""Known-relationship recall (EFAAR benchmark, Celik et al. 2024).

Over all unordered pairs of evaluated genes, take the cosine similarity; a pair is
"extreme" when its similarity is at or below the ``percentile``-th percentile or at or
above the ``(100 - percentile)``-th percentile of all pairs (``numpy.percentile``,
linear interpolation). Recall is the fraction of same-complex pairs that are extreme
(chance level: ``2 * percentile / 100``, :func:`recall_chance`). The benchmark reports it at
the configured percentile and at EFAAR's own thresholds, the 10th and 90th percentiles
(:data:`EFAAR_PERCENTILE`; chance 0.2).
"""

from __future__ import annotations

import numpy as np

EFAAR_PERCENTILE = 10.0
"""EFAAR's thresholds: pairs at or below the 10th or at or above the 90th percentile."""


def cosine_similarity(values: np.ndarray) -> np.ndarray:
    """Cosine similarity matrix float64 (n, n) of the rows of ``values`` (n, d), non-zero rows."""
    X = np.asarray(values, dtype=np.float64)
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    return X @ X.T


def known_relationship_recall(values: np.ndarray, complexes, percentile: float) -> float:
    """Fraction of same-complex gene pairs whose cosine similarity is in either tail.

    ``values`` (n, d) embeddings, ``complexes`` length-n labels, ``percentile`` in (0, 50].
    """
    labels = np.asarray(complexes)
    i, j = np.triu_indices(len(labels), k=1)
    sims = cosine_similarity(values)[i, j]
    low, high = np.percentile(sims, [percentile, 100.0 - percentile])
    same = labels[i] == labels[j]
    if not same.any():
        raise ValueError("known_relationship_recall: no pair of genes shares a complex")
    extreme = (sims <= low) | (sims >= high)
    return float(extreme[same].mean())


def recall_chance(percentile: float) -> float:
    """Expected recall of a random embedding: ``percentile`` % of pairs in each tail."""
    return 2.0 * float(percentile) / 100.0
