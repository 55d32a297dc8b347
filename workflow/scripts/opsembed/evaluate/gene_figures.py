"""Figures of one method's gene embeddings against the curated complexes.

- :func:`plot_similarity_heatmap`: the clustered gene x gene cosine-similarity heat map
  with a colour bar of each gene's complex;
- :func:`complex_ap` and :func:`plot_complex_ap`: mean AP of each complex's genes, as bars;
- :func:`gene_significance`: per-gene Benjamini-Hochberg q-values of the AP p-values.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..io.figures import save_figure
from .average_precision import ALPHA

MAX_GENE_LABELS = 80
"""Above this many genes the heat map's axes carry no gene names."""


def cosine_similarity(values: np.ndarray) -> np.ndarray:
    """Cosine similarity float64 (n, n) between the rows of ``values`` (n, d); rows non-zero."""
    X = np.asarray(values, dtype=np.float64)
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    return np.clip(X @ X.T, -1.0, 1.0)


def similarity_order(values: np.ndarray) -> np.ndarray:
    """Leaf order (int64, a permutation of n) of average-linkage hierarchical clustering of
    the rows of ``values`` (n, d) under cosine distance, optimally ordered (scipy); n < 3
    keeps the input order."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    n = len(values)
    if n < 3:
        return np.arange(n, dtype=np.int64)
    dist = 1.0 - cosine_similarity(values)
    np.fill_diagonal(dist, 0.0)
    dist = np.clip((dist + dist.T) / 2, 0.0, None)
    tree = linkage(squareform(dist, checks=False), method="average", optimal_ordering=True)
    return leaves_list(tree).astype(np.int64)


def complex_colours(complexes) -> dict:
    """Complex name -> RGBA colour, names sorted (tab20 cycled), as in the UMAP figure."""
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return {name: cmap(i % 20) for i, name in enumerate(sorted(set(map(str, complexes))))}


def colour_range(sim: np.ndarray) -> tuple[str, float, float]:
    """Colour map and limits for a similarity matrix (n, n), from its off-diagonal values:
    a diverging map symmetric about 0 when they take both signs, else a sequential one over
    their 2nd to 98th percentile (embeddings whose genes are all alike still show contrast)."""
    off = sim[~np.eye(len(sim), dtype=bool)]
    if off.size == 0:
        return "RdBu_r", -1.0, 1.0
    low, high = np.percentile(off, [2, 98])
    if low < 0 < high:
        lim = float(max(-low, high))
        return "RdBu_r", -lim, lim
    if high <= low:
        low, high = low - 1e-6, high + 1e-6
    return "viridis", float(low), float(high)


def plot_similarity_heatmap(values: np.ndarray, genes, complexes, path: str | os.PathLike,
                            title: str) -> np.ndarray:
    """Cosine-similarity heat map of the genes (rows of ``values`` (n, d)) in clustering
    order, a strip left and top coloured by each gene's complex; PNG at ``path``.

    Returns the order used (:func:`similarity_order`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    genes, complexes = np.asarray(genes, dtype=str), np.asarray(complexes, dtype=str)
    order = similarity_order(values)
    sim = cosine_similarity(values)[np.ix_(order, order)]
    colours = complex_colours(complexes)
    strip = np.array([colours[c] for c in complexes[order]])
    n = len(order)
    fig = plt.figure(figsize=(11, 8.5))
    grid = fig.add_gridspec(2, 3, width_ratios=[0.03, 1, 0.04], height_ratios=[0.03, 1],
                            wspace=0.02, hspace=0.02, left=0.1, right=0.62, top=0.92, bottom=0.1)
    ax = fig.add_subplot(grid[1, 1])
    cmap, vmin, vmax = colour_range(sim)
    im = ax.imshow(sim, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest", aspect="auto")
    left, top = fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[0, 1])
    left.imshow(strip[:, None], aspect="auto", interpolation="nearest")
    top.imshow(strip[None, :], aspect="auto", interpolation="nearest")
    for a in (left, top):
        a.set_xticks([])
        a.set_yticks([])
    if n <= MAX_GENE_LABELS:
        size = 7 if n <= 40 else 5
        ax.set_xticks(range(n), genes[order], rotation=90, fontsize=size)
        ax.set_yticks([])
        left.set_yticks(range(n), genes[order], fontsize=size)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.tick_params(length=0)
    fig.colorbar(im, cax=fig.add_subplot(grid[1, 2]), label="cosine similarity")
    top.set_title(title)
    handles = [Patch(color=c, label=name) for name, c in colours.items()]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.7, 0.5), frameon=False,
               fontsize=8, title="complex", ncol=1 if len(handles) <= 30 else 2)
    save_figure(fig, path, dpi=110)
    return order


def complex_ap(ap: pd.DataFrame, per_complex: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean AP of each complex's genes from a per-gene AP table (``complex,
    average_precision``), best first (ties by name): ``complex, n_genes, mean_ap`` and,
    when ``per_complex`` (``complex, significant``, as in ``map_per_complex.tsv``) is
    given, ``significant``."""
    table = (ap.assign(complex=ap["complex"].astype(str))
             .groupby("complex")["average_precision"].agg(n_genes="size", mean_ap="mean")
             .reset_index().sort_values(["mean_ap", "complex"], ascending=[False, True],
                                        ignore_index=True))
    if per_complex is not None:
        sig = per_complex.assign(complex=per_complex["complex"].astype(str))
        table = table.merge(sig[["complex", "significant"]], on="complex", how="left")
    return table


def plot_complex_ap(table: pd.DataFrame, path: str | os.PathLike, title: str,
                    chance: float | None = None) -> None:
    """Horizontal bars of ``mean_ap`` per complex (a :func:`complex_ap` table), best on top;
    significant complexes (column ``significant``, if any) dark, the rest light; ``chance``
    (the AP a random ranking gives on average) as a dashed line. PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(table)
    sig = (table["significant"].astype(str).str.lower().isin(["true", "1"]).to_numpy()
           if "significant" in table.columns else np.ones(n, dtype=bool))
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.32 * n + 1.2)))
    y = np.arange(n)[::-1]
    ax.barh(y, table["mean_ap"], color=np.where(sig, "#2c5d8a", "#b8c9dc"))
    ax.set_yticks(y, [f"{c} ({k})" for c, k in zip(table["complex"], table["n_genes"])], fontsize=8)
    if chance is not None:
        ax.axvline(chance, color="grey", ls="--", lw=1, label="random ranking")
        ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.set_xlim(0, 1)
    ax.set_xlabel("mean AP of the complex's genes")
    ax.set_title(title + ("" if sig.all() else "  (light: not significant)"), fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def gene_significance(ap: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """``ap`` (a per-gene AP table with ``p_value``) with ``corrected_p_value``
    (Benjamini-Hochberg over its genes) and ``significant`` (corrected p < ``alpha``)."""
    from scipy.stats import false_discovery_control

    p = ap["p_value"].to_numpy(dtype=np.float64)
    q = false_discovery_control(p, method="bh") if len(p) else p
    return ap.assign(corrected_p_value=q, significant=q < alpha)
