"""The single-cell HDF5 file (``cells.h5``) and the per-well crop files.

Layout:
- ``images``: (N, C, S, S) float16, one crop per chunk; in the workflow's ``cells.h5`` a
  virtual dataset over the per-well files (``write_virtual_cells_h5``), read the same way.
- ``obs``: per-cell metadata in the same row order, written by pandas (PyTables
  ``table`` format), so ``pd.read_hdf(path, "obs")`` reads it.
- root attributes: ``channels``, ``genes`` (sorted vocabulary, controls included),
  ``controls``, ``crop_size``, ``batch_key`` and whatever else the writer adds
  (z-score statistics in ``cells.h5``). Lists of strings are stored as string arrays.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Callable, Iterable

import h5py
import numpy as np
import pandas as pd

from .atomic import atomic_path
from .errors import InputError


def write_cells_h5(
    path: str | os.PathLike,
    obs: pd.DataFrame,
    blocks: Iterable[np.ndarray],
    attrs: dict,
) -> None:
    """Write ``obs`` and the crops atomically.

    ``blocks`` yields arrays shaped (n_i, C, S, S) whose n_i sum to ``len(obs)``, in
    ``obs`` row order; they are cast to float16. Memory is one block at a time.
    An empty ``obs`` with one (0, C, S, S) block writes a valid file with 0 crops.
    ``attrs`` values may be numbers, strings, lists of strings, arrays or dicts
    (dicts are stored as JSON strings).
    """
    obs = obs.reset_index(drop=True)
    empty = len(obs) == 0  # pandas skips empty "table" frames and h5py rejects chunks > shape
    with atomic_path(path) as tmp:
        obs.to_hdf(tmp, key="obs", format="fixed" if empty else "table", mode="w", complevel=1)
        with h5py.File(tmp, "a") as f:
            dset = None
            start = 0
            for block in blocks:
                block = np.asarray(block, dtype=np.float16)
                if dset is None:
                    shape = (len(obs),) + block.shape[1:]
                    dset = f.create_dataset("images", shape=shape, dtype=np.float16,
                                            chunks=None if empty else (1,) + block.shape[1:])
                dset[start:start + len(block)] = block
                start += len(block)
            if dset is None:
                raise ValueError("write_cells_h5: no image blocks given")
            if start != len(obs):
                raise ValueError(f"write_cells_h5: {start} crops for {len(obs)} obs rows")
            for key, value in attrs.items():
                f.attrs[key] = _encode(value)


def write_virtual_cells_h5(path: str | os.PathLike, parts: Callable[[], Iterable[tuple[str, pd.DataFrame]]],
                           attrs: dict) -> int:
    """Write a cells file whose ``images`` is an HDF5 virtual dataset over other cells files.

    ``parts()`` yields (source cells file, its obs plus any further columns) in row order;
    it is called twice (obs is written part by part: memory is one part). ``images`` maps
    rows ``offset:offset + len(obs)`` onto each source's ``images`` (no pixel is copied);
    sources are stored relative to ``path``'s folder, so the folder can move as a whole
    but a source moved or deleted alone reads as NaN (see ``missing_sources``). ``obs``
    and the attributes are as ``write_cells_h5`` writes them, so ``pd.read_hdf(path,
    "obs")`` and h5py reads see no difference. Returns the number of rows.
    """
    path = Path(path)
    sources, template, width = [], [], 0
    for source, obs in parts():
        with h5py.File(source, "r") as f:
            shape = f["images"].shape
        if shape[0] != len(obs):
            raise ValueError(f"{source}: {shape[0]} crops for {len(obs)} obs rows")
        sources.append((os.path.relpath(source, path.parent), shape))
        template.append(obs.iloc[:0])
        strings = [c for c in obs.columns if obs[c].dtype == object]
        if strings and len(obs):
            width = max(width, int(obs[strings].astype(str).map(len).to_numpy().max()))
    if not sources:
        raise ValueError("write_virtual_cells_h5: no source with cells")
    if len({shape[1:] for _, shape in sources}) != 1:
        raise ValueError(f"write_virtual_cells_h5: sources of unequal crop shapes {sorted({s[1:] for _, s in sources})}")
    dtypes = pd.concat(template).dtypes  # what one concatenated frame would hold
    n = sum(shape[0] for _, shape in sources)
    with atomic_path(path) as tmp:
        with pd.HDFStore(tmp, mode="w", complevel=1) as store:
            offset = 0
            for _, obs in parts():
                obs = obs.astype(dtypes).set_axis(pd.RangeIndex(offset, offset + len(obs)))
                store.append("obs", obs, format="table", min_itemsize={"values": width} if width else None)
                offset += len(obs)
        tail = sources[0][1][1:]
        layout = h5py.VirtualLayout(shape=(n,) + tail, dtype=np.float16)
        offset = 0
        for source, shape in sources:
            layout[offset:offset + shape[0]] = h5py.VirtualSource(source, "images", shape=shape)
            offset += shape[0]
        with h5py.File(tmp, "a") as f:
            f.create_virtual_dataset("images", layout, fillvalue=np.float16(np.nan))
            for key, value in attrs.items():
                f.attrs[key] = _encode(value)
    return n


def missing_sources(path: str | os.PathLike) -> list[str]:
    """The source files of a virtual ``images`` that do not exist (none for a plain file);
    their rows would read as NaN."""
    path = Path(path)
    with h5py.File(path, "r") as f:
        dset = f["images"]
        if not dset.is_virtual:
            return []
        names = sorted({s.file_name for s in dset.virtual_sources()})
    return [n for n in names if not (path.parent / n).exists()]


def _encode(value):
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return np.array(value, dtype=h5py.string_dtype())
    return value


def read_obs(path: str | os.PathLike) -> pd.DataFrame:
    """Per-cell metadata of a cells file, in ``images`` row order."""
    return pd.read_hdf(path, "obs")


def read_attrs(path: str | os.PathLike) -> dict:
    """Root attributes with strings decoded (string arrays become lists of str)."""
    out = {}
    with h5py.File(path, "r") as f:
        for key, value in f.attrs.items():
            if isinstance(value, np.ndarray) and value.dtype.kind in "OS":
                value = [v.decode() if isinstance(v, bytes) else str(v) for v in value]
            elif isinstance(value, bytes):
                value = value.decode()
            out[key] = value
    return out


def read_crops(path: str | os.PathLike, index: Iterable[int] | None = None) -> np.ndarray:
    """Read crops as float32 (n, C, S, S), in the order of ``index`` (all when None).

    Reads crop by crop with ``read_direct``; fancy indexing on chunked data is ~10x slower.
    Through a virtual ``images`` (``write_virtual_cells_h5``) the rows are read from the
    source files themselves, kept open in this process (``_source``), which is as fast as
    one plain file; a missing source is an InputError naming it (not rows of NaN).
    """
    if index is not None:
        index = np.asarray(list(index), dtype=np.int64)
        layout = _virtual_layout(str(path), os.stat(path).st_mtime_ns)
        if layout is not None:
            return _read_virtual(path, layout, index).astype(np.float32)
    with h5py.File(path, "r") as f:
        dset = f["images"]
        if index is None:
            return dset[...].astype(np.float32)
        out = np.empty((len(index),) + dset.shape[1:], dtype=np.float16)
        for i, j in enumerate(index):
            dset.read_direct(out, np.s_[j:j + 1], np.s_[i:i + 1])
        return out.astype(np.float32)


@functools.lru_cache(maxsize=8)
def _virtual_layout(path: str, mtime_ns: int):
    """None for a plain ``images``; else (row starts, row stops, source files, dataset names,
    shape) of its sources, sorted by start (cached per file version)."""
    with h5py.File(path, "r") as f:
        dset = f["images"]
        if not dset.is_virtual:
            return None
        parts = []
        for vs in dset.virtual_sources():
            (start, *_), (stop, *_) = vs.vspace.get_select_bounds()
            parts.append((start, stop + 1, str(Path(path).parent / vs.file_name), vs.dset_name))
        shape = dset.shape
    parts.sort()
    return (np.array([p[0] for p in parts], np.int64), np.array([p[1] for p in parts], np.int64),
            [p[2] for p in parts], [p[3] for p in parts], shape)


@functools.lru_cache(maxsize=256)
def _source(pid: int, path: str, mtime_ns: int) -> h5py.File:
    """A source file of a virtual dataset, open read-only in process ``pid`` (a forked
    DataLoader worker opens its own) for this file version; no chunk cache (a crop is a chunk)."""
    return h5py.File(path, "r", rdcc_nbytes=0)


def _read_virtual(path, layout, index: np.ndarray) -> np.ndarray:
    starts, stops, files, names, shape = layout
    if len(index) and (index.min() < 0 or index.max() >= shape[0]):
        raise IndexError(f"{path}: rows outside 0..{shape[0] - 1}")
    which = np.searchsorted(starts, index, side="right") - 1
    if len(index) and ((which < 0).any() or (index >= stops[np.maximum(which, 0)]).any()):
        raise ValueError(f"{path}: rows outside every source of its virtual images")
    out = np.empty((len(index),) + tuple(shape[1:]), dtype=np.float16)
    for w in np.unique(which):
        try:
            dset = _source(os.getpid(), files[w], os.stat(files[w]).st_mtime_ns)[names[w]]
        except (FileNotFoundError, OSError) as exc:
            raise InputError(f"{path}: its images read from {files[w]}, which cannot be opened "
                             f"({type(exc).__name__}); rerun the preprocessing (rule zscore_well).") from None
        offset = int(starts[w])
        for i in np.flatnonzero(which == w):
            j = int(index[i]) - offset
            dset.read_direct(out, np.s_[j:j + 1], np.s_[i:i + 1])
    return out


def read_crop_range(path: str | os.PathLike, start: int, stop: int) -> np.ndarray:
    """Read rows ``start:stop`` as float32 (n, C, S, S): one contiguous slice, the fast path."""
    with h5py.File(path, "r") as f:
        return f["images"][start:stop].astype(np.float32)


def iter_crop_blocks(path: str | os.PathLike, block_size: int = 1024):
    """Yield (start, crops float32 (n, C, S, S)) blocks over the whole file, in row order."""
    with h5py.File(path, "r") as f:
        dset = f["images"]
        for start in range(0, dset.shape[0], block_size):
            yield start, dset[start:start + block_size].astype(np.float32)


def n_cells(path: str | os.PathLike) -> int:
    """Number of crops in a cells file."""
    with h5py.File(path, "r") as f:
        return int(f["images"].shape[0])


def screened_genes(path: str | os.PathLike) -> list[str]:
    """Sorted genes with at least one cell in a cells file, the control label excluded."""
    controls = read_attrs(path).get("controls")
    genes = set(read_obs(path)["gene"].astype(str))
    genes.discard(str(controls))
    return sorted(genes)
