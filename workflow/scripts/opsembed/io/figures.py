"""Writing matplotlib figures: the one atomic save-and-close."""

from __future__ import annotations

import os

from .atomic import atomic_path


def save_figure(fig, path: str | os.PathLike, dpi: float | str = "figure") -> None:
    """Save the matplotlib figure ``fig`` as PNG at ``path`` atomically (a failed save leaves
    no file), at ``dpi`` (default: the figure's own), then close it to free its memory."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
