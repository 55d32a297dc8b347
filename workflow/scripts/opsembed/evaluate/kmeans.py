"""Many k-means restarts as one batched Lloyd computation in torch.

All ``R`` runs share the data ``X`` (n, d) and iterate together on centres shaped
(R, k, d); a run stops once its partition no longer changes (strict convergence, as
scikit-learn's Lloyd with ``tol=0``) and the batch shrinks to the runs still moving.
:func:`row_space` rotates wide data (d > n) into n dimensions without changing any
distance, which makes embeddings of few genes in many dimensions cheap to cluster.

Initialisation is scikit-learn's greedy k-means++ (Arthur & Vassilvitskii 2007, with
``2 + floor(ln k)`` candidates per step), run independently per restart: run ``r`` draws
its uniforms from ``numpy.random.default_rng(seeds[r])``, so its centres depend only on
its own seed and not on the batch it is computed in. Per-run seeds come from
:func:`run_seeds`. Everything is float64, like scikit-learn on float64 input.
"""

from __future__ import annotations

import numpy as np
import torch


def run_seeds(seed: int, k: int, n_runs: int) -> np.ndarray:
    """Per-run seeds (int64, shape (n_runs,)) for ``n_runs`` restarts at ``k`` clusters.

    Drawn from ``numpy.random.default_rng([seed, k])``, so every k of a sweep gets its
    own reproducible seeds and the runs at one k are the same wherever they are computed.
    """
    return np.random.default_rng([seed, k]).integers(0, 2**31 - 1, size=n_runs, dtype=np.int64)


def row_space(values: np.ndarray) -> np.ndarray:
    """``values`` (n, d) in coordinates of its row space: float64 (n, min(n, d)).

    An orthogonal change of basis (``X @ V`` from the thin SVD ``X = U S V^T``), so all
    inner products and distances between rows are kept; returned unchanged when d <= n.
    """
    X = np.asarray(values, dtype=np.float64)
    if X.shape[1] <= X.shape[0]:
        return X
    _, _, vh = np.linalg.svd(X, full_matrices=False)
    return X @ vh.T


def kmeans_plusplus(values: np.ndarray, k: int, seeds: np.ndarray) -> np.ndarray:
    """Greedy k-means++ initial centres, one set per seed: float64 (len(seeds), k, d).

    As scikit-learn's ``init="k-means++"``: the first centre is a uniformly drawn point;
    each next one is the best, by resulting inertia, of ``2 + floor(ln k)`` candidates
    drawn with probability proportional to the squared distance to the nearest centre
    chosen so far. Run ``r`` uses only ``numpy.random.default_rng(seeds[r])``.
    """
    X = torch.as_tensor(np.asarray(values, dtype=np.float64))
    n = X.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"kmeans_plusplus: k={k} for {n} points")
    trials = 2 + int(np.log(k))
    u = torch.as_tensor(np.stack([np.random.default_rng(int(s)).random(1 + (k - 1) * trials)
                                  for s in seeds]))
    R = u.shape[0]
    x_sq = (X * X).sum(1)
    d2 = (x_sq[:, None] - 2.0 * (X @ X.T) + x_sq[None, :]).clamp_min(0.0)   # (n, n)
    chosen = torch.empty((R, k), dtype=torch.int64)
    chosen[:, 0] = torch.clamp((u[:, 0] * n).long(), max=n - 1)
    nearest = d2[chosen[:, 0]]                                              # (R, n)
    for j in range(1, k):
        cum = nearest.cumsum(1)
        target = u[:, 1 + (j - 1) * trials: 1 + j * trials] * cum[:, -1:]
        cand = torch.searchsorted(cum, target.contiguous(), right=True).clamp(max=n - 1)
        pot = torch.minimum(nearest.unsqueeze(1), d2[cand])                  # (R, L, n)
        best = pot.sum(2).argmin(1)
        chosen[:, j] = cand.gather(1, best.unsqueeze(1)).squeeze(1)
        nearest = pot[torch.arange(R), best]
    return X[chosen].numpy()


def batched_kmeans(values: np.ndarray, init: np.ndarray,
                   max_iter: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lloyd's k-means from each of ``R`` initial centre sets ``init`` (R, k, d).

    Iterates assignment (squared Euclidean, ties to the lowest cluster index) and mean
    update until the partition stops changing or ``max_iter`` updates. An empty cluster
    is re-seeded at the point farthest from its assigned centre (as scikit-learn does).
    Returns ``labels`` int64 (R, n), ``centres`` float64 (R, k, d), ``inertia`` float64
    (R,) (sum of squared distances to the assigned centres) and ``n_iter`` int64 (R,)
    (mean updates until the partition was stable; ``max_iter`` when it never was).
    """
    X = torch.as_tensor(np.asarray(values, dtype=np.float64))
    C = torch.as_tensor(np.array(init, dtype=np.float64))
    if C.ndim != 3 or C.shape[2] != X.shape[1] or max_iter < 1:
        raise ValueError(f"batched_kmeans: init {tuple(C.shape)} for data {tuple(X.shape)}, "
                         f"max_iter={max_iter}")
    R, k, _ = C.shape
    x_sq = (X * X).sum(1)
    labels = torch.full((R, X.shape[0]), -1, dtype=torch.int64)
    n_iter = torch.full((R,), max_iter, dtype=torch.int64)
    active = torch.arange(R)
    for it in range(max_iter):
        dist = _sq_dist(X, x_sq, C[active])
        new = dist.argmin(2)
        stable = (new == labels[active]).all(1)
        labels[active] = new
        n_iter[active[stable]] = it
        moving = ~stable
        active, new, dist = active[moving], new[moving], dist[moving]
        if len(active) == 0:
            break
        C[active] = _update(X, new, dist, k)
    if len(active):
        labels[active] = _sq_dist(X, x_sq, C[active]).argmin(2)
    dist = _sq_dist(X, x_sq, C)
    inertia = dist.gather(2, labels.unsqueeze(2)).squeeze(2).clamp_min(0.0).sum(1)
    return labels.numpy(), C.numpy(), inertia.numpy(), n_iter.numpy()


def _sq_dist(X: torch.Tensor, x_sq: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (R, n, k) between points X (n, d) and centres C (R, k, d)."""
    return x_sq[None, :, None] - 2.0 * torch.matmul(X, C.transpose(1, 2)) + (C * C).sum(2)[:, None, :]


def _update(X: torch.Tensor, labels: torch.Tensor, dist: torch.Tensor, k: int) -> torch.Tensor:
    """Cluster means (R, k, d) of a batch of partitions; empty clusters re-seeded."""
    onehot = torch.nn.functional.one_hot(labels, k).to(X.dtype)          # (R, n, k)
    sums = torch.matmul(onehot.transpose(1, 2), X)                      # (R, k, d)
    counts = onehot.sum(1)                                              # (R, k)
    for r in torch.nonzero((counts == 0).any(1)).flatten().tolist():
        own = dist[r].gather(1, labels[r].unsqueeze(1)).squeeze(1)
        far = iter(torch.argsort(own, descending=True, stable=True).tolist())
        for e in torch.nonzero(counts[r] == 0).flatten().tolist():
            p = next(i for i in far if counts[r, labels[r, i]] > 1)
            sums[r, labels[r, p]] -= X[p]
            counts[r, labels[r, p]] -= 1
            sums[r, e] = X[p]
            counts[r, e] = 1
    return sums / counts.unsqueeze(2)
