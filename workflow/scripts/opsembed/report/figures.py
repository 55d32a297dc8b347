"""Figures drawn for the report itself (the others come in as PNG files)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def png(fig: Figure, dpi: int = 110) -> bytes:
    """Render a matplotlib figure to PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def cells_figure(obs: pd.DataFrame, controls: str | None) -> Figure:
    """Left: histogram of cells per screened gene (controls excluded); right: cells per plate."""
    genes = obs["gene"].astype(str)
    per_gene = genes[genes != str(controls)].value_counts()
    per_plate = obs["plate"].astype(str).value_counts().sort_index()
    fig = Figure(figsize=(10, 3.6))
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    if len(per_gene):
        bins = min(40, max(5, per_gene.nunique()))
        ax1.hist(per_gene.to_numpy(), bins=bins, color="#2c5d8a", edgecolor="white")
        ax1.axvline(per_gene.median(), color="#e69500", ls="--", label=f"median {per_gene.median():g}")
        ax1.legend(frameon=False)
    ax1.set_xlabel("cells per gene")
    ax1.set_ylabel("genes")
    ax1.set_title(f"Cells per gene ({len(per_gene)} genes, controls excluded)")
    ax2.bar(per_plate.index, per_plate.to_numpy(), color="#5b8db8")
    ax2.set_xlabel("plate")
    ax2.set_ylabel("cells")
    ax2.set_title("Cells per plate")
    ax2.tick_params(axis="x", rotation=45 if len(per_plate) > 6 else 0)
    for ax in (ax1, ax2):
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def loss_figure(losses: pd.DataFrame, method: str) -> Figure:
    """Each loss column of ``losses`` (column ``step`` + one per loss) against step.

    The y axis is logarithmic when every plotted value is positive.
    """
    columns = [c for c in losses.columns if c != "step" and pd.api.types.is_numeric_dtype(losses[c])]
    fig = Figure(figsize=(7, 3.6))
    ax = fig.subplots()
    for col in columns:
        ax.plot(losses["step"], losses[col], label=col, lw=1.4)
    values = losses[columns].to_numpy(dtype=float)
    if columns and np.all(values[np.isfinite(values)] > 0):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(f"{method}: training losses")
    if columns:
        ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def significance_figure(methods: list[str], fractions) -> Figure:
    """Horizontal bars: fraction (0-1) of each method's genes whose AP is significant."""
    fractions = np.asarray(fractions, dtype=float)
    fig = Figure(figsize=(7, max(2.2, 0.4 * len(methods) + 1)))
    ax = fig.subplots()
    y = np.arange(len(methods))[::-1]
    ax.barh(y, np.nan_to_num(fractions), color="#2c5d8a")
    for yi, f in zip(y, fractions):
        ax.text(min(np.nan_to_num(f), 0.9) + 0.01, yi, "–" if np.isnan(f) else f"{f:.0%}", va="center", fontsize=9)
    ax.set_yticks(y, methods)
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of genes with significant AP (BH q < 0.05)")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def montage_channels(channels: list[str]) -> list[tuple[int, str]]:
    """Channels shown in the cell montage as (index, colour): the first in blue, the last two
    in green and red (one channel: grey)."""
    n = len(channels)
    if n == 1:
        return [(0, "grey")]
    if n == 2:
        return [(0, "blue"), (1, "green")]
    return [(0, "blue"), (n - 2, "green"), (n - 1, "red")]


def montage_figure(obs: pd.DataFrame, crops_of, channels: list[str], genes: list[str],
                   n_cells: int, seed: int, labels: dict | None = None, genes_per_row: int = 3,
                   unit: str = "gene") -> Figure:
    """``n_cells`` real cells per gene drawn at random (numpy ``seed``; fewer when a gene
    has fewer), genes in the given order, ``genes_per_row`` genes side by side.

    ``obs``: per-cell table with ``gene`` (row order of the crops); ``crops_of(index)``
    returns float (k, C, S, S) crops of those rows; ``labels`` maps a gene to its caption
    (e.g. its complex). Each crop is an RGB composite of :func:`montage_channels`, each
    channel clipped to its 1st-99.5th percentile over all shown crops. ``unit`` names what
    a ``gene`` label is in the title (e.g. "complex" when ``obs["gene"]`` holds complexes).
    """
    rng = np.random.default_rng(seed)
    cell_genes = obs["gene"].astype(str).to_numpy()
    picks = []
    for gene in genes:
        rows = np.flatnonzero(cell_genes == gene)
        picks.append(np.sort(rng.choice(rows, size=min(n_cells, len(rows)), replace=False)))
    index = np.concatenate(picks) if picks else np.zeros(0, dtype=int)
    crops = np.asarray(crops_of(index), dtype=np.float32) if len(index) else np.zeros((0, len(channels), 1, 1))
    shown = montage_channels(channels)
    rgb = np.zeros((len(index), crops.shape[2], crops.shape[3], 3), dtype=np.float32)
    colour = {"red": [0], "green": [1], "blue": [2], "grey": [0, 1, 2]}
    for c, name in shown:
        x = crops[:, c]
        lo, hi = np.percentile(x, [1, 99.5]) if x.size else (0.0, 1.0)
        x = np.clip((x - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
        for k in colour[name]:
            rgb[..., k] = np.maximum(rgb[..., k], x)
    n_rows = -(-len(genes) // genes_per_row)
    width = genes_per_row * n_cells
    fig = Figure(figsize=(0.85 * width, 1.0 * max(n_rows, 1) + 0.4))
    axes = np.atleast_2d(fig.subplots(max(n_rows, 1), width, squeeze=False))
    for ax in axes.ravel():
        ax.axis("off")
    start = 0
    for g, (gene, pick) in enumerate(zip(genes, picks)):
        r, c0 = divmod(g, genes_per_row)
        for j in range(len(pick)):
            axes[r, c0 * n_cells + j].imshow(rgb[start + j], interpolation="nearest")
        start += len(pick)
        label = gene if not labels or gene not in labels else f"{gene} ({labels[gene]})"
        axes[r, c0 * n_cells].set_title(label[:42], fontsize=7, loc="left")
    legend = ", ".join(f"{channels[c]} {name}" for c, name in shown)
    fig.suptitle(f"{n_cells} random cells per {unit}; {legend}", fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.6 / (max(n_rows, 1) + 0.4),
                        wspace=0.04, hspace=0.35)
    return fig
