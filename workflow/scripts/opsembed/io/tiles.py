"""Tile TIFFs: one field of view per file, shaped (C, Y, X) (2-D means C = 1)."""

from __future__ import annotations

import os

import numpy as np
import tifffile

from .errors import InputError


def tile_path(pattern: str, plate, well, tile) -> str:
    """Fill ``{plate}``, ``{well}`` and ``{tile}`` in ``pattern``."""
    return pattern.format(plate=plate, well=well, tile=tile)


def tile_shape(path: str | os.PathLike) -> tuple[int, int, int]:
    """Return (C, Y, X) of a tile from its header, without reading pixels.

    Raises InputError naming the file when it is missing, unreadable or not 2-D/3-D.
    """
    try:
        with tifffile.TiffFile(path) as tif:
            shape = tif.series[0].shape
    except FileNotFoundError:
        raise InputError(f"{path}: tile not found. Check input.tiles and the cell table.") from None
    except Exception as exc:  # tifffile raises several types for corrupt files
        raise InputError(f"{path}: unreadable TIFF ({exc}). Re-export the tile.") from None
    return _as_cyx(shape, path)


def _as_cyx(shape, path) -> tuple[int, int, int]:
    if len(shape) == 2:
        return (1, int(shape[0]), int(shape[1]))
    if len(shape) == 3:
        return tuple(int(s) for s in shape)  # type: ignore[return-value]
    raise InputError(f"{path}: tile has shape {tuple(shape)}; expected (C, Y, X) or (Y, X).")


def read_tile(path: str | os.PathLike, n_channels: int | None = None) -> np.ndarray:
    """Read a tile as float32, shaped (C, Y, X), in the file's own intensity units.

    uint8, uint16 and float data are accepted. When ``n_channels`` is given, a tile
    with another channel count raises InputError naming the file.
    """
    try:
        data = tifffile.imread(path)
    except FileNotFoundError:
        raise InputError(f"{path}: tile not found. Check input.tiles and the cell table.") from None
    except Exception as exc:
        raise InputError(f"{path}: unreadable TIFF ({exc}). Re-export the tile.") from None
    if data.dtype.kind not in "uif":
        raise InputError(f"{path}: pixel type {data.dtype} is not supported; use uint8, uint16 or float.")
    shape = _as_cyx(data.shape, path)
    data = data.reshape(shape).astype(np.float32, copy=False)
    if n_channels is not None and shape[0] != n_channels:
        raise InputError(
            f"{path}: tile has {shape[0]} channel(s) but config `channels` lists {n_channels}. "
            "Fix `channels` or the tile files."
        )
    return data
