"""Z-scoring batches, per-channel pixel statistics streamed over crop blocks, and z-scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..io.errors import InputError

NESTED = {"plate": ["plate"], "well": ["plate", "well"], "tile": ["plate", "well", "tile"]}
"""batch_key values named within their parents: a well name repeats on every plate and a
tile name in every well, so their batch is the (plate, well[, tile]) path."""


def batch_labels(cells: pd.DataFrame, batch_key: str, path=None) -> pd.Series:
    """The z-scoring batch of each cell: str Series aligned with ``cells``.

    ``plate``: the plate; ``well``: ``"plate/well"``; ``tile``: ``"plate/well/tile"``
    (same-named wells of different plates are different batches); any other column: its
    value as str, shared across plates (e.g. an imaging batch spanning several plates).
    Raises InputError naming ``path`` and the 1-based row when a batch_key value is empty.
    """
    columns = NESTED.get(batch_key, [batch_key])
    values = cells[columns]
    empty = values.isna().any(axis=1).to_numpy()
    if empty.any():
        raise InputError(f"{path or 'cell table'}: row {int(empty.argmax()) + 1} has an empty "
                         f"{batch_key!r}, the batch_key column. Every cell needs a batch.")
    values = values.astype(str)
    labels = values[columns[0]]
    for col in columns[1:]:
        labels = labels.str.cat(values[col], sep="/")
    return labels.rename("batch")


class ChannelMoments:
    """Running count, mean and sum of squared deviations per channel, in float64.

    Blocks are merged with the pairwise update of Chan et al., so the result equals the
    statistics of all pixels at once without holding them (memory: one block).
    """

    def __init__(self, n_channels: int):
        self.n_crops = 0
        self.n_pixels = 0
        self.mean = np.zeros(n_channels, dtype=np.float64)
        self._m2 = np.zeros(n_channels, dtype=np.float64)

    def add(self, crops: np.ndarray) -> None:
        """Include every pixel of ``crops`` (n, C, S, S)."""
        if len(crops) == 0:
            return
        self.merge(*block_moments(crops))

    def merge(self, n_crops: int, n_pixels: int, mean_b: np.ndarray, m2_b: np.ndarray) -> None:
        """Include one block given by ``block_moments``: merging the blocks in the order
        ``add`` would see them gives bit for bit the same statistics (the per-well jobs
        save their blocks' moments and the combine job replays them, rule combine_moments)."""
        n = self.n_pixels + n_pixels
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_pixels / n)
        self._m2 = self._m2 + m2_b + delta ** 2 * (self.n_pixels * n_pixels / n)
        self.n_pixels = n
        self.n_crops += int(n_crops)

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation per channel (ddof 0), float64 (C,)."""
        return np.sqrt(self._m2 / self.n_pixels)


def block_moments(crops: np.ndarray) -> tuple[int, int, np.ndarray, np.ndarray]:
    """(n crops, n pixels per channel, mean (C,), sum of squared deviations (C,)), float64,
    over every pixel of the non-empty ``crops`` (n, C, S, S)."""
    values = np.asarray(crops, dtype=np.float64).transpose(1, 0, 2, 3).reshape(crops.shape[1], -1)
    mean_b = values.mean(axis=1)
    return len(crops), values.shape[1], mean_b, ((values - mean_b[:, None]) ** 2).sum(axis=1)


def zscore(crops: np.ndarray, batch_index: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(crops - mean[b, c]) / std[b, c]`` with b = ``batch_index`` per crop; float32 (n, C, S, S).

    ``mean`` and ``std`` are (n_batches, C).
    """
    m = mean[batch_index][:, :, None, None]
    s = std[batch_index][:, :, None, None]
    return ((crops - m) / s).astype(np.float32)
