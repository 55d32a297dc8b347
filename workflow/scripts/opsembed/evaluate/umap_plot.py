"""UMAP of gene embeddings (umap-learn, cosine metric, seeded) and its figure."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd

from ..io.figures import save_figure


def umap_coordinates(values: np.ndarray, n_neighbors: int, min_dist: float, seed: int) -> np.ndarray:
    """2-D UMAP coordinates float64 (n, 2) of ``values`` (n, d) under cosine distance.

    ``n_neighbors`` is clipped to n - 1. With a seed umap-learn runs single-threaded and
    is reproducible. The first call in a process spends ~10 s compiling numba code.
    """
    import umap

    X = np.asarray(values, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")
        reducer = umap.UMAP(n_neighbors=min(n_neighbors, len(X) - 1), min_dist=min_dist,
                            metric="cosine", random_state=seed, n_components=2)
        return reducer.fit_transform(X).astype(np.float64)


def plot_umap(coords: pd.DataFrame, path: str | os.PathLike, title: str) -> None:
    """Scatter ``coords`` (columns ``umap_1, umap_2, complex``) coloured by complex, as PNG,
    11 x 7 inches with the legend (up to 40 complexes) to the right, outside the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(coords["complex"].unique())
    cmap = plt.get_cmap("tab20")
    markers = "osD^v<>"
    fig, ax = plt.subplots(figsize=(11, 7))
    for i, name in enumerate(names):
        part = coords[coords["complex"] == name]
        ax.scatter(part["umap_1"], part["umap_2"], s=55, color=cmap(i % 20),
                   marker=markers[(i // 20) % len(markers)], label=name, edgecolors="none")
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")
    ax.set_title(title, fontsize=13)
    ax.spines[["top", "right"]].set_visible(False)
    if len(names) <= 40:
        ax.legend(fontsize=10, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False,
                  ncol=1 if len(names) <= 20 else 2, markerscale=1.2, title="complex")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
