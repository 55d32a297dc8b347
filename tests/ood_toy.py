"""A tiny confounded screen in the cells.h5 contract, for the IST / OOD tests.

Each gene has a bright square at its own position in one channel (the phenotype); each
plate multiplies every channel by its own gain and adds its own diagonal stripes (the
batch effect). Sparse design: gene g is absent from plate g mod n_plates (controls are on
every plate).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from opsembed.io.h5 import write_cells_h5

CONTROLS = "nontargeting"


def toy_obs(n_plates: int = 3, n_wells: int = 2, n_genes: int = 6, per_well: int = 4,
            series: bool = False) -> pd.DataFrame:
    """The cell table: ``per_well`` cells of each gene present on the plate, per well."""
    genes = [f"G{g}" for g in range(n_genes)]
    rows = []
    for p in range(n_plates):
        for w in range(n_wells):
            present = [g for i, g in enumerate(genes) if i % n_plates != p or n_plates == 1] + [CONTROLS]
            for g in present:
                for _ in range(per_well):
                    rows.append((f"P{p + 1}", f"A{w + 1}", g))
    obs = pd.DataFrame(rows, columns=["plate", "well", "gene"])
    obs["tile"] = "0"
    obs["cell_id"] = [f"c{i}" for i in range(len(obs))]
    obs["y"] = 10.0
    obs["x"] = 10.0
    obs["sgRNA"] = obs["gene"] + "_sg1"
    obs["batch"] = obs["plate"]
    vocab = sorted(set(obs["gene"]))
    obs["gene_id"] = obs["gene"].map({g: i for i, g in enumerate(vocab)}).astype(np.int64)
    if series:
        obs["series"] = np.where(obs["plate"] == "P1", "S1", "S2")
    return obs[["plate", "well", "tile", "cell_id", "y", "x", "gene", "sgRNA", "batch", "gene_id"]
               + (["series"] if series else [])]


def toy_images(obs: pd.DataFrame, size: int = 16, channels: int = 2, plate_effect: float = 1.5,
               seed: int = 0) -> np.ndarray:
    """float32 (n, channels, size, size) crops of ``obs`` (see module docstring)."""
    rng = np.random.default_rng(seed)
    n = len(obs)
    x = rng.normal(0, 1, (n, channels, size, size)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    plates = sorted(set(obs["plate"]))
    for i, (plate, gene) in enumerate(zip(obs["plate"], obs["gene"])):
        p = plates.index(plate)
        if gene != CONTROLS:
            g = int(gene[1:])
            r0, c0 = (g * 5) % (size - 4), (g * 3) % (size - 4)
            x[i, g % channels, r0:r0 + 4, c0:c0 + 4] += 3.0
        x[i] *= 1.0 + plate_effect * 0.4 * p
        x[i] += plate_effect * np.sin((yy + xx) * (p + 1) * 0.7)[None]
    return x


def write_toy_cells(path, size: int = 16, channels: int = 2, plate_effect: float = 1.5, seed: int = 0,
                    **obs_kwargs) -> pd.DataFrame:
    """Write the toy screen to ``path`` (cells.h5 contract); returns its obs."""
    obs = toy_obs(**obs_kwargs)
    images = toy_images(obs, size, channels, plate_effect, seed)
    vocab = sorted(set(obs["gene"]))
    attrs = {"channels": [f"ch{c}" for c in range(channels)], "genes": vocab, "controls": CONTROLS,
             "crop_size": size, "batch_key": "plate", "seed": seed}
    write_cells_h5(path, obs, [images], attrs)
    return obs
