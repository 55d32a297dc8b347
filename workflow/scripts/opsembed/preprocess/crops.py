"""Single-cell crops of one well (rule crop_well).

Centre convention: ``y, x`` are pixel coordinates in which pixel ``i`` has its centre at
``i`` (0-based numpy indexing, as CellProfiler reports ``AreaShape_Center_X/Y``). The
centre pixel of a cell is ``floor(y + 0.5), floor(x + 0.5)`` and its S x S window spans
rows ``cy - S//2 .. cy - S//2 + S - 1``, so the centre pixel sits at crop index
``(S//2, S//2)`` (for even S: S//2 rows above it, S//2 - 1 below).
A window that leaves the tile is dropped (``edge="drop"``) or filled with 0 outside the
tile after rescaling (``edge="pad"``). A *blank* crop, constant in every channel after
rescaling (e.g. from an all-zero tile), holds no cell image: it is dropped, counted in
``n_dropped_blank`` and reported as a WARNING, like the tiles with a constant channel.
"""

from __future__ import annotations

import logging
import os
from typing import Iterator

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..io.h5 import iter_crop_blocks, write_cells_h5
from ..io.logs import terminal_warning
from ..io.tables import read_table
from ..io.tiles import read_tile, resolve_tokens, tile_path, warn_constant
from .flatfield import correct, load_model
from .rescale import load_percentiles, percentile_map

log = logging.getLogger(__name__)


def centre_index(v) -> np.ndarray:
    """Centre pixel index ``floor(v + 0.5)`` of coordinates ``v`` (int64 array)."""
    return np.floor(np.asarray(v, dtype=np.float64) + 0.5).astype(np.int64)


def window_inside(y, x, size: int, height: int, width: int) -> np.ndarray:
    """Bool array: the S x S window of each (y, x) lies wholly inside a height x width tile."""
    r0 = centre_index(y) - size // 2
    c0 = centre_index(x) - size // 2
    return (r0 >= 0) & (c0 >= 0) & (r0 + size <= height) & (c0 + size <= width)


def crop_tile(image: np.ndarray, y, x, size: int) -> np.ndarray:
    """Cut S x S windows centred on (y, x) from ``image`` (C, Y, X).

    Returns (n, C, S, S) in ``image``'s dtype; pixels outside the tile are 0. Centres must
    lie inside the tile (as checked by validation).
    """
    cy, cx = centre_index(y), centre_index(x)
    n_channels, height, width = image.shape
    if np.any((cy < 0) | (cy >= height) | (cx < 0) | (cx >= width)):
        raise ValueError("crop_tile: a centre lies outside the tile")
    padded = np.pad(image, ((0, 0), (size, size), (size, size)))
    out = np.empty((len(cy), n_channels, size, size), dtype=image.dtype)
    for i, (r, c) in enumerate(zip(cy - size // 2 + size, cx - size // 2 + size)):
        out[i] = padded[:, r:r + size, c:c + size]
    return out


def plan_well(cells: pd.DataFrame, size: int, edge: str, height: int, width: int):
    """Choose the cells of one well to crop.

    Returns (kept cells in tile order, stable within a tile; n_dropped_edge; n_padded).
    With ``edge="drop"`` windows leaving the tile are dropped; with ``"pad"`` they are kept
    and counted as padded.
    """
    if edge not in ("drop", "pad"):
        raise ValueError(f"crop edge must be 'drop' or 'pad', not {edge!r}")
    inside = window_inside(cells["y"], cells["x"], size, height, width)
    n_outside = int((~inside).sum())
    kept = cells[inside] if edge == "drop" else cells
    kept = kept.sort_values("tile", kind="stable").reset_index(drop=True)
    return kept, (n_outside if edge == "drop" else 0), (n_outside if edge == "pad" else 0)


def blank_crops(crops: np.ndarray) -> np.ndarray:
    """Bool (n,): the (n, C, S, S) crops whose every channel holds a single value."""
    flat = crops.reshape(crops.shape[0], crops.shape[1], -1)
    return (flat.max(axis=2) == flat.min(axis=2)).all(axis=1)


def iter_well_crops(kept: pd.DataFrame, tiles_pattern: str, flatfield: np.ndarray,
                    darkfield: np.ndarray, low: np.ndarray, high: np.ndarray,
                    size: int, tokens=None, channels=None, blank: list | None = None,
                    constant: list | None = None) -> Iterator[np.ndarray]:
    """Yield float32 (n_tile, C, S, S) crops in [0, 1], one block per tile, in ``kept`` order.

    Each tile is read once (``tokens`` for a ``{channel}`` pattern), corrected as
    (raw - darkfield) / flatfield, mapped with ``percentile_map`` and cropped; memory is
    one tile. A tile with a constant channel is logged as a WARNING (and its reference
    appended to ``constant``, a list, when given); ``blank`` (a list, when given) receives
    each block's ``blank_crops``. Yields one empty block when
    ``kept`` is empty so that the well file is still written.
    """
    n_channels = flatfield.shape[0]
    if len(kept) == 0:
        yield np.zeros((0, n_channels, size, size), dtype=np.float32)
        return
    groups = kept.groupby("tile", sort=False)
    for _, cells in tqdm(groups, total=groups.ngroups, desc="tiles", unit="tile"):
        first = cells.iloc[0]
        ref = tile_path(tiles_pattern, first["plate"], first["well"], first["tile"])
        raw = read_tile(ref, n_channels, tokens)
        if warn_constant(ref, raw, channels) and constant is not None:
            constant.append(ref)
        image = percentile_map(correct(raw, flatfield, darkfield), low, high)
        if not np.isfinite(image).all():  # read_tile and load_model refuse NaN: a guard, never expected
            raise ValueError(f"{ref}: non-finite pixels after flatfield correction and rescaling")
        crops = crop_tile(image, cells["y"], cells["x"], size)
        if blank is not None:
            blank.append(blank_crops(crops))
        yield crops


def run_crop_well(cells_path: str | os.PathLike, flatfield_path, percentiles_path, out_path,
                  crop_cfg: dict, channels: list[str], tiles_pattern: str, plate: str, well: str,
                  channel_tokens: dict | None = None, moments_path=None, controls: str | None = None) -> None:
    """Write the crops of one well with ``write_cells_h5`` and, when ``moments_path`` is
    given, the moments of its ``controls`` crops (``merge.write_well_moments``).

    ``images`` are corrected, rescaled crops in [0, 1] (float16, before z-scoring); ``obs``
    holds the well's kept cells with every cell-table column (tile order); attrs: plate,
    well, n_cells, n_kept, n_dropped_edge, n_dropped_blank, n_padded, crop_size, edge,
    channels. Blank crops (``blank_crops``) are dropped: the file is written once, and
    rewritten without them only when there are any. ``channel_tokens`` serves a
    ``{channel}`` pattern (see ``io.tiles``).
    """
    size, edge = int(crop_cfg["size"]), crop_cfg["edge"]
    cells = read_table(cells_path, where={"plate": str(plate), "well": str(well)})  # this well's rows only
    flatfield, darkfield, model_channels = load_model(flatfield_path)
    if list(model_channels) != list(channels):
        raise ValueError(f"{flatfield_path}: channels {model_channels} differ from config {channels}")
    low, high = load_percentiles(percentiles_path, plate, channels)
    _, height, width = flatfield.shape
    kept, n_dropped, n_padded = plan_well(cells, size, edge, height, width)
    log.info("plate %s well %s: %d cells, %d kept, %d dropped at the tile edge, %d zero-padded",
             plate, well, len(cells), len(kept), n_dropped, n_padded)
    attrs = {"plate": str(plate), "well": str(well), "n_cells": len(cells), "n_kept": len(kept),
             "n_dropped_edge": n_dropped, "n_dropped_blank": 0, "n_padded": n_padded, "crop_size": size,
             "edge": edge, "channels": list(channels)}
    tokens = resolve_tokens(channels, channel_tokens, tiles_pattern)
    blank: list[np.ndarray] = []
    constant: list[str] = []
    blocks = iter_well_crops(kept, tiles_pattern, flatfield, darkfield, low, high, size, tokens, channels,
                             blank, constant)
    streamed = None
    if moments_path is not None:  # the control moments taken on the way, as the file stores the crops
        from .merge import ControlBlocks

        streamed = ControlBlocks(kept["gene"].astype(str).eq(controls).to_numpy(),
                                 kept["batch"].astype(str).to_numpy())
        blocks = _tee_float16(blocks, streamed)
    write_cells_h5(out_path, kept, blocks, attrs)
    blank_mask = np.concatenate(blank) if blank else np.zeros(0, bool)
    n_blank = int(blank_mask.sum())
    if constant or n_blank:
        terminal_warning(f"plate {plate} well {well}: {len(constant)} tile(s) with a constant channel "
                         f"({', '.join(constant[:5])}{' ...' if len(constant) > 5 else ''}); {n_blank} of "
                         f"{len(kept)} crops are blank (constant in every channel) and are dropped", log)
    if n_blank:  # rare: rewrite the file without them (Snakemake reruns a job killed meanwhile)
        attrs.update(n_kept=len(kept) - n_blank, n_dropped_blank=n_blank)
        write_cells_h5(out_path, kept[~blank_mask], _kept_blocks(out_path, ~blank_mask), attrs)
        streamed = None  # rows dropped: the moments are read back from the rewritten file
    if moments_path is not None:
        from .merge import write_well_moments

        write_well_moments(out_path, moments_path, controls, streamed)


def _tee_float16(blocks, streamed) -> Iterator[np.ndarray]:
    """``blocks`` as float16 (what write_cells_h5 stores), each also given to ``streamed.add``."""
    for block in blocks:
        block = np.asarray(block, dtype=np.float16)
        streamed.add(block)
        yield block


def _kept_blocks(path, keep: np.ndarray) -> Iterator[np.ndarray]:
    """The crops of ``path`` where ``keep`` is True, block by block (at least one block)."""
    for start, block in iter_crop_blocks(path):
        yield block[keep[start:start + len(block)]]
