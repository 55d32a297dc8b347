"""Illumination correction with BaSiC (rule fit_flatfield), fitted per plate and channel.

Model file (``.npz``): ``flatfield`` (C, Y, X) float32, mean 1 per channel; ``darkfield``
(C, Y, X) float32 in raw intensity units; ``channels``; ``tiles`` (the sampled files).
Correction: ``(raw - darkfield) / flatfield``.

BaSiC needs at least ``MIN_TILES`` tiles: a plate with fewer is an error (set
``preprocess.flatfield.enabled: false``). Constant tiles (e.g. all zero) are left out of a
channel's fit with a warning; a fit that is still not finite is an error, never written.
"""

from __future__ import annotations

import logging
import time
import warnings

import numpy as np
from tqdm import tqdm

from ..io.atomic import atomic_path
from ..io.errors import InputError
from ..io.logs import terminal_warning
from ..io.tiles import constant_channels, read_tile, resolve_tokens, tile_shape, warn_constant

log = logging.getLogger(__name__)

MIN_FLATFIELD = 0.05
"""Flatfield values are clipped from below at this fraction of the mean (avoids blow-ups)."""

MIN_TILES = 2
"""Fewest non-constant tiles BaSiC can fit (with one it fails inside basicpy)."""

DISABLE = "set preprocess.flatfield.enabled: false to skip illumination correction"


def sample_paths(paths, n: int, seed: int) -> list[str]:
    """Up to ``n`` of ``paths`` drawn without replacement, reproducibly for ``seed``.

    The draw depends only on the set of paths (they are sorted first); the result is sorted.
    """
    paths = sorted(set(map(str, paths)))
    if n >= len(paths):
        return paths
    rng = np.random.default_rng(seed)
    return sorted(paths[i] for i in rng.choice(len(paths), size=n, replace=False))


def load_stack(paths, n_channels: int, tokens=None, channels=None) -> np.ndarray:
    """Read tiles (references, see ``io.tiles``) into one float32 (T, C, Y, X) array
    (memory: T tiles); a constant tile or channel is logged as a WARNING naming it."""
    stack = np.stack([read_tile(p, n_channels, tokens) for p in tqdm(paths, desc="read tiles", unit="tile")])
    for path, tile in zip(paths, stack):
        warn_constant(path, tile, channels)
    return stack


def fit_basic(stack: np.ndarray, get_darkfield: bool, threads: int = 1,
              channels: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``basicpy.BaSiC`` (default settings, working_size 128, CPU) on each channel.

    ``stack`` is (T, C, Y, X) raw intensities. Returns (flatfield, darkfield), each float32
    (C, Y, X): flatfield rescaled to mean 1 per channel and clipped below at
    ``MIN_FLATFIELD``; darkfield in raw units (zeros when ``get_darkfield`` is False).
    Negative values (read noise below the camera offset, once it is subtracted) are fitted
    as 0: on a dim channel with a third of its pixels below 0, BaSiC's darkfield fit
    returns an all-NaN field.
    A channel's fit leaves out the tiles constant in it. Raises InputError (naming the
    channel, from ``channels`` when given) when fewer than ``MIN_TILES`` tiles remain or
    BaSiC returns a non-finite field.
    Sets torch's global thread count to ``threads`` (more threads than free cores slows
    BaSiC down many times over).
    """
    import torch
    from basicpy import BaSiC  # heavy imports, only where fitting happens

    torch.set_num_threads(max(1, int(threads)))
    flat = np.empty(stack.shape[1:], dtype=np.float32)
    dark = np.zeros(stack.shape[1:], dtype=np.float32)
    usable = np.ones(stack.shape[:2], dtype=bool)
    for t, tile in enumerate(stack):
        usable[t, constant_channels(tile)] = False
    for c in range(stack.shape[1]):
        name = repr(channels[c]) if channels else str(c)
        if usable[:, c].sum() < MIN_TILES:
            raise InputError(f"channel {name}: {int(usable[:, c].sum())} of {len(stack)} sampled tiles are not "
                             f"constant; BaSiC needs at least {MIN_TILES}. Check the tiles, raise "
                             f"preprocess.flatfield.n_tiles, or {DISABLE}.")
        with warnings.catch_warnings():  # BaSiC warns on every get_darkfield=True construction
            warnings.filterwarnings("ignore", message="get_darkfield=True", category=UserWarning)
            basic = BaSiC(get_darkfield=get_darkfield, device="cpu")
        basic.fit(np.maximum(stack[usable[:, c], c], 0, dtype=np.float32))
        flat[c] = basic.flatfield / basic.flatfield.mean()
        if get_darkfield:
            dark[c] = basic.darkfield
        if not (np.isfinite(flat[c]).all() and np.isfinite(dark[c]).all()):
            raise InputError(f"channel {name}: BaSiC returned a non-finite flatfield or darkfield from "
                             f"{int(usable[:, c].sum())} tiles. Check the tiles, raise "
                             f"preprocess.flatfield.n_tiles, or {DISABLE}.")
    low = flat < MIN_FLATFIELD
    if low.any():
        log.warning("flatfield below %.2f at %d pixel(s); clipped", MIN_FLATFIELD, int(low.sum()))
        flat = np.maximum(flat, MIN_FLATFIELD)
    return flat, dark


def correct(raw: np.ndarray, flatfield: np.ndarray, darkfield: np.ndarray) -> np.ndarray:
    """Return ``(raw - darkfield) / flatfield`` as float32 (all (C, Y, X))."""
    return ((raw - darkfield) / flatfield).astype(np.float32, copy=False)


def save_model(path, flatfield: np.ndarray, darkfield: np.ndarray, channels, tiles) -> None:
    """Write a flatfield model ``.npz`` atomically; ValueError (nothing written) if not finite."""
    if not (np.isfinite(flatfield).all() and np.isfinite(darkfield).all()):
        raise ValueError(f"{path}: refusing to write a non-finite flatfield model")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, flatfield=flatfield.astype(np.float32), darkfield=darkfield.astype(np.float32),
                     channels=np.array(list(channels), dtype=str), tiles=np.array(list(tiles), dtype=str))


def load_model(path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read (flatfield (C, Y, X) float32, darkfield (C, Y, X) float32, channels).

    Raises InputError naming the file when a value is not finite, or the flatfield not
    positive (a model from an older run: delete it and rerun fit_flatfield).
    """
    with np.load(path) as data:
        flat, dark, channels = data["flatfield"], data["darkfield"], [str(c) for c in data["channels"]]
    if not (np.isfinite(flat).all() and np.isfinite(dark).all() and (flat > 0).all()):
        raise InputError(f"{path}: the flatfield model holds non-finite or non-positive values. Delete it "
                         "and rerun (fit_flatfield refits it).")
    return flat, dark, channels


def run_fit_flatfield(tile_paths, model_path, qc_path, cfg: dict, channels: list[str], seed: int,
                      plate: str, threads: int = 1, channel_tokens: dict | None = None,
                      tiles_pattern: str | None = None) -> None:
    """Fit one plate's model on ``cfg["n_tiles"]`` sampled tiles and write it with its QC figure.

    ``tile_paths`` are the plate's tile references (files, or ``{channel}`` references
    read through ``channel_tokens`` of ``tiles_pattern``, see ``io.tiles``). A plate with
    fewer than ``MIN_TILES`` tiles, or ``n_tiles`` below it, is an InputError raised before
    any pixel is read.

    ``cfg["offset"]`` (camera offset, raw units) is subtracted before fitting and added to
    the darkfield, so the correction ``(raw - darkfield) / flatfield`` removes it: BaSiC's own
    darkfield estimate often misses a constant offset under sparse cells, and then
    underestimates the vignetting. With ``cfg["enabled"]`` False, writes flatfield 1 and
    darkfield ``offset`` of the tile shape.
    """
    offset = float(cfg["offset"])
    tokens = resolve_tokens(channels, channel_tokens, tiles_pattern)
    from ..io.figures import save_figure
    from .qc import plot_flatfield

    if cfg["enabled"]:
        n_tiles, n_plate = int(cfg["n_tiles"]), len(set(map(str, tile_paths)))
        if n_tiles < MIN_TILES:
            raise InputError(f"preprocess.flatfield.n_tiles = {n_tiles}: BaSiC needs at least {MIN_TILES} "
                             f"tiles. Raise it, or {DISABLE}.")
        if n_plate < MIN_TILES:
            raise InputError(f"plate {plate}: {n_plate} tile(s); BaSiC needs at least {MIN_TILES} per plate "
                             f"to fit a flatfield. Add tiles, or {DISABLE}.")
        sample = sample_paths(tile_paths, n_tiles, seed)
        stack = load_stack(sample, len(channels), tokens, channels)
        constant = [path for path, tile in zip(sample, stack) if constant_channels(tile)]
        if constant:
            terminal_warning(f"plate {plate}: {len(constant)} of {len(sample)} sampled tile(s) have a constant "
                             f"channel (left out of that channel's flatfield fit): {', '.join(constant[:5])}"
                             f"{' ...' if len(constant) > 5 else ''}", log)
        start = time.perf_counter()
        try:
            flatfield, darkfield = fit_basic(stack - offset, bool(cfg["get_darkfield"]), threads, channels)
        except InputError as exc:
            raise InputError(f"plate {plate}, {exc}") from None
        darkfield += offset
        log.info("plate %s: BaSiC fitted on %d tiles x %d channels in %.1f s (%d thread(s))", plate,
                 len(sample), len(channels), time.perf_counter() - start, threads)
    else:
        sample = []
        shape = tile_shape(sorted(map(str, tile_paths))[0], len(channels), tokens)
        flatfield, darkfield = np.ones(shape, np.float32), np.full(shape, offset, np.float32)
        log.info("plate %s: flatfield correction disabled; identity model of shape %s", plate, shape)
    for c, name in enumerate(channels):
        log.info("plate %s %s: flatfield range [%.3f, %.3f], darkfield mean %.3g", plate, name,
                 flatfield[c].min(), flatfield[c].max(), darkfield[c].mean())
    save_model(model_path, flatfield, darkfield, channels, sample)
    save_figure(plot_flatfield(flatfield, darkfield, channels, f"plate {plate}"), qc_path, dpi=100)
