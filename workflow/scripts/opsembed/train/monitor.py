"""Watching a training run: loss table, TensorBoard, progress bar, NaN guard, sample grids.

Losses stay on the device between log steps (no per-step GPU sync); every ``log_every``
steps their window means become one row of the loss table (``step`` = steps completed).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ..io.figures import save_figure
from ..io.tables import write_table


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; the message says where and what was kept."""


class Monitor:
    """Loss accumulation and reporting for steps ``start`` .. ``total`` of one run.

    ``names``: loss names, in the order of the vectors given to ``record``.
    ``tensorboard_dir``: event files (None: no TensorBoard). On resume, events after
    ``start`` are purged so the curves have no duplicated tail.
    """

    def __init__(self, names: list[str], total: int, start: int, log_every: int, device: torch.device,
                 tensorboard_dir: str | None, progress_interval: float, label: str = "train"):
        self.names, self.total, self.log_every = list(names), int(total), int(log_every)
        self.rows: list[list[float]] = []
        self.sums = torch.zeros(len(names), dtype=torch.float64, device=device)
        self.first_bad = torch.full((len(names),), -1, dtype=torch.long, device=device)
        self.count = 0
        self.writer = None
        if tensorboard_dir is not None:
            from torch.utils.tensorboard import SummaryWriter
            os.makedirs(tensorboard_dir, exist_ok=True)
            self.writer = SummaryWriter(tensorboard_dir, purge_step=start if start else None)
        self.bar = tqdm(total=total, initial=start, desc=label, unit="it", file=sys.stderr,
                        mininterval=progress_interval, smoothing=0.05)
        self._t0, self._s0 = time.perf_counter(), start

    def record(self, step: int, losses: torch.Tensor) -> None:
        """Add the losses (len(names),) of 0-based step ``step`` to the current window."""
        losses = losses.detach().double()
        self.sums += losses
        self.count += 1
        bad = ~torch.isfinite(losses)
        self.first_bad = torch.where((self.first_bad < 0) & bad, step, self.first_bad)
        self.bar.update(1)

    def check_finite(self, context: str) -> None:
        """Raise NonFiniteLossError naming the loss and step when any loss was NaN/inf;
        ``context`` (what was kept and how to go on) ends its message."""
        first = self.first_bad.cpu().numpy()
        if (first >= 0).any():
            i = int(np.argmax(first >= 0))
            raise NonFiniteLossError(
                f"loss {self.names[i]!r} became NaN or infinite at step {int(first[i]) + 1}. "
                f"Training stopped; {context}.")

    def flush(self, step_done: int) -> None:
        """Close the window: append its means as the row for ``step_done`` completed steps."""
        if not self.count:
            return
        means = (self.sums / self.count).cpu().numpy()
        self.rows.append([float(step_done)] + [float(v) for v in means])
        self.sums.zero_()
        self.count = 0
        rate = (step_done - self._s0) / max(time.perf_counter() - self._t0, 1e-9)
        if self.writer is not None:
            for name, value in zip(self.names, means):
                self.writer.add_scalar(f"loss/{name}", value, step_done)
            self.writer.add_scalar("speed/it_per_s", rate, step_done)
        self.bar.set_postfix({n: f"{v:.3g}" for n, v in zip(self.names, means)}, refresh=False)

    def table(self) -> pd.DataFrame:
        """Rows so far: ``step`` (int) then one float column per loss."""
        df = pd.DataFrame(self.rows, columns=["step"] + self.names)
        return df.astype({"step": np.int64})

    def write_table(self, path: str | os.PathLike) -> None:
        write_table(self.table(), path)

    def add_image(self, tag: str, rgb: np.ndarray, step_done: int) -> None:
        """An (H, W, 3) uint8 image into TensorBoard."""
        if self.writer is not None:
            self.writer.add_image(tag, rgb, step_done, dataformats="HWC")

    def state_dict(self) -> dict:
        return {"rows": torch.tensor(self.rows, dtype=torch.float64).reshape(-1, len(self.names) + 1),
                "sums": self.sums.cpu(), "count": self.count, "first_bad": self.first_bad.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.rows = state["rows"].tolist()
        self.sums.copy_(state["sums"])
        self.first_bad.copy_(state["first_bad"])
        self.count = int(state["count"])

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()


PALETTE = np.array([[0.2, 0.4, 1.0], [0.1, 1.0, 0.1], [1.0, 0.15, 0.15], [1.0, 0.2, 1.0],
                    [1.0, 1.0, 0.2], [0.2, 1.0, 1.0]])
"""Display colour of channel i (cycled): blue, green, red, magenta, yellow, cyan."""


def composite(images: np.ndarray) -> np.ndarray:
    """Colour composites of (..., C, S, S) crops: float (..., S, S, 3) in [0, 1].

    Each channel is scaled between its 1st and 99.5th percentile over all given crops
    (one scale for the whole grid), coloured by PALETTE and summed.
    """
    images = np.asarray(images, dtype=np.float32)
    c = images.shape[-3]
    axes = tuple(i for i in range(images.ndim) if i != images.ndim - 3)
    lo = np.percentile(images, 1, axis=axes, keepdims=True)
    hi = np.percentile(images, 99.5, axis=axes, keepdims=True)
    scaled = np.clip((images - lo) / np.maximum(hi - lo, 1e-6), 0, 1)
    colours = PALETTE[np.arange(c) % len(PALETTE)]                      # (C, 3)
    rgb = np.einsum("...chw,cd->...hwd", scaled, colours)
    return np.clip(rgb, 0, 1)


def sample_grid(source: np.ndarray, restyled: np.ndarray) -> np.ndarray:
    """Mosaic: one row per cell, first column the input, then one column per target gene.

    ``source`` (n, C, S, S), ``restyled`` (n, k, C, S, S) -> uint8 RGB (n S, (k + 1) S, 3).
    """
    tiles = np.concatenate([source[:, None], restyled], axis=1)       # (n, k+1, C, S, S)
    rgb = composite(tiles)                                            # (n, k+1, S, S, 3)
    n, k1, s = rgb.shape[:3]
    mosaic = rgb.transpose(0, 2, 1, 3, 4).reshape(n * s, k1 * s, 3)
    return (mosaic * 255).round().astype(np.uint8)


def save_grid_png(path: str | os.PathLike, mosaic: np.ndarray, columns: list[str], title: str) -> None:
    """Write the mosaic with its column labels (``input`` then gene names) as a PNG, atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = mosaic.shape[:2]
    size = w / len(columns)
    fig, ax = plt.subplots(figsize=(max(4.0, w / 40), max(3.0, h / 40 + 0.6)), dpi=100)
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks((np.arange(len(columns)) + 0.5) * size)
    ax.set_xticklabels(columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
