"""Z-scoring per batch without a whole-screen job, and the virtual ``cells.h5``.

Three steps, each a rule (rules/preprocess.smk):

1. per well (in rule crop_well): ``write_well_moments`` saves, block by block of
   ``BLOCK`` rows of the well's crop file, the pixel moments of its control crops per
   batch (``zscore.block_moments``) and the well's summary row: a few KB per well.
2. once (rule combine_moments): ``combine_moments`` replays every well's blocks in well
   order into one ``ChannelMoments`` per batch (bit for bit what one pass over all crops
   gives), checks the wells against the cell table and writes ``zscore.tsv`` (for
   people), ``zscore.npz`` (the exact float64 statistics the wells use) and ``summary.tsv``.
3. per well (rule zscore_well): ``zscore_well`` z-scores the well's crops with its
   batches' statistics into ``cells/{plate}/{well}.h5`` (``io.h5.write_cells_h5`` layout).
4. once (rule merge_cells): ``merge_virtual`` writes ``cells.h5``: ``obs`` (the wells'
   obs in well order plus ``gene_id``), the attributes, and ``images`` as an HDF5 virtual
   dataset over the wells' files (``io.h5.write_virtual_cells_h5``): no pixel is copied.

Memory of every step is one block of crops, one well's obs or the per-well summaries.
``merge_cells`` runs the four steps in one process (tests, benchmarks).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..io.atomic import atomic_path
from ..io.errors import InputError
from ..io.h5 import iter_crop_blocks, read_attrs, read_obs, write_cells_h5, write_virtual_cells_h5
from ..io.logs import terminal_warning
from ..io.tables import group_counts, write_table
from .zscore import ChannelMoments, block_moments, zscore

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = ["plate", "well", "n_cells", "n_kept", "n_dropped_edge", "n_dropped_blank", "n_padded"]
"""summary.tsv: per well, cells in the table, kept, dropped at the tile edge or as blank
crops (``preprocess.crops.blank_crops``), and zero-padded."""

BLOCK = 128
"""Crops per read block (128 crops of 4 x 96 x 96 are 38 MB as float64). The control
moments are taken per block of this many rows of a well file: changing it changes the
last bits of the z-score statistics."""


def well_cells_path(h5_path: str | os.PathLike, plate, well) -> Path:
    """The z-scored crops of one well beside ``cells.h5``: ``<dir>/<stem>/<plate>/<well>.h5``
    (``results/preprocess/cells/{plate}/{well}.h5`` for the workflow's ``cells.h5``)."""
    h5_path = Path(h5_path)
    return h5_path.parent / h5_path.stem / str(plate) / f"{well}.h5"


# ---- step 1: per well ----


class ControlBlocks:
    """The control moments of one well's rows, streamed: ``add`` the crops of the next rows
    (float32 holding float16 values, i.e. as the well file stores them); per block of
    ``BLOCK`` rows and per batch, the moments of its control crops (``zscore.block_moments``),
    blocks in row order, batches sorted within a block. Memory: one block's control crops."""

    def __init__(self, is_control: np.ndarray, batches: np.ndarray):
        self.is_control, self.batches = np.asarray(is_control, bool), np.asarray(batches, str)
        self.row, self._block, self._rows, self._crops = 0, -1, [], []
        self.entries = {"batch": [], "n_crops": [], "n_pixels": [], "mean": [], "m2": []}

    def add(self, crops: np.ndarray) -> None:
        for i in np.flatnonzero(self.is_control[self.row:self.row + len(crops)]):
            row = self.row + int(i)
            if row // BLOCK != self._block:
                self._flush()
                self._block = row // BLOCK
            self._rows.append(row)
            self._crops.append(np.asarray(crops[i], dtype=np.float32))
        self.row += len(crops)

    def finish(self, n_channels: int) -> dict[str, np.ndarray]:
        """The entries as arrays: ``batch`` (k,) str, ``n_crops``, ``n_pixels`` (k,) int64,
        ``mean``, ``m2`` (k, C) float64."""
        self._flush()
        e = self.entries
        return {"batch": np.asarray(e["batch"], dtype=str), "n_crops": np.asarray(e["n_crops"], dtype=np.int64),
                "n_pixels": np.asarray(e["n_pixels"], dtype=np.int64),
                "mean": np.asarray(e["mean"], dtype=np.float64).reshape(-1, n_channels),
                "m2": np.asarray(e["m2"], dtype=np.float64).reshape(-1, n_channels)}

    def _flush(self) -> None:
        if not self._rows:
            return
        block, labels = np.stack(self._crops), self.batches[self._rows]
        for batch in np.unique(labels):
            for key, value in zip(self.entries, (batch, *block_moments(block[labels == batch]))):
                self.entries[key].append(value)
        self._rows, self._crops = [], []


def well_moments(crop_path: str | os.PathLike, controls: str, blocks: ControlBlocks | None = None
                 ) -> dict[str, np.ndarray]:
    """The control moments of one well's crop file, per block of ``BLOCK`` rows and batch.

    Returns ``ControlBlocks.finish``'s arrays plus ``batches``: sorted batches of the well's
    kept cells; ``genes``: its sorted genes; and the summary fields (``SUMMARY_COLUMNS``,
    ``crop_size``, ``channels``) from the file's attributes. ``blocks``: the moments already
    streamed while the file was written (crop_well); else the file's crops are read.
    """
    attrs = read_attrs(crop_path)
    out = {k: np.asarray(attrs.get(k, 0)) for k in SUMMARY_COLUMNS}  # n_dropped_blank: 0 in older files
    out.update(crop_size=np.asarray(int(attrs["crop_size"])), channels=np.asarray(list(attrs["channels"]), str))
    obs = read_obs(crop_path) if int(attrs["n_kept"]) > 0 else pd.DataFrame(columns=["gene", "batch"])
    is_control = obs["gene"].astype(str).eq(controls).to_numpy()
    batches = obs["batch"].astype(str).to_numpy()
    if blocks is None:
        blocks = ControlBlocks(is_control, batches)
        if is_control.any():
            for _, crops in iter_crop_blocks(crop_path, BLOCK):
                blocks.add(crops)
    elif blocks.row != len(obs) or not np.array_equal(blocks.is_control, is_control):
        raise ValueError(f"{crop_path}: the streamed control moments do not match its {len(obs)} rows")
    out.update(blocks.finish(len(attrs["channels"])))
    out["batches"] = np.asarray(sorted(set(batches)), dtype=str)
    out["genes"] = np.asarray(sorted(set(obs["gene"].astype(str))), dtype=str)
    return out


def write_well_moments(crop_path, moments_path, controls: str, blocks: ControlBlocks | None = None) -> None:
    """``well_moments`` of ``crop_path`` saved atomically as ``moments_path`` (.npz, no pickles)."""
    moments = well_moments(crop_path, controls, blocks)
    with atomic_path(moments_path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **moments)


def read_well_moments(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


# ---- step 2: once, over the per-well summaries ----


def combine_moments(moment_paths, cells_path, zscore_path, stats_path, summary_path, batch_key: str,
                    channels: list[str], crop_size: int) -> None:
    """Replay the wells' control moments (``moment_paths`` in well order) per batch and write
    ``zscore.tsv`` (batch, channel, mean, std, n_control_cells), ``stats_path`` (.npz:
    ``batches`` sorted, ``channels``, ``mean`` and ``std`` (n_batches, C) float64) and
    ``summary.tsv`` (``SUMMARY_COLUMNS``, one row per well).

    Checks that the wells together account for every cell of ``cells_path`` (per plate and
    well counts). Raises InputError when no cell was kept, when a batch has no control crop
    left (e.g. all dropped at tile edges) or when a control channel is constant.
    """
    wells = [read_well_moments(p) for p in tqdm(list(map(str, moment_paths)), desc="wells", unit="well")]
    for path, m in zip(moment_paths, wells):
        if int(m["crop_size"]) != int(crop_size) or list(m["channels"]) != list(channels):
            raise ValueError(f"{path}: crop_size {int(m['crop_size'])} / channels {list(m['channels'])} "
                             f"differ from {crop_size} / {channels}; rerun crop_well.")
    summary = pd.DataFrame([{k: (str(m[k]) if k in ("plate", "well") else int(m[k])) for k in SUMMARY_COLUMNS}
                            for m in wells], columns=SUMMARY_COLUMNS)
    _check_summary(summary, cells_path, len(wells))
    batches = sorted(set().union(*[set(m["batches"].tolist()) for m in wells]))
    moments: dict[str, ChannelMoments] = {}
    for m in wells:
        for b, n, n_pix, mean, m2 in zip(m["batch"], m["n_crops"], m["n_pixels"], m["mean"], m["m2"]):
            moments.setdefault(str(b), ChannelMoments(len(channels))).merge(int(n), int(n_pix), mean, m2)
    lacking = [b for b in batches if b not in moments]
    if lacking:
        raise InputError(f"batch(es) {lacking} (batch_key {batch_key!r}) have no control crops left "
                         "after dropping cells at tile edges. Use preprocess.crop.edge: pad or a smaller crop.")
    table = zscore_table(moments, batches, channels)
    if (table["std"] <= 0).any():
        bad = table[table["std"] <= 0].iloc[0]
        raise InputError(f"batch {bad['batch']!r}, channel {bad['channel']!r}: control crops are constant "
                         "(sd 0); cannot z-score. Check the tiles and the rescaling percentiles.")
    log.info("z-score statistics:\n%s", table.to_string(index=False))
    with atomic_path(stats_path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, batches=np.asarray(batches, str), channels=np.asarray(channels, str),
                     mean=np.stack([moments[b].mean for b in batches]),
                     std=np.stack([moments[b].std for b in batches]))
    write_table(table, zscore_path)
    write_table(summary, summary_path)


def zscore_table(moments: dict[str, ChannelMoments], batches: list[str], channels: list[str]) -> pd.DataFrame:
    """Long table batch, channel, mean, std, n_control_cells (batches in the given order)."""
    rows = [{"batch": b, "channel": ch, "mean": moments[b].mean[c], "std": moments[b].std[c],
             "n_control_cells": moments[b].n_crops}
            for b in batches for c, ch in enumerate(channels)]
    return pd.DataFrame(rows, columns=["batch", "channel", "mean", "std", "n_control_cells"])


def read_zscore_stats(path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(sorted batches, mean, std (n_batches, C) float64) from ``combine_moments``' .npz."""
    with np.load(path, allow_pickle=False) as data:
        return data["batches"].tolist(), data["mean"], data["std"]


def _check_summary(summary: pd.DataFrame, cells_path, n_files: int) -> None:
    if summary["n_dropped_blank"].sum():
        terminal_warning(f"{int(summary['n_dropped_blank'].sum())} blank crop(s) (constant in every channel, "
                         "e.g. from an all-zero tile) were dropped; the crop_well logs name the tiles "
                         "(summary.tsv: n_dropped_blank)", log)
    if not summary["n_kept"].gt(0).any():
        raise InputError(f"{cells_path}: no cell has a whole crop inside its tile; "
                         "use a smaller preprocess.crop.size or preprocess.crop.edge: pad.")
    expected = group_counts(cells_path, ["plate", "well"]).set_index(["plate", "well"])["n"]
    got = summary.set_index(["plate", "well"])["n_cells"]
    if not expected.sort_index().equals(got.sort_index().astype(expected.dtype)):
        raise ValueError(f"the {n_files} well files do not cover the wells of {cells_path} "
                         f"({len(expected)} wells, {int(expected.sum())} cells); rerun crop_well.")


# ---- step 3: per well ----


def zscore_well(crop_path, stats_path, out_path) -> None:
    """Z-score one well's crop file with ``stats_path`` into ``out_path``: float16 crops
    ``(crop - mean[b, c]) / std[b, c]`` (b the crop's ``batch``; computed in float64, cast
    to float32 then float16), the same obs and the crop file's attributes."""
    batches, mean, std = read_zscore_stats(stats_path)
    attrs = read_attrs(crop_path)
    obs = read_obs(crop_path)
    labels = obs["batch"].astype(str).to_numpy() if len(obs) else np.zeros(0, str)
    unknown = sorted(set(labels) - set(batches))
    if unknown:
        raise ValueError(f"{crop_path}: batch(es) {unknown} are not in {stats_path}; rerun combine_moments.")
    batch_index = np.searchsorted(batches, labels)

    def blocks():
        if len(obs) == 0:  # an empty well still gets its (0, C, S, S) file
            yield np.zeros((0, len(attrs["channels"]), int(attrs["crop_size"]), int(attrs["crop_size"])))
        for start, block in iter_crop_blocks(crop_path, BLOCK):
            yield zscore(block, batch_index[start:start + len(block)], mean, std)

    write_cells_h5(out_path, obs, blocks(), attrs)


# ---- step 4: once, no pixels ----


def merge_virtual(well_paths, h5_path, stats_path, controls: str, batch_key: str, channels: list[str],
                  seed: int, crop_size: int) -> None:
    """Write ``cells.h5`` over the z-scored well files ``well_paths`` (in well order).

    ``obs``: the wells' obs in order plus ``gene_id`` (int64 index into the sorted ``genes``
    attribute); attributes channels, genes, controls, crop_size, batch_key, seed and the
    z-score statistics (zscore_batches, zscore_mean, zscore_std (n_batches, C)); ``images``
    a virtual dataset over the wells' ``images`` (``io.h5.write_virtual_cells_h5``).
    """
    well_paths = list(map(str, well_paths))
    batches, mean, std = read_zscore_stats(stats_path)
    genes: set[str] = set()
    for path in well_paths:
        if int(read_attrs(path)["n_kept"]) > 0:
            genes.update(read_obs(path)["gene"].astype(str))
    genes = sorted(genes)

    def obs_parts():
        for path in well_paths:
            if int(read_attrs(path)["n_kept"]) == 0:
                continue
            obs = read_obs(path)
            obs["gene_id"] = np.searchsorted(genes, obs["gene"].astype(str).to_numpy()).astype(np.int64)
            yield path, obs

    attrs = {"channels": list(channels), "genes": genes, "controls": controls, "crop_size": int(crop_size),
             "batch_key": batch_key, "seed": int(seed), "zscore_batches": batches,
             "zscore_mean": mean, "zscore_std": std}
    n = write_virtual_cells_h5(h5_path, obs_parts, attrs)
    log.info("cells.h5: %d cells, %d genes, %d batches over %d well files (virtual dataset)",
             n, len(genes), len(batches), len(well_paths))


def merge_cells(crop_paths, cells_path, h5_path, zscore_path, summary_path, controls: str,
                batch_key: str, channels: list[str], seed: int, crop_size: int) -> None:
    """The four steps in one process: ``cells.h5`` (virtual, over ``well_cells_path`` files
    beside it), ``zscore.tsv`` (its exact statistics in ``zscore.npz`` beside it) and
    ``summary.tsv`` from the crop files ``crop_paths`` (in well order)."""
    crop_paths = list(map(str, crop_paths))
    h5_path = Path(h5_path)
    moments, wells = [], []
    for path in crop_paths:
        attrs = read_attrs(path)
        moment_path = h5_path.parent / "moments" / f"{Path(path).stem}-{len(moments)}.npz"
        write_well_moments(path, moment_path, controls)
        moments.append(moment_path)
        wells.append(well_cells_path(h5_path, attrs["plate"], attrs["well"]))
    stats_path = Path(zscore_path).with_suffix(".npz")
    combine_moments(moments, cells_path, zscore_path, stats_path, summary_path, batch_key, channels, crop_size)
    for crop_path, well_path in zip(crop_paths, wells):
        zscore_well(crop_path, stats_path, well_path)
    merge_virtual(wells, h5_path, stats_path, controls, batch_key, channels, seed, crop_size)
