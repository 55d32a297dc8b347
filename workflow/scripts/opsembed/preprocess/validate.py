"""Input validation (rule validate_inputs): every check that can fail runs before long work."""

from __future__ import annotations

import logging
import os
from typing import Callable

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..io.cells import read_cells
from ..io.errors import InputError
from ..io.ground_truth import read_complexes
from ..io.logs import terminal_warning
from ..io.tables import read_table, read_table_where, write_table
from ..io.tiles import resolve_tokens, tile_path, tile_shape
from .crops import centre_index
from .zscore import batch_labels

log = logging.getLogger(__name__)

MAX_LISTED = 20
"""Genes listed by name in the missing-from-ground-truth warning."""


def validate_inputs(
    cells_path: str | os.PathLike,
    ground_truth_path: str | os.PathLike,
    columns: dict[str, str] | None,
    channels: list[str],
    controls: str,
    batch_key: str,
    tiles_pattern: str,
    crop_size: int,
    text_columns: list[str] = (),
    channel_tokens: dict | None = None,
    preset: str | None = None,
) -> pd.DataFrame:
    """Check the cell table, the tiles and the ground truth; return the cell table.

    Returns ``read_cells(cells_path, columns, text, preset)`` plus a str ``batch`` column
    (``zscore.batch_labels``: a well is a batch within its plate). ``text`` is the
    batch_key plus ``text_columns`` (further id columns, e.g. the OOD levels' columns),
    read as text exactly as written. Raises InputError, naming the file and row, for:
    an unsafe plate/well/tile name (``io.cells.check_path_names``); an unknown
    ``batch_key``; a batch without ``controls`` cells; a missing or unreadable
    tile; a tile whose channel count differs from ``len(channels)``; tiles of unequal
    (C, Y, X); a crop larger than the tiles; a cell whose centre pixel lies outside its
    tile. Genes absent from the ground truth are only logged as a WARNING.
    Each tile's header is read once (``tile_shape``); no pixels are read.
    """
    cells = validate_table(cells_path, columns, controls, batch_key, text_columns, preset)
    shapes = check_tiles(cells, cells_path, channels, tiles_pattern, crop_size, channel_tokens)
    _warn_missing_genes(cells, ground_truth_path, controls)
    log.info("validated %d cells, %d tiles of shape (C, Y, X) = %s, %d batches by %r",
             len(cells), len(shapes), next(iter(shapes.values())), cells["batch"].nunique(), batch_key)
    return cells


def validate_table(cells_path, columns, controls: str, batch_key: str, text_columns=(), preset=None) -> pd.DataFrame:
    """The checks of ``validate_inputs`` that need no tile: the cell table plus its ``batch``."""
    cells = read_cells(cells_path, columns, text=[batch_key, *text_columns], preset=preset)
    if batch_key not in cells.columns:
        raise InputError(f"{cells_path}: batch_key {batch_key!r} is not a column of the cell table. "
                         f"Available columns: {list(cells.columns)}. Set batch_key in your config.")
    cells["batch"] = batch_labels(cells, batch_key, cells_path)
    _check_controls(cells, cells_path, controls, batch_key)
    return cells


def check_tiles(cells: pd.DataFrame, cells_path, channels: list[str], tiles_pattern: str, crop_size: int,
                channel_tokens: dict | None = None) -> dict[tuple, tuple]:
    """The tile checks of ``validate_inputs`` for the tiles of ``cells`` (all, or one plate's,
    whose index holds their 0-based rows in ``cells_path``): (plate, well, tile) -> (C, Y, X)."""
    shapes = _tile_shapes(cells, tiles_pattern, len(channels),
                          resolve_tokens(channels, channel_tokens, tiles_pattern))
    _check_coordinates(cells, cells_path, shapes, tiles_pattern)
    (n_channels, height, width), = set(shapes.values())
    if crop_size > min(height, width):
        raise InputError(f"preprocess.crop.size = {crop_size} exceeds the tile size {height}x{width}. "
                         "Choose a smaller crop size.")
    return shapes


TILE_COLUMNS = ["plate", "n_tiles", "n_channels", "height", "width", "first_tile"]
"""The per-plate tile check's table (rule validate_tiles) and the screen's (rule check_tiles)."""


def run_validate_tiles(cells_path, out_path, plate, channels: list[str], tiles_pattern: str, crop_size: int,
                       channel_tokens: dict | None = None) -> None:
    """The tile checks of one plate (its cells read from the validated table ``cells_path``;
    row numbers in messages are that table's, which keeps the input's order); writes one
    ``TILE_COLUMNS`` row to ``out_path``."""
    cells = read_table_where(cells_path, ["plate", "well", "tile", "y", "x", "cell_id"], "plate", str(plate))
    if cells.empty:
        raise InputError(f"{cells_path}: no cell on plate {plate!r}; rerun validate_inputs.")
    shapes = check_tiles(cells, cells_path, channels, tiles_pattern, crop_size, channel_tokens)
    (n_channels, height, width), = set(shapes.values())
    first = tile_path(tiles_pattern, *next(iter(shapes)))
    write_table(pd.DataFrame([[str(plate), len(shapes), n_channels, height, width, first]], columns=TILE_COLUMNS),
                out_path)
    log.info("plate %s: %d tiles of shape (C, Y, X) = %s", plate, len(shapes), (n_channels, height, width))


def run_check_tiles(plate_paths, out_path) -> None:
    """All plates' tiles of one shape (the per-plate tables of ``run_validate_tiles``);
    writes them as one table. InputError naming two tiles of different shapes."""
    table = pd.concat([read_table(p) for p in plate_paths], ignore_index=True)
    shape = table[["n_channels", "height", "width"]].astype(int)
    differ = (shape != shape.iloc[0]).any(axis=1).to_numpy()
    if differ.any():
        a, b = table.iloc[0], table.iloc[int(differ.argmax())]
        raise InputError(f"{b['first_tile']}: tile shape (C, Y, X) = {tuple(shape.iloc[int(differ.argmax())])} "
                         f"differs from {tuple(shape.iloc[0])} of {a['first_tile']}. All tiles must have "
                         "the same shape.")
    write_table(table, out_path)


def run_validate_inputs(cells_path, ground_truth_path, out_path, columns, channels, controls,
                        batch_key, tiles_pattern, crop_size, channel_tokens=None, text_columns=(),
                        preset=None, check_genes: Callable[[list[str]], object] | None = None) -> None:
    """Validate (see ``validate_inputs``) and write the cell table to ``out_path`` (parquet).
    With ``tiles_pattern`` None only the table and ground truth are checked (the tiles:
    ``run_validate_tiles`` per plate, ``run_check_tiles`` across plates).

    ``check_genes``, when given, is called with the screen's sorted genes (controls
    included) before anything is written; the rule script passes the ground-truth
    curation (``evaluate.curate.curate_ground_truth``, a layer above this one), so that a
    ground truth leaving < 2 usable complexes fails here, before any long work.
    """
    if tiles_pattern is None:  # the workflow: the tiles are checked per plate (rule validate_tiles)
        cells = validate_table(cells_path, columns, controls, batch_key, text_columns, preset)
        _warn_missing_genes(cells, ground_truth_path, controls)
        log.info("validated %d cells, %d batches by %r", len(cells), cells["batch"].nunique(), batch_key)
    else:
        cells = validate_inputs(cells_path, ground_truth_path, columns, channels, controls,
                                batch_key, tiles_pattern, crop_size, text_columns=text_columns,
                                channel_tokens=channel_tokens, preset=preset)
    if check_genes is not None:
        check_genes(sorted(cells["gene"].unique()))
    write_table(cells, out_path)


def _check_controls(cells: pd.DataFrame, path, controls: str, batch_key: str) -> None:
    has_controls = cells["gene"].eq(controls).groupby(cells["batch"]).any()
    lacking = list(has_controls.index[~has_controls.to_numpy()])
    if lacking:
        raise InputError(f"{path}: batch(es) {lacking[:MAX_LISTED]} (batch_key {batch_key!r}) have no "
                         f"control cells (gene == {controls!r}); z-scoring needs controls in every "
                         "batch. Check `controls` and `batch_key` in your config.")


def _tile_shapes(cells: pd.DataFrame, pattern: str, n_channels: int, tokens=None) -> dict[tuple, tuple]:
    """(plate, well, tile) -> (C, Y, X) for each distinct tile, all checked equal.

    Every file is checked cheaply by ``tile_shape`` (codec available, data within the
    file, channel layout); ``tokens`` fill a ``{channel}`` pattern. No pixel is decoded.
    """
    keys = cells[["plate", "well", "tile"]].drop_duplicates()
    shapes = {}
    first = None
    for key in tqdm(list(keys.itertuples(index=False, name=None)), desc="tile headers", unit="tile"):
        path = tile_path(pattern, *key)
        shape = tile_shape(path, n_channels, tokens)
        if shape[0] != n_channels:
            raise InputError(f"{path}: tile has {shape[0]} channel(s) but config `channels` lists "
                             f"{n_channels}. Fix `channels` or the tile files.")
        if first is None:
            first = (path, shape)
        elif shape != first[1]:
            raise InputError(f"{path}: tile shape (C, Y, X) = {shape} differs from {first[1]} of "
                             f"{first[0]}. All tiles must have the same shape.")
        shapes[key] = shape
    return shapes


def _check_coordinates(cells: pd.DataFrame, path, shapes: dict, pattern: str) -> None:
    """Centre pixels ``centre_index(y), centre_index(x)`` must lie inside the tile."""
    (_, height, width), = set(shapes.values())
    cy, cx = centre_index(cells["y"].to_numpy()), centre_index(cells["x"].to_numpy())
    bad = (cy < 0) | (cy >= height) | (cx < 0) | (cx >= width)
    if bad.any():
        row = cells.iloc[int(np.argmax(bad))]
        i = int(row.name)  # the index holds the rows of the file (read_cells: 0..n-1)
        raise InputError(
            f"{path}: row {i + 1} (cell_id {row['cell_id']!r}) has (y, x) = ({row['y']}, {row['x']}) "
            f"outside its tile {tile_path(pattern, row['plate'], row['well'], row['tile'])} of "
            f"{height}x{width} pixels (valid: -0.5 <= y < {height - 0.5}, -0.5 <= x < {width - 0.5}; "
            f"{int(bad.sum())} such cell(s)). Check the y/x columns (input.columns) and the tile pattern."
        )


def _warn_missing_genes(cells: pd.DataFrame, ground_truth_path, controls: str) -> None:
    known = set(read_complexes(ground_truth_path)["gene"])
    genes = sorted(set(cells["gene"]) - {controls})
    missing = [g for g in genes if g not in known]
    if missing:
        terminal_warning(
            f"{len(missing)} of {len(genes)} genes are absent from the ground truth "
            f"{ground_truth_path} (they get embeddings but no benchmark pairs): "
            + ", ".join(missing[:MAX_LISTED]) + (" ..." if len(missing) > MAX_LISTED else ""))
