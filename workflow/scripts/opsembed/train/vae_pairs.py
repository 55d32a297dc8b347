"""Pairs for the weakly supervised VAE: on the Source dataset and on a screen.

Every draw is a pure function of (seed, stream, step), like ``data.BalancedSampler``, so a
resumed run sees the pairs an uninterrupted one would. ``views()`` gives two sampler-like
objects (``draw(step, device) -> (rows, labels)``, ``state_dict()``) for the first and second
member of each pair, which ``data.iterate_batches`` accepts as two streams.

Source (``SourcePairs``): the first member is a uniform random row; the number of factors
that differ, m, is uniform in 1 .. k-1 (k factors; the model is never told m); m factors
chosen at random take another value (uniform over the others), the rest keep theirs; the
second member is a uniform random row (repeat) of that combination.

Screen (``ScreenPairs``), one scheme per pair drawn uniformly from ``schemes``:
- ``gene_other_plate``: a cell of the same gene in another batch (plate); when the gene
  has cells in one batch only, another cell of that batch;
- ``plate_other_gene``: a cell of another gene in the same batch;
- ``augment``: the same cell; the trainer shows the two members under independent random
  rotations/reflections.
The first member is a uniform random cell.
"""

from __future__ import annotations

import numpy as np
import torch

from ..io.errors import InputError

SCHEMES = ("gene_other_plate", "plate_other_gene", "augment")


def _rng(seed: int, stream: int, step: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(stream), int(step)])


class _Pairs:
    """Shared caching and the two views; subclasses define ``_draw(rng)``."""

    batch_size: int
    seed: int
    stream: int

    def __init__(self):
        self._cached: tuple[int, tuple] | None = None

    def draw_pairs(self, step: int) -> tuple:
        """(rows_a int64 (B,), rows_b int64 (B,), info) of step ``step``; cached per step."""
        if self._cached is None or self._cached[0] != step:
            self._cached = (step, self._draw(_rng(self.seed, self.stream, step)))
        return self._cached[1]

    def state_dict(self) -> dict:
        return {"seed": self.seed, "stream": self.stream, "batch_size": self.batch_size}

    def views(self) -> dict:
        return {"a": _View(self, 0), "b": _View(self, 1)}


class _View:
    """One member of every pair, as a sampler: ``draw`` -> (rows, labels) int64 tensors."""

    def __init__(self, pairs: _Pairs, side: int):
        self.pairs, self.side = pairs, side

    def draw(self, step: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        drawn = self.pairs.draw_pairs(step)
        rows = torch.as_tensor(drawn[self.side], dtype=torch.long, device=device)
        return rows, torch.as_tensor(self.pairs.labels[drawn[self.side]], dtype=torch.long, device=device)

    def state_dict(self) -> dict:
        return {**self.pairs.state_dict(), "side": self.side}


class SourcePairs(_Pairs):
    """Pairs of Source rows; ``indices`` int (n, k) factor-value indices per row, ``sizes``
    the number of values of each factor. Every combination must have a row.
    ``draw_pairs`` info: shared factors, bool (B, k)."""

    def __init__(self, indices: np.ndarray, sizes, batch_size: int, seed: int, stream: int = 0):
        super().__init__()
        self.indices = np.asarray(indices, dtype=np.int64)
        self.sizes = [int(s) for s in sizes]
        self.batch_size, self.seed, self.stream = int(batch_size), int(seed), int(stream)
        if self.indices.shape[1] != len(self.sizes) or len(self.sizes) < 2:
            raise InputError(f"Source pairs: {self.indices.shape[1]} factor columns for sizes {self.sizes} "
                             "(need at least two factors).")
        if (np.asarray(self.sizes) < 2).any():
            raise InputError(f"Source pairs: every factor needs at least two values, got sizes {self.sizes}.")
        flat = np.ravel_multi_index(tuple(self.indices.T), self.sizes)
        self.order = np.argsort(flat, kind="stable")
        counts = np.bincount(flat, minlength=int(np.prod(self.sizes)))
        if (counts == 0).any():
            raise InputError(f"Source pairs: {int((counts == 0).sum())} factor combinations have no row; "
                             "regenerate the Source dataset.")
        self.counts, self.starts = counts, np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.labels = np.zeros(len(self.indices), dtype=np.int64)

    def _draw(self, rng: np.random.Generator):
        b, k = self.batch_size, len(self.sizes)
        rows_a = rng.integers(0, len(self.indices), b)
        n_diff = rng.integers(1, k, b)                                   # 1 .. k-1
        ranks = np.argsort(rng.random((b, k)), axis=1)
        changed = ranks < n_diff[:, None]                                # m random factors per pair
        sizes = np.asarray(self.sizes)
        shift = 1 + (rng.random((b, k)) * (sizes - 1)).astype(np.int64)  # 1 .. size-1: another value
        values = self.indices[rows_a].copy()
        values[changed] = ((values + shift) % sizes)[changed]
        flat = np.ravel_multi_index(tuple(values.T), self.sizes)
        within = (rng.random(b) * self.counts[flat]).astype(np.int64)
        rows_b = self.order[self.starts[flat] + within]
        return rows_a, rows_b, ~changed

    def state_dict(self) -> dict:
        return {**super().state_dict(), "sizes": self.sizes}


class ScreenPairs(_Pairs):
    """Pairs of screen cells by ``schemes`` (see module doc); ``gene_ids`` and ``batches``
    (n,) label every cell. ``draw_pairs`` info: scheme index into ``schemes`` per pair (B,)."""

    def __init__(self, gene_ids: np.ndarray, batches: np.ndarray, schemes, batch_size: int, seed: int,
                 stream: int = 0):
        super().__init__()
        self.schemes = list(schemes)
        unknown = sorted(set(self.schemes) - set(SCHEMES))
        if unknown or not self.schemes:
            raise InputError(f"methods.vae.pair_schemes: unknown or no scheme(s) {unknown}; use some of {SCHEMES}.")
        self.labels = np.asarray(gene_ids, dtype=np.int64)
        _, self.batches = np.unique(np.asarray(batches).astype(str), return_inverse=True)
        self.batch_size, self.seed, self.stream = int(batch_size), int(seed), int(stream)
        self._groups: dict[tuple, np.ndarray] = {}

    def _candidates(self, scheme: str, row: int) -> np.ndarray:
        gene, batch = self.labels[row], self.batches[row]
        key = (scheme, gene, batch)
        if key not in self._groups:
            same_gene, same_batch = self.labels == gene, self.batches == batch
            if scheme == "gene_other_plate":
                pick = same_gene & ~same_batch
                if not pick.any():
                    pick = same_gene & same_batch
            else:
                pick = same_batch & ~same_gene
                if not pick.any():
                    pick = same_batch
            self._groups[key] = np.flatnonzero(pick)
        return self._groups[key]

    def _draw(self, rng: np.random.Generator):
        rows_a = rng.integers(0, len(self.labels), self.batch_size)
        which = rng.integers(0, len(self.schemes), self.batch_size)
        u = rng.random(self.batch_size)
        rows_b = rows_a.copy()
        for i, (row, s) in enumerate(zip(rows_a, which)):
            if self.schemes[s] != "augment":
                cand = self._candidates(self.schemes[s], int(row))
                rows_b[i] = cand[min(int(u[i] * len(cand)), len(cand) - 1)]
        return rows_a, rows_b, which

    def state_dict(self) -> dict:
        return {**super().state_dict(), "schemes": self.schemes}
