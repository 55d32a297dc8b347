"""The Source dataset of the disentanglement method: single cells on a grid of known factors.

dSprites-style layout: each of ``FACTORS`` takes a few discrete values; the dataset holds
every combination of them (``repeats`` times, each time with fresh nuisance draws: nucleoli,
chromatin texture, outline harmonics, filaments, camera noise), rendered one cell per crop
by the demo's own renderer (``render.render_tile``), centred, under neutral imaging (flat
field, unit gains, the mean PSF and background of the demo's plates). Every other
phenotype parameter sits at its neutral (control) median.

Crops are then normalised like the screen's: camera offset removed, per-channel percentile
rescaling to [0, 1] (``low``/``high`` percentiles over all Source pixels), z-scored with
the mean and standard deviation of all Source pixels, and area-resized to ``size``.

Row ``r`` of the dataset is the combination with mixed-radix index ``r // repeats`` (the
last factor varies fastest).
"""

from __future__ import annotations

import logging
import math
import os

import numpy as np
import pandas as pd
from scipy import ndimage
from tqdm import tqdm

from opsembed.io.errors import InputError
from opsembed.io.h5 import write_cells_h5

from .batch import BACKGROUND, PlateEffects
from .phenotypes import PARAMS
from .render import CAMERA_OFFSET, check_channels, render_tile

log = logging.getLogger(__name__)

FACTORS: dict[str, tuple[str, tuple[float, ...]]] = {
    # factor name (as in the demo's factors.tsv): (what it sets, its values)
    "nucleus_radius": ("px", (7.5, 10.5, 14.5)),
    "dna_intensity": ("relative", (0.6, 1.1, 1.9)),
    "foci_count": ("foci", (0.0, 5.0, 14.0)),
    "tubulin_intensity": ("relative", (0.45, 0.9, 1.9)),
    "actin_intensity": ("relative", (0.45, 0.9, 1.7)),
    "cell_elongation": ("major / minor axis", (1.25, 1.8, 2.6)),
    "cell_angle": ("radians", (0.0, math.pi / 4, math.pi / 2)),
}
"""The Source factors of variation and their discrete values (names match factors.tsv)."""

PSF_SIGMA = 1.2
"""The mean PSF sigma (px) of the demo's plates."""


Factors = dict[str, tuple[str, tuple[float, ...]]]
"""A factor table in the layout of ``FACTORS``; every function below takes one (default FACTORS)."""


def factor_sizes(factors: Factors = FACTORS) -> list[int]:
    """Number of values of each factor, in table order."""
    return [len(v) for _, v in factors.values()]


def factor_grid(repeats: int = 1, factors: Factors = FACTORS) -> np.ndarray:
    """Value indices of every dataset row: int64 (prod(sizes) * repeats, n_factors)."""
    sizes = factor_sizes(factors)
    grid = np.stack(np.unravel_index(np.arange(int(np.prod(sizes))), sizes), axis=1)
    return np.repeat(grid, int(repeats), axis=0).astype(np.int64)


def factor_values(indices: np.ndarray, factors: Factors = FACTORS) -> pd.DataFrame:
    """Factor values (float64, one column per factor) of value indices (n, n_factors)."""
    return pd.DataFrame({name: np.asarray(values, dtype=float)[indices[:, j]]
                         for j, (name, (_, values)) in enumerate(factors.items())})


def _neutral(name: str) -> float:
    offset, scale, _ = PARAMS[name]
    return offset + scale


def _cell_table(values: pd.DataFrame, centre: float) -> pd.DataFrame:
    """The renderer's per-cell columns for factor values ``values`` (one row per cell): the
    factors as given, every other parameter neutral (nucleus aspect 1.3, aligned with the
    cell; no mitosis; cell centred on its nucleus, radius >= 1.6 nucleus radii)."""
    n = len(values)
    cells = {"y": np.full(n, centre), "x": np.full(n, centre), "mitotic": np.zeros(n, np.int64),
             "cell_dy": np.zeros(n), "cell_dx": np.zeros(n)}
    for name in PARAMS:
        cells[name] = np.full(n, _neutral(name))
    cells["nucleus_aspect"] = np.full(n, 1.3)
    cells["foci_count"], cells["cell_angle"] = np.full(n, _neutral("foci_rate")), np.zeros(n)
    for name in values.columns:
        cells[name] = values[name].to_numpy(dtype=float)
    cells["foci_rate"] = cells["foci_count"]
    cells["nucleus_angle"] = cells["cell_angle"]
    if "cell_radius" not in values.columns:
        cells["cell_radius"] = np.maximum(_neutral("cell_radius"), 1.6 * cells["nucleus_radius"])
    return pd.DataFrame(cells)


def neutral_plate() -> PlateEffects:
    """Imaging without batch effects: flat field, unit gains, mean background and PSF."""
    return PlateEffects(gains=np.ones(4), background=np.array(BACKGROUND), psf_sigma=PSF_SIGMA,
                        field_centre=(0.0, 0.0), field_floor=1.0, shift={})


def render_source(n_channels: int, crop_size: int, repeats: int, seed: int,
                  factors: Factors = FACTORS) -> tuple[np.ndarray, np.ndarray]:
    """Render the Source dataset: (photons minus camera offset, float32 (n, C, crop, crop),
    value indices int64 (n, n_factors)). Seeded: same arguments -> same arrays. The
    factors' names must be columns the renderer reads (see ``_cell_table``)."""
    check_channels(n_channels)
    unknown = sorted(set(factors) - set(PARAMS) - {"foci_count", "cell_angle"})
    if unknown:
        raise InputError(f"Source factors {unknown} are not parameters of the renderer.")
    indices = factor_grid(repeats, factors)
    cells = _cell_table(factor_values(indices, factors), (crop_size - 1) / 2.0)
    plate = neutral_plate()
    out = np.empty((len(cells), n_channels, crop_size, crop_size), dtype=np.float32)
    for r in tqdm(range(len(cells)), desc="render source", mininterval=10):
        rng = np.random.default_rng([int(seed), r])
        out[r] = render_tile(cells.iloc[r:r + 1], crop_size, n_channels, plate, rng).astype(np.float32) \
            - CAMERA_OFFSET
    return out, indices


def normalise(crops: np.ndarray, low: float, high: float) -> np.ndarray:
    """Per-channel percentile rescaling to [0, 1] then z-scoring, over all of ``crops``
    (n, C, S, S) float32; returns float32 of the same shape."""
    out = np.empty_like(crops)
    for c in range(crops.shape[1]):
        lo, hi = np.percentile(crops[:, c], [low, high])
        x = np.clip((crops[:, c] - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
        out[:, c] = (x - x.mean()) / max(x.std(), 1e-6)
    return out


def area_resize(crops: np.ndarray, size: int) -> np.ndarray:
    """(n, C, S, S) -> (n, C, size, size) float32: block means when ``size`` divides S (as
    torch's area interpolation), else spline-free linear zoom."""
    s = crops.shape[-1]
    if s == size:
        return crops.astype(np.float32)
    if s % size == 0:
        k = s // size
        return crops.reshape(crops.shape[:2] + (size, k, size, k)).mean(axis=(3, 5)).astype(np.float32)
    return ndimage.zoom(crops, (1, 1, size / s, size / s), order=1).astype(np.float32)


def write_source(path: str | os.PathLike, channels: list[str], crop_size: int, size: int,
                 repeats: int, seed: int, low: float, high: float,
                 factors: Factors = FACTORS) -> None:
    """Render, normalise and write the Source dataset as a cells file (``io.h5`` layout).

    ``obs`` holds, per row, ``gene`` (``"source"``), ``<factor>_index`` (int) and
    ``<factor>`` (value) for every factor; attrs: channels, genes, controls, crop_size,
    factors (names), factor_sizes, repeats, seed.
    """
    if repeats < 1 or size < 8 or crop_size < size:
        raise InputError(f"methods.vae.source: need repeats >= 1 and 8 <= image_size <= crop size "
                         f"({crop_size}); got repeats={repeats}, image_size={size}.")
    crops, indices = render_source(len(channels), crop_size, repeats, seed, factors)
    crops = normalise(crops, low, high)
    small = area_resize(crops, size)
    obs = pd.concat([pd.DataFrame({"gene": "source"}, index=range(len(indices))),
                     pd.DataFrame(indices, columns=[f"{n}_index" for n in factors]),
                     factor_values(indices, factors)], axis=1)
    attrs = {"channels": list(channels), "genes": ["source"], "controls": "none", "crop_size": int(size),
             "factors": list(factors), "factor_sizes": factor_sizes(factors), "repeats": int(repeats),
             "seed": int(seed)}
    write_cells_h5(path, obs, [small], attrs)
    log.info("Source: %d crops (%d combinations x %d), %d x %d px, factors %s", len(obs),
             len(obs) // repeats, repeats, size, size, dict(zip(factors, factor_sizes(factors))))
