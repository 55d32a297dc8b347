"""Robust intensity rescaling (rule rescale_percentiles).

Per plate and channel, the ``low`` and ``high`` percentiles of flatfield-corrected pixels
of sampled tiles (``scope="screen"``: of all plates' samples pooled) define the map
``(v - low) / (high - low)`` clipped to [0, 1].
Table columns: plate, channel, low, high, low_pct, high_pct, scope.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..io.errors import InputError
from ..io.logs import terminal_warning
from ..io.atomic import atomic_path
from ..io.tables import group_counts, read_table, write_table
from ..io.tiles import read_tile, resolve_tokens, tile_path, tile_shape, warn_constant
from .flatfield import correct, load_model, sample_paths

log = logging.getLogger(__name__)

PIXELS_PER_TILE = 2 ** 16
"""At most this many pixels per sampled tile enter the percentile estimate (all when fewer)."""


def percentile_map(values: np.ndarray, low, high) -> np.ndarray:
    """``(values - low) / (high - low)`` clipped to [0, 1], float32.

    ``values`` is (C, ...) and ``low``/``high`` are (C,) (or scalars); requires high > low.
    """
    values = np.asarray(values, dtype=np.float32)
    shape = (-1,) + (1,) * (values.ndim - 1)
    low = np.asarray(low, dtype=np.float32).reshape(shape) if np.ndim(low) else np.float32(low)
    high = np.asarray(high, dtype=np.float32).reshape(shape) if np.ndim(high) else np.float32(high)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def sample_pixels(image: np.ndarray, rng: np.random.Generator, max_pixels: int = PIXELS_PER_TILE) -> np.ndarray:
    """(C, n) pixel values of a (C, Y, X) image: all pixels, or ``max_pixels`` drawn without replacement."""
    flat = image.reshape(image.shape[0], -1)
    if flat.shape[1] <= max_pixels:
        return flat
    return flat[:, rng.choice(flat.shape[1], size=max_pixels, replace=False)]


def estimate_percentiles(samples: dict[str, np.ndarray], channels: list[str], low_pct: float,
                         high_pct: float, scope: str) -> pd.DataFrame:
    """Percentile table from per-plate pixel samples (plate -> (C, n) array).

    ``np.percentile`` (linear interpolation) on each plate's sample (``scope="plate"``) or
    on all samples pooled (``scope="screen"``, the same values for every plate).
    Raises InputError when high <= low (a constant channel in the sample).
    """
    if scope not in ("plate", "screen"):
        raise ValueError(f"rescale scope must be 'plate' or 'screen', not {scope!r}")
    if scope == "screen":
        pooled = np.concatenate(list(samples.values()), axis=1)
        values = {plate: np.percentile(pooled, [low_pct, high_pct], axis=1) for plate in samples}
    else:
        values = {plate: np.percentile(s, [low_pct, high_pct], axis=1) for plate, s in samples.items()}
    rows = []
    for plate, (low, high) in values.items():
        for c, channel in enumerate(channels):
            if not high[c] > low[c]:
                raise InputError(f"plate {plate}, channel {channel!r}: the {high_pct} percentile "
                                 f"({high[c]}) is not above the {low_pct} percentile ({low[c]}) in the "
                                 "sampled tiles; the channel is constant. Check the tiles or `channels`.")
            rows.append({"plate": str(plate), "channel": channel, "low": float(low[c]),
                         "high": float(high[c]), "low_pct": float(low_pct),
                         "high_pct": float(high_pct), "scope": scope})
    return pd.DataFrame(rows, columns=["plate", "channel", "low", "high", "low_pct", "high_pct", "scope"])


def load_percentiles(path, plate, channels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(low, high), each float32 (C,) in ``channels`` order, for ``plate`` from the table."""
    table = read_table(path)
    table = table[table["plate"].astype(str) == str(plate)].set_index("channel")
    missing = [c for c in channels if c not in table.index]
    if missing:
        raise ValueError(f"{path}: no percentiles for plate {plate!r}, channel(s) {missing}")
    table = table.loc[channels]
    return table["low"].to_numpy(np.float32), table["high"].to_numpy(np.float32)


def run_rescale_percentiles(cells_path, flatfield_paths, table_path, qc_path, cfg: dict,
                            channels: list[str], plates, seed: int, tiles_pattern: str,
                            channel_tokens: dict | None = None) -> None:
    """Sample ``cfg["n_tiles"]`` tiles per plate, correct them, estimate and write the table.

    ``flatfield_paths`` are the plates' models in ``plates`` order. The tiles of a plate are
    those named by the cell table through ``tiles_pattern`` (and ``channel_tokens`` for a
    ``{channel}`` pattern); sampling is seeded by ``seed``. A tile with a NaN or infinite
    pixel is an InputError naming it; a constant one is a WARNING.
    ``qc_path`` (None to skip) receives histograms with the percentile lines.
    The workflow runs the same in one job per plate (``plate_sample``, rule
    sample_percentiles) and a tiny combine (``combine_percentiles``), with equal results.
    """
    plates = list(map(str, plates))
    refs = plate_tile_refs(cells_path, tiles_pattern)
    rng = np.random.default_rng(seed)
    samples = {plate: _sample(refs[plate], model, rng, cfg, channels, seed, tiles_pattern, channel_tokens, plate)
               for plate, model in zip(plates, flatfield_paths)}
    _write_percentiles(samples, table_path, qc_path, cfg, channels)


def plate_tile_refs(cells_path, tiles_pattern: str) -> dict[str, list[str]]:
    """plate -> its tile references (``io.tiles.tile_path``), from the cell table's distinct tiles."""
    tiles = group_counts(cells_path, ["plate", "well", "tile"]).astype({"plate": str, "well": str, "tile": str})
    refs: dict[str, list[str]] = {}
    for plate, well, tile in zip(tiles["plate"], tiles["well"], tiles["tile"]):
        refs.setdefault(plate, []).append(tile_path(tiles_pattern, plate, well, tile))
    return refs


def plate_sample(cells_path, flatfield_path, plate, plates, cfg: dict, channels: list[str], seed: int,
                 tiles_pattern: str, channel_tokens: dict | None = None) -> np.ndarray:
    """The pixel sample (C, n) float32 of one plate, equal to the one ``run_rescale_percentiles``
    draws for it: the generator seeded by ``seed`` is shared by the plates in ``plates``
    order, so the draws of the plates before ``plate`` are replayed first (no pixel read:
    one draw per sampled tile of their, equal, shape)."""
    plates, plate = list(map(str, plates)), str(plate)
    refs = plate_tile_refs(cells_path, tiles_pattern)
    rng = np.random.default_rng(seed)
    chosen = sample_paths(refs[plate], int(cfg["n_tiles"]), seed)
    height, width = tile_shape(chosen[0], len(channels), resolve_tokens(channels, channel_tokens, tiles_pattern))[1:]
    for before in plates[:plates.index(plate)]:
        for _ in range(min(int(cfg["n_tiles"]), len(set(refs[before])))):
            if height * width > PIXELS_PER_TILE:  # the draw sample_pixels makes
                rng.choice(height * width, size=PIXELS_PER_TILE, replace=False)
    return _sample(refs[plate], flatfield_path, rng, cfg, channels, seed, tiles_pattern, channel_tokens, plate)


def run_plate_sample(cells_path, flatfield_path, out_path, plate, plates, cfg: dict, channels: list[str],
                     seed: int, tiles_pattern: str, channel_tokens: dict | None = None) -> None:
    """``plate_sample`` written atomically to ``out_path`` (.npz, array ``pixels``)."""
    pixels = plate_sample(cells_path, flatfield_path, plate, plates, cfg, channels, seed, tiles_pattern,
                          channel_tokens)
    with atomic_path(out_path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, pixels=pixels)


def combine_percentiles(sample_paths_, plates, table_path, qc_path, cfg: dict, channels: list[str]) -> None:
    """The percentile table (and QC figure) from the plates' samples (``run_plate_sample``
    files, in ``plates`` order)."""
    samples = {}
    for plate, path in zip(map(str, plates), sample_paths_):
        with np.load(path, allow_pickle=False) as data:
            samples[plate] = data["pixels"]
    _write_percentiles(samples, table_path, qc_path, cfg, channels)


def _sample(refs, model_path, rng, cfg, channels, seed, tiles_pattern, channel_tokens, plate) -> np.ndarray:
    tokens = resolve_tokens(channels, channel_tokens, tiles_pattern)
    flatfield, darkfield, _ = load_model(model_path)
    chosen = sample_paths(refs, int(cfg["n_tiles"]), seed)
    parts, constant = [], []
    for path in tqdm(chosen, desc=f"plate {plate}", unit="tile"):
        raw = read_tile(path, len(channels), tokens)
        if warn_constant(path, raw, channels):
            constant.append(path)
        parts.append(sample_pixels(correct(raw, flatfield, darkfield), rng))
    if constant:
        terminal_warning(f"plate {plate}: {len(constant)} of {len(chosen)} tile(s) sampled for the "
                         f"percentiles have a constant channel: {', '.join(constant[:5])}"
                         f"{' ...' if len(constant) > 5 else ''}", log)
    sample = np.concatenate(parts, axis=1)
    log.info("plate %s: %d pixels per channel from %d tiles", plate, sample.shape[1], len(chosen))
    return sample


def _write_percentiles(samples: dict[str, np.ndarray], table_path, qc_path, cfg: dict, channels: list[str]) -> None:
    table = estimate_percentiles(samples, channels, float(cfg["low"]), float(cfg["high"]), cfg["scope"])
    log.info("percentiles (scope %s):\n%s", cfg["scope"], table.to_string(index=False))
    write_table(table, table_path)
    if qc_path is not None:
        from ..io.figures import save_figure
        from .qc import plot_histograms

        save_figure(plot_histograms(samples, table, channels), qc_path, dpi=100)
