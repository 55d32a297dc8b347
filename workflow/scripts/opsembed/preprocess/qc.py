"""QC figures of the preprocessing chain (PNG)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def plot_flatfield(flatfield: np.ndarray, darkfield: np.ndarray, channels: list[str], title: str):
    """Figure: flatfield (top row) and darkfield (bottom row) per channel, each with a colourbar."""
    n = len(channels)
    fig, axes = plt.subplots(2, n, figsize=(3.2 * n, 6), squeeze=False)
    for c, name in enumerate(channels):
        for row, (field, label) in enumerate([(flatfield[c], "flatfield"), (darkfield[c], "darkfield")]):
            ax = axes[row, c]
            im = ax.imshow(field, cmap="magma")
            ax.set_title(f"{name} {label}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(f"BaSiC illumination profiles, {title} (darkfield in raw units)")
    fig.tight_layout()
    return fig


def plot_histograms(samples: dict[str, np.ndarray], table: pd.DataFrame, channels: list[str]):
    """Figure: per channel, histograms of each plate's corrected pixel sample with its low/high lines."""
    n = len(channels)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.2), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for c, name in enumerate(channels):
        ax = axes[0, c]
        for i, (plate, sample) in enumerate(samples.items()):
            colour = colours[i % len(colours)]
            ax.hist(sample[c], bins=100, histtype="step", log=True, color=colour, label=str(plate))
            row = table[(table["plate"] == str(plate)) & (table["channel"] == name)].iloc[0]
            for v in (row["low"], row["high"]):
                ax.axvline(v, color=colour, linestyle="--", linewidth=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("corrected intensity")
    axes[0, 0].set_ylabel("pixels")
    axes[0, -1].legend(title="plate", fontsize=7)
    fig.suptitle(f"Rescaling percentiles ({table['low_pct'].iloc[0]}, {table['high_pct'].iloc[0]}; "
                 f"scope {table['scope'].iloc[0]})")
    fig.tight_layout()
    return fig
