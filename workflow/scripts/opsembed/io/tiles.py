"""Tile TIFFs: one field of view, read as (C, Y, X) (2-D means C = 1).

Two layouts, chosen by ``input.tiles``:

- one file per tile holding every channel. Planes first, (C, Y, X), is the default; the
  channels are taken from the last axis, (Y, X, C), when the file says so (RGB-style
  samples, or OME / ImageJ axes metadata with ``C`` last) or when its last axis, and not
  its first, equals ``len(channels)``.
- one 2-D file per channel: the pattern holds ``{channel}``, replaced by each channel's
  token (``input.channel_tokens``, default the channel's name).

A *tile reference* is ``input.tiles`` with plate, well and tile filled in and ``{channel}``
(if any) left for ``channel_files``; it names the tile in messages and samples.
Any compression tifffile + imagecodecs decode is read (LZW, deflate, zstd, JPEG ...).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import string
from typing import Iterator, Sequence

import numpy as np

from .errors import InputError

log = logging.getLogger(__name__)

FIELDS = ("plate", "well", "tile", "channel")
"""The fields ``input.tiles`` may contain; ``{plate}``, ``{well}``, ``{tile}`` are required."""

CHANNEL = "{channel}"


@functools.lru_cache(maxsize=64)  # tile_path checks its pattern on every call
def check_pattern(pattern: str) -> None:
    """Raise InputError naming ``input.tiles`` for an unknown, positional or formatted field."""
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(pattern)
                  if name is not None]
    except ValueError as exc:
        raise InputError(f"input.tiles {pattern!r}: {exc} (write a literal brace as {{{{ or }}}}).") from None
    allowed = ", ".join("{%s}" % f for f in FIELDS)
    for name, spec, conv in fields:
        if name not in FIELDS:
            raise InputError(f"input.tiles {pattern!r}: unknown field {{{name}}}; the allowed fields are "
                             f"{allowed} (write a literal brace as {{{{ or }}}}).")
        if spec or conv:
            raise InputError(f"input.tiles {pattern!r}: field {{{name}}} has a format spec or conversion; "
                             f"use the bare fields {allowed}, filled with the cell table's text as written.")


def tile_path(pattern: str, plate, well, tile) -> str:
    """Fill ``{plate}``, ``{well}`` and ``{tile}`` in ``pattern``; ``{channel}`` stays.

    Raises InputError naming ``input.tiles`` when the pattern has another field.
    """
    check_pattern(pattern)
    return pattern.format(plate=plate, well=well, tile=tile, channel=CHANNEL)


def resolve_tokens(channels: Sequence[str], mapping: dict | None, pattern: str | None = None) -> list[str]:
    """The text that replaces ``{channel}`` for each of ``channels``, in order.

    ``mapping`` (``input.channel_tokens``) maps a channel name to its token (str, or a
    number written in YAML); channels it omits use their own name. Raises InputError when
    it names a channel not in ``channels``, when two channels get one token, or when it is
    set but ``pattern`` (``input.tiles``, when given) has no ``{channel}``.
    """
    mapping = dict(mapping or {})
    unknown = [name for name in mapping if name not in channels]
    if unknown:
        raise InputError(f"input.channel_tokens: {unknown} not in `channels` {list(channels)}. "
                         "Its keys are channel names.")
    if mapping and pattern is not None and CHANNEL not in pattern:
        raise InputError(f"input.channel_tokens is set but input.tiles {pattern!r} has no {CHANNEL} field; "
                         "add {channel} where the file names differ per channel, or drop channel_tokens.")
    tokens = [str(mapping.get(name, name)) for name in channels]
    if len(set(tokens)) < len(tokens):
        raise InputError(f"input.channel_tokens: channels {list(channels)} get the tokens {tokens}; "
                         "each channel needs its own file.")
    return tokens


def channel_files(ref: str | os.PathLike, tokens: Sequence[str] | None = None) -> list[str]:
    """The file(s) of a tile reference: one per token when it holds ``{channel}``, else itself."""
    ref = str(ref)
    if CHANNEL not in ref:
        return [ref]
    if not tokens:
        raise ValueError(f"{ref}: a {CHANNEL} tile needs the channel tokens")
    return [ref.replace(CHANNEL, str(t)) for t in tokens]


def tile_files(pattern: str, plate, well, tile, tokens: Sequence[str] | None = None) -> list[str]:
    """Every file of one tile (one per channel for a ``{channel}`` pattern)."""
    return channel_files(tile_path(pattern, plate, well, tile), tokens)


def tile_shape(ref: str | os.PathLike, n_channels: int | None = None,
               tokens: Sequence[str] | None = None) -> tuple[int, int, int]:
    """Return (C, Y, X) of a tile from its header(s), without decoding pixels.

    Each file is checked cheaply: it opens as a TIFF, its compression can be decoded here,
    and every strip or tile of image data lies within the file (a truncated copy fails).
    Raises InputError naming the file for a missing, unreadable, undecodable or truncated
    file, a layout that is not one plane per channel, or (``n_channels`` given) another
    channel count.
    """
    files = channel_files(ref, tokens)
    if len(files) > 1:
        shapes = [_file_layout(f, None, per_channel=True)[1] for f in files]
        for f, shape in zip(files[1:], shapes[1:]):
            if shape != shapes[0]:
                raise InputError(f"{f}: channel file of {shape[1]}x{shape[2]} pixels differs from "
                                 f"{files[0]} ({shapes[0][1]}x{shapes[0][2]}). A tile's channels must match.")
        return (len(files), shapes[0][1], shapes[0][2])
    return _file_layout(files[0], n_channels)[1]


def read_tile(ref: str | os.PathLike, n_channels: int | None = None,
              tokens: Sequence[str] | None = None) -> np.ndarray:
    """Read a tile as float32 (C, Y, X), in the file's own intensity units.

    uint8, uint16 and float data are accepted. A ``{channel}`` reference reads one 2-D
    file per token. Raises InputError naming the file for an undecodable file, a channel
    count other than ``n_channels`` (when given), or any NaN or infinite pixel.
    """
    files = channel_files(ref, tokens)
    planes = [_read_file(f, n_channels if len(files) == 1 else None, per_channel=len(files) > 1) for f in files]
    if len(planes) > 1:
        for f, plane in zip(files[1:], planes[1:]):
            if plane.shape != planes[0].shape:
                raise InputError(f"{f}: channel file of shape {plane.shape[1:]} differs from {files[0]} "
                                 f"({planes[0].shape[1:]}). A tile's channels must match.")
    return planes[0] if len(planes) == 1 else np.concatenate(planes)


def constant_channels(image: np.ndarray) -> list[int]:
    """Indices of the channels of a (C, Y, X) image whose pixels all have one value."""
    flat = image.reshape(image.shape[0], -1)
    return [c for c in range(flat.shape[0]) if flat[c].min() == flat[c].max()]


def warn_constant(ref, image: np.ndarray, channels: Sequence[str] | None = None) -> list[int]:
    """Log a WARNING naming ``ref`` and its constant channels (see ``constant_channels``); return them."""
    const = constant_channels(image)
    if const:
        names = [channels[c] if channels else c for c in const]
        what = "every channel is" if len(const) == image.shape[0] else f"channel(s) {names} are"
        log.warning("%s: %s constant (every pixel %g): the tile holds no image there. Check the file, or "
                    "drop its cells from the cell table.", ref, what, float(image[const[0]].flat[0]))
    return const


# ---------------------------------------------------------------------------------------


class _Errors(logging.Handler):
    """Collects the errors tifffile logs (not raises) while parsing a damaged file."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _open(path) -> Iterator:
    """The first image series of a TIFF; InputError naming the file when missing or damaged."""
    import tifffile  # not at import: the Snakemake driver fills patterns without it

    errors, logger = _Errors(), logging.getLogger("tifffile")
    logger.addHandler(errors)
    try:
        try:
            tif = tifffile.TiffFile(path)
        except FileNotFoundError:
            raise InputError(f"{path}: tile not found. Check input.tiles and the cell table.") from None
        except Exception as exc:  # tifffile raises several types for corrupt files
            raise InputError(f"{path}: unreadable TIFF ({exc}). Check that it is a TIFF and was copied "
                             "whole.") from None
        with tif:
            try:
                series = tif.series[0]
            except Exception as exc:
                errors.messages.append(str(exc))
            if errors.messages:  # e.g. "invalid page offset": pages lie beyond a truncated end
                raise InputError(f"{path}: damaged TIFF ({errors.messages[0]}); it may be truncated. "
                                 "Copy the tile again.")
            yield series
    finally:
        logger.removeHandler(errors)


def _file_layout(path, n_channels: int | None, per_channel: bool = False):
    """(channel axis or None for 2-D, (C, Y, X)) of one file, after the cheap checks."""
    with _open(path) as series:
        _check_codecs(path, series)
        _check_extent(path, series, os.path.getsize(path))
        shape, axes = tuple(int(s) for s in series.shape), series.axes
    return _channel_layout(path, shape, axes, n_channels, per_channel)


def _read_file(path, n_channels: int | None, per_channel: bool = False) -> np.ndarray:
    with _open(path) as series:
        try:
            data = series.asarray()
        except Exception as exc:
            _check_codecs(path, series)
            _check_extent(path, series, os.path.getsize(path))
            raise InputError(f"{path}: cannot decode the pixels ({exc}). Check the file, or re-save it "
                             "uncompressed or with LZW/deflate/zstd.") from None
        axes = series.axes
    if data.dtype.kind not in "uif":
        raise InputError(f"{path}: pixel type {data.dtype} is not supported; use uint8, uint16 or float.")
    axis, shape = _channel_layout(path, data.shape, axes, n_channels, per_channel)
    is_float = data.dtype.kind == "f"
    data = data.reshape(shape) if axis is None else np.moveaxis(data, axis, 0)
    data = np.ascontiguousarray(data, dtype=np.float32)
    if is_float and not np.isfinite(data).all():
        bad = ~np.isfinite(data)
        c, y, x = (int(v) for v in np.argwhere(bad)[0])
        raise InputError(f"{path}: {int(bad.sum())} pixel(s) are NaN or infinite (the first at channel {c}, "
                         f"y {y}, x {x}); they would make crops and z-scores NaN. Fix or replace the tile, "
                         "or drop its cells from the cell table.")
    return data


def _channel_layout(path, shape, axes: str, n_channels: int | None, per_channel: bool):
    """Where a file keeps its channels: (axis index or None, (C, Y, X))."""
    shape = tuple(int(s) for s in shape)
    named = []
    if len(shape) == 2:
        axis, cyx = None, (1,) + shape
    elif len(shape) == 3 and not per_channel:
        named = [a for a in "SC" if a in axes]
        if named:
            axis = axes.index(named[0])  # RGB-style samples, or OME / ImageJ channel axis
        elif n_channels is not None and shape[0] != n_channels and shape[2] == n_channels:
            axis = 2  # (Y, X, C): the last axis, and not the first, matches `channels`
        else:
            axis = 0
        rest = [s for i, s in enumerate(shape) if i != axis]
        cyx = (shape[axis], rest[0], rest[1])
    else:
        what = "a per-channel file ({channel} in input.tiles) must hold one 2-D plane" if per_channel else \
            "expected (C, Y, X), (Y, X, C) or (Y, X): one plane per channel (project or split Z / time first)"
        raise InputError(f"{path}: tile has shape {shape} (axes {axes}); {what}.")
    if n_channels is not None and cyx[0] != n_channels:
        where = "last, (Y, X, C)" if axis == 2 else "first, (C, Y, X)" if axis == 0 else "2-D"
        hint = ""
        if axis == 0 and len(shape) == 3 and not named and shape[2] < shape[0]:
            hint = (f" Its last axis ({shape[2]}) looks like channels stored last, (Y, X, C); such a file "
                    "is read so when that axis equals the number of `channels`.")
        raise InputError(f"{path}: tile has {cyx[0]} channel(s) but config `channels` lists {n_channels} "
                         f"(shape {shape}, axes {axes}, read with channels {where}). Fix `channels` or "
                         f"the tile files.{hint}")
    return axis, cyx


def _check_codecs(path, series) -> None:
    """InputError naming the compression when this Python cannot decode it."""
    import tifffile

    page = series.pages[0] if series.pages else None
    if page is None:
        return
    compression = getattr(page, "compression", 1)
    predictor = getattr(page, "predictor", 1)
    missing = None
    if compression not in tifffile.TIFF.DECOMPRESSORS:
        missing = f"compression {_name(compression)} (TIFF code {int(compression)})"
    elif predictor not in tifffile.TIFF.UNPREDICTORS:
        missing = f"predictor {_name(predictor)} (TIFF code {int(predictor)})"
    if missing is None:
        return
    if not _has_imagecodecs():
        raise InputError(f"{path}: the tile uses {missing}, which needs the Python package imagecodecs: "
                         "install it (pip install imagecodecs; it is in envs/preprocess.yaml).")
    raise InputError(f"{path}: the tile uses {missing}, which tifffile and imagecodecs cannot decode here. "
                     "Re-save it uncompressed or with LZW, deflate or zstd.")


def _check_extent(path, series, size: int) -> None:
    """InputError when a strip or tile of image data ends beyond the file (truncated copy)."""
    for page in series.pages:
        if page is None:
            continue
        for offset, count in zip(page.dataoffsets, page.databytecounts):
            if count and offset + count > size:
                raise InputError(f"{path}: image data runs to byte {offset + count} but the file has "
                                 f"{size} bytes: it is truncated. Copy the tile again.")


def _has_imagecodecs() -> bool:
    return importlib.util.find_spec("imagecodecs") is not None


def _name(code) -> str:
    return getattr(code, "name", str(code))
