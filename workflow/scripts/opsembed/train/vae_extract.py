"""What the trained VAEs give the evaluation: latent codes, the gene embedding, traversals.

Codes tables (TSV, one row per cell): the cell's metadata columns, then ``z_0 .. z_{d-1}``
(posterior means). Written for the Source dataset (columns ``row`` and ``<factor>_index``)
and for the screen (``cell_id``, ``gene``, ``batch``), by three encoders: the Source model
(``source``), the fine-tuned one (``finetuned``, screen only) and the same architecture
at its seeded random initialisation (``random``, the floor).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd
import torch

from ..io.atomic import atomic_path
from ..io.embeddings import write_embeddings
from ..io.h5 import read_attrs, read_obs
from ..io.tables import write_table
from .data import CellImages
from .device import resolve_device
from .monitor import PALETTE, composite
from .vae_trainer import encode, feature_images, load_vae, random_init, vae_config

log = logging.getLogger(__name__)


def codes_table(meta: pd.DataFrame, z: np.ndarray) -> pd.DataFrame:
    """``meta`` (n rows) followed by columns z_0 .. z_{d-1} of ``z`` (n, d)."""
    out = meta.reset_index(drop=True).copy()
    for i in range(z.shape[1]):
        out[f"z_{i}"] = z[:, i]
    return out


def code_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c.startswith("z_")]


def gene_means(codes: pd.DataFrame, controls: str, n_cells: int | None, seed: int) -> pd.DataFrame:
    """Mean code per gene (controls left out) over all its cells, or ``n_cells`` random ones."""
    rng = np.random.default_rng(seed)
    cols, rows = code_columns(codes), {}
    for gene, group in codes[codes["gene"] != controls].groupby("gene", sort=True):
        if n_cells is not None and len(group) > n_cells:
            group = group.iloc[np.sort(rng.choice(len(group), n_cells, replace=False))]
        rows[gene] = group[cols].to_numpy(dtype=float).mean(axis=0)
    return pd.DataFrame.from_dict(rows, orient="index", columns=cols)


def traversal_strip(decoder, codes: np.ndarray, path, title: str, n_values: int = 7,
                    channels: list[str] | None = None) -> None:
    """PNG: one row per latent, decoding the median code with that latent swept over its
    5th..95th percentile across ``codes`` (n, d) in ``n_values`` steps; ``channels`` (names
    in channel order) adds a legend of their display colours."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = torch.as_tensor(np.median(codes, axis=0), dtype=torch.float32)
    lo, hi = np.percentile(codes, [5, 95], axis=0)
    rows = []
    with torch.no_grad():
        for j in range(codes.shape[1]):
            z = base.repeat(n_values, 1)
            z[:, j] = torch.linspace(float(lo[j]), float(hi[j]), n_values)
            rows.append(decoder(z).float().numpy())
    rgb = composite(np.stack(rows))                                   # (d, k, S, S, 3)
    d, k, s = rgb.shape[:3]
    mosaic = rgb.transpose(0, 2, 1, 3, 4).reshape(d * s, k * s, 3)
    fig, ax = plt.subplots(figsize=(max(3.0, k * 0.8), max(3.0, d * 0.8 + 0.6)), dpi=100)
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_yticks((np.arange(d) + 0.5) * s)
    ax.set_yticklabels([f"z_{j}" for j in range(d)], fontsize=8)
    ax.set_xticks([0.5 * s, (k - 0.5) * s])
    ax.set_xticklabels(["5th pct", "95th pct"], fontsize=8)
    ax.set_xlabel("latent value (others held at their median)", fontsize=8)
    ax.set_ylabel("latent swept", fontsize=8)
    ax.set_title(title, fontsize=9, pad=16 if channels else 6)
    if channels:
        from matplotlib.patches import Patch
        handles = [Patch(color=PALETTE[i % len(PALETTE)], label=name) for i, name in enumerate(channels)]
        ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0),
                  ncol=len(handles), fontsize=7, frameon=False, handlelength=1.0)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)


def vae_traversals(source_model, finetuned_model, source_codes, screen_codes, source_png, screen_png) -> None:
    """Traversal strips of both pixel models over their own codes (``traversal_strip``)."""
    from ..io.tables import read_table

    for model, codes, png, title in (
            (finetuned_model, screen_codes, screen_png, "fine-tuned VAE: each latent swept over the screen's codes"),
            (source_model, source_codes, source_png, "Source VAE: each latent swept over the Source codes")):
        payload, nets = load_vae(model, torch.device("cpu"))
        table = read_table(codes)
        traversal_strip(nets["decoder"], table[code_columns(table)].to_numpy(dtype=np.float32), png, title,
                        channels=list(payload["channels"]))


def extract_vae(source_model, finetuned_model, source_path, cells_path, cfg: dict | None, seed: int, out: dict,
                features: dict | None = None) -> None:
    """Write the codes tables and the embedding.

    ``out`` keys: ``source_source``, ``random_source``, ``source_screen``, ``finetuned_screen``,
    ``random_screen`` (codes TSVs) and ``embeddings`` (gene x latent TSV, the fine-tuned
    model's mean code per gene). ``features``: {"source": (n_source, D), "screen": (n_cells, D)}
    arrays for the deep-features variant.
    """
    cfg = vae_config(cfg)
    device = resolve_device(cfg["device"])
    _, source_nets = load_vae(source_model, device)
    payload, tuned_nets = load_vae(finetuned_model, device)
    random_nets = random_init(len(payload["channels"]), payload["config"], seed).to(device).eval()
    size = int(cfg["image_size"])
    src = CellImages(source_path, size, device, cfg["data_in_memory"], cfg["memory_fraction"])
    screen = CellImages(cells_path, size, device, cfg["data_in_memory"], cfg["memory_fraction"])
    if features is not None:
        src = feature_images(features["source"], src, device)
        screen = feature_images(features["screen"], screen, device)
    names = list(read_attrs(source_path)["factors"])
    src_meta = read_obs(source_path)[[f"{n}_index" for n in names]]
    src_meta.insert(0, "row", np.arange(len(src_meta)))
    obs = read_obs(cells_path)
    batch = obs["batch"] if "batch" in obs.columns else obs.get("plate", pd.Series("", index=obs.index))
    screen_meta = pd.DataFrame({"cell_id": obs["cell_id"].astype(str).to_numpy(),
                                "gene": obs["gene"].astype(str).to_numpy(), "batch": batch.astype(str).to_numpy()})
    z = {}
    for key, nets, images, meta in (("source_source", source_nets, src, src_meta),
                                    ("random_source", random_nets, src, src_meta),
                                    ("source_screen", source_nets, screen, screen_meta),
                                    ("finetuned_screen", tuned_nets, screen, screen_meta),
                                    ("random_screen", random_nets, screen, screen_meta)):
        z[key] = encode(nets["encoder"], images.get, images.n)
        write_table(codes_table(meta, z[key]), out[key])
    means = gene_means(codes_table(screen_meta, z["finetuned_screen"]), payload["controls"], cfg["n_cells"], seed)
    write_embeddings(out["embeddings"], list(means.index), means.to_numpy())
    log.info("VAE codes: %d Source rows, %d screen cells, %d latents; embedding of %d genes",
             src.n, screen.n, z["finetuned_screen"].shape[1], len(means))


def read_features(path: str | os.PathLike) -> np.ndarray:
    """A (n, D) float32 feature array written by ``write_features``."""
    return np.load(path)["features"]


def write_features(path: str | os.PathLike, features: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.savez(tmp, features=np.asarray(features, dtype=np.float32))
