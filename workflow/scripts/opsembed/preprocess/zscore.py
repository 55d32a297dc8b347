"""Per-channel pixel statistics streamed over crop blocks, and z-scoring with them."""

from __future__ import annotations

import numpy as np


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
        values = np.asarray(crops, dtype=np.float64).transpose(1, 0, 2, 3).reshape(crops.shape[1], -1)
        n_b = values.shape[1]
        mean_b = values.mean(axis=1)
        m2_b = ((values - mean_b[:, None]) ** 2).sum(axis=1)
        n = self.n_pixels + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self._m2 = self._m2 + m2_b + delta ** 2 * (self.n_pixels * n_b / n)
        self.n_pixels = n
        self.n_crops += len(crops)

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation per channel (ddof 0), float64 (C,)."""
        return np.sqrt(self._m2 / self.n_pixels)


def zscore(crops: np.ndarray, batch_index: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(crops - mean[b, c]) / std[b, c]`` with b = ``batch_index`` per crop; float32 (n, C, S, S).

    ``mean`` and ``std`` are (n_batches, C).
    """
    m = mean[batch_index][:, :, None, None]
    s = std[batch_index][:, :, None, None]
    return ((crops - m) / s).astype(np.float32)
