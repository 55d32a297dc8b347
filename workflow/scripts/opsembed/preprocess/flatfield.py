"""Illumination correction with BaSiC (rule fit_flatfield), fitted per plate and channel.

Model file (``.npz``): ``flatfield`` (C, Y, X) float32, mean 1 per channel; ``darkfield``
(C, Y, X) float32 in raw intensity units; ``channels``; ``tiles`` (the sampled files).
Correction: ``(raw - darkfield) / flatfield``.
"""

from __future__ import annotations

import logging
import time
import warnings

import numpy as np
from tqdm import tqdm

from ..io.atomic import atomic_path
from ..io.tiles import read_tile, tile_shape

log = logging.getLogger(__name__)

MIN_FLATFIELD = 0.05
"""Flatfield values are clipped from below at this fraction of the mean (avoids blow-ups)."""


def sample_paths(paths, n: int, seed: int) -> list[str]:
    """Up to ``n`` of ``paths`` drawn without replacement, reproducibly for ``seed``.

    The draw depends only on the set of paths (they are sorted first); the result is sorted.
    """
    paths = sorted(set(map(str, paths)))
    if n >= len(paths):
        return paths
    rng = np.random.default_rng(seed)
    return sorted(paths[i] for i in rng.choice(len(paths), size=n, replace=False))


def load_stack(paths, n_channels: int) -> np.ndarray:
    """Read tiles into one float32 (T, C, Y, X) array (memory: T tiles)."""
    return np.stack([read_tile(p, n_channels) for p in tqdm(paths, desc="read tiles", unit="tile")])


def fit_basic(stack: np.ndarray, get_darkfield: bool, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``basicpy.BaSiC`` (default settings, working_size 128, CPU) on each channel.

    ``stack`` is (T, C, Y, X) raw intensities. Returns (flatfield, darkfield), each float32
    (C, Y, X): flatfield rescaled to mean 1 per channel and clipped below at
    ``MIN_FLATFIELD``; darkfield in raw units (zeros when ``get_darkfield`` is False).
    Sets torch's global thread count to ``threads`` (more threads than free cores slows
    BaSiC down many times over).
    """
    import torch
    from basicpy import BaSiC  # heavy imports, only where fitting happens

    torch.set_num_threads(max(1, int(threads)))
    flat = np.empty(stack.shape[1:], dtype=np.float32)
    dark = np.zeros(stack.shape[1:], dtype=np.float32)
    for c in range(stack.shape[1]):
        with warnings.catch_warnings():  # BaSiC warns on every get_darkfield=True construction
            warnings.filterwarnings("ignore", message="get_darkfield=True", category=UserWarning)
            basic = BaSiC(get_darkfield=get_darkfield, device="cpu")
        basic.fit(np.ascontiguousarray(stack[:, c]))
        flat[c] = basic.flatfield / basic.flatfield.mean()
        if get_darkfield:
            dark[c] = basic.darkfield
    low = flat < MIN_FLATFIELD
    if low.any():
        log.warning("flatfield below %.2f at %d pixel(s); clipped", MIN_FLATFIELD, int(low.sum()))
        flat = np.maximum(flat, MIN_FLATFIELD)
    return flat, dark


def correct(raw: np.ndarray, flatfield: np.ndarray, darkfield: np.ndarray) -> np.ndarray:
    """Return ``(raw - darkfield) / flatfield`` as float32 (all (C, Y, X))."""
    return ((raw - darkfield) / flatfield).astype(np.float32, copy=False)


def save_model(path, flatfield: np.ndarray, darkfield: np.ndarray, channels, tiles) -> None:
    """Write a flatfield model ``.npz`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, flatfield=flatfield.astype(np.float32), darkfield=darkfield.astype(np.float32),
                     channels=np.array(list(channels), dtype=str), tiles=np.array(list(tiles), dtype=str))


def load_model(path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read (flatfield (C, Y, X) float32, darkfield (C, Y, X) float32, channels)."""
    with np.load(path) as data:
        return data["flatfield"], data["darkfield"], [str(c) for c in data["channels"]]


def run_fit_flatfield(tile_paths, model_path, qc_path, cfg: dict, channels: list[str], seed: int,
                      plate: str, threads: int = 1) -> None:
    """Fit one plate's model on ``cfg["n_tiles"]`` sampled tiles and write it with its QC figure.

    ``cfg["offset"]`` (camera offset, raw units) is subtracted before fitting and added to
    the darkfield, so the correction ``(raw - darkfield) / flatfield`` removes it: BaSiC's own
    darkfield estimate often misses a constant offset under sparse cells, and then
    underestimates the vignetting. With ``cfg["enabled"]`` False, writes flatfield 1 and
    darkfield ``offset`` of the tile shape.
    """
    offset = float(cfg.get("offset", 0.0))
    from .qc import plot_flatfield, save_figure

    if cfg["enabled"]:
        sample = sample_paths(tile_paths, int(cfg["n_tiles"]), seed)
        stack = load_stack(sample, len(channels))
        start = time.perf_counter()
        flatfield, darkfield = fit_basic(stack - offset, bool(cfg["get_darkfield"]), threads)
        darkfield += offset
        log.info("plate %s: BaSiC fitted on %d tiles x %d channels in %.1f s (%d thread(s))", plate,
                 len(sample), len(channels), time.perf_counter() - start, threads)
    else:
        sample = []
        shape = tile_shape(sorted(map(str, tile_paths))[0])
        flatfield, darkfield = np.ones(shape, np.float32), np.full(shape, offset, np.float32)
        log.info("plate %s: flatfield correction disabled; identity model of shape %s", plate, shape)
    for c, name in enumerate(channels):
        log.info("plate %s %s: flatfield range [%.3f, %.3f], darkfield mean %.3g", plate, name,
                 flatfield[c].min(), flatfield[c].max(), darkfield[c].mean())
    save_model(model_path, flatfield, darkfield, channels, sample)
    save_figure(plot_flatfield(flatfield, darkfield, channels, f"plate {plate}"), qc_path)
