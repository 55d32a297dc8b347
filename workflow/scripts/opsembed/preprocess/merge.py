"""Merge the per-well crop files into ``cells.h5``, z-scored per batch (rule merge_cells).

Two passes over the well files: (1) per batch and channel, mean and sd over every pixel of
the batch's control crops; (2) z-score every crop with its batch's statistics and write.
Memory is one block of ``BLOCK`` crops plus the obs table.
"""

from __future__ import annotations

import logging
from typing import Iterator

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..io.errors import InputError
from ..io.h5 import iter_crop_blocks, read_attrs, read_obs, write_cells_h5
from ..io.logs import terminal_warning
from ..io.tables import read_table, write_table
from .zscore import ChannelMoments, zscore

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = ["plate", "well", "n_cells", "n_kept", "n_dropped_edge", "n_dropped_blank", "n_padded"]
"""summary.tsv: per well, cells in the table, kept, dropped at the tile edge or as blank
crops (``preprocess.crops.blank_crops``), and zero-padded."""

BLOCK = 128
"""Crops per read block (128 crops of 4 x 96 x 96 are 38 MB as float64)."""


def control_moments(crop_paths, controls: str, n_channels: int) -> dict[str, ChannelMoments]:
    """Pass 1: batch -> ChannelMoments over the pixels of its control crops."""
    moments: dict[str, ChannelMoments] = {}
    for path in tqdm(crop_paths, desc="control statistics", unit="well"):
        obs = read_obs(path)
        is_control = obs["gene"].astype(str).eq(controls).to_numpy()
        if not is_control.any():
            continue
        batches = obs["batch"].astype(str).to_numpy()
        for start, block in iter_crop_blocks(path, BLOCK):
            rows = slice(start, start + len(block))
            mask, labels = is_control[rows], batches[rows]
            for batch in np.unique(labels[mask]):
                moments.setdefault(batch, ChannelMoments(n_channels)).add(block[mask & (labels == batch)])
    return moments


def zscore_table(moments: dict[str, ChannelMoments], batches: list[str], channels: list[str]) -> pd.DataFrame:
    """Long table batch, channel, mean, std, n_control_cells (batches in the given order)."""
    rows = [{"batch": b, "channel": ch, "mean": moments[b].mean[c], "std": moments[b].std[c],
             "n_control_cells": moments[b].n_crops}
            for b in batches for c, ch in enumerate(channels)]
    return pd.DataFrame(rows, columns=["batch", "channel", "mean", "std", "n_control_cells"])


def merge_cells(crop_paths, cells_path, h5_path, zscore_path, summary_path, controls: str,
                batch_key: str, channels: list[str], seed: int, crop_size: int) -> None:
    """Write ``cells.h5`` (layout: ``opsembed.io.h5.write_cells_h5``), ``zscore.tsv`` and ``summary.tsv``.

    Checks that the well files together account for every cell of ``cells_path`` (kept or
    dropped) and hold each kept cell once. ``obs`` is the wells' obs in ``crop_paths`` order
    plus ``gene_id`` (index into the sorted ``genes`` attr). Raises InputError when a batch
    has no control crop left (e.g. all dropped at tile edges) or a control channel is constant.
    """
    crop_paths = list(map(str, crop_paths))
    summary, obs = _collect(crop_paths, cells_path, crop_size, channels)
    batches = sorted(obs["batch"].astype(str).unique())
    moments = control_moments(crop_paths, controls, len(channels))
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
    mean = table["mean"].to_numpy().reshape(len(batches), len(channels))
    std = table["std"].to_numpy().reshape(len(batches), len(channels))
    genes = sorted(obs["gene"].astype(str).unique())
    obs["gene_id"] = np.searchsorted(genes, obs["gene"].astype(str).to_numpy()).astype(np.int64)
    batch_index = np.searchsorted(batches, obs["batch"].astype(str).to_numpy())
    attrs = {"channels": list(channels), "genes": genes, "controls": controls, "crop_size": int(crop_size),
             "batch_key": batch_key, "seed": int(seed), "zscore_batches": batches,
             "zscore_mean": mean, "zscore_std": std}
    write_cells_h5(h5_path, obs, _zscored_blocks(crop_paths, batch_index, mean, std), attrs)
    write_table(table, zscore_path)
    write_table(summary, summary_path)
    log.info("cells.h5: %d cells, %d genes, %d batches", len(obs), len(genes), len(batches))


def _collect(crop_paths, cells_path, crop_size: int, channels: list[str]):
    """Per-well summary and the concatenated obs; checks the files against the cell table."""
    rows, parts = [], []
    for path in crop_paths:
        attrs = read_attrs(path)
        if int(attrs["crop_size"]) != int(crop_size) or list(attrs["channels"]) != list(channels):
            raise ValueError(f"{path}: crop_size {attrs['crop_size']} / channels {attrs['channels']} "
                             f"differ from {crop_size} / {channels}; rerun crop_well.")
        rows.append({k: attrs.get(k, 0) for k in SUMMARY_COLUMNS})  # n_dropped_blank: 0 in older files
        if attrs["n_kept"] > 0:
            parts.append(read_obs(path))
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    if summary["n_dropped_blank"].sum():
        terminal_warning(f"{int(summary['n_dropped_blank'].sum())} blank crop(s) (constant in every channel, "
                         "e.g. from an all-zero tile) were dropped; the crop_well logs name the tiles "
                         "(summary.tsv: n_dropped_blank)", log)
    if not parts:
        raise InputError(f"{cells_path}: no cell has a whole crop inside its tile; "
                         "use a smaller preprocess.crop.size or preprocess.crop.edge: pad.")
    obs = pd.concat(parts, ignore_index=True)
    cells = read_table(cells_path, columns=["plate", "well", "cell_id"]).astype(str)
    expected = cells.groupby(["plate", "well"]).size()
    got = summary.set_index(["plate", "well"])["n_cells"]
    if not expected.sort_index().equals(got.sort_index().astype(expected.dtype)):
        raise ValueError(f"the {len(crop_paths)} crop files do not cover the wells of {cells_path} "
                         f"({len(expected)} wells, {int(expected.sum())} cells); rerun crop_well.")
    dup = obs["cell_id"].astype(str).duplicated()
    if dup.any() or not obs["cell_id"].astype(str).isin(cells["cell_id"]).all():
        raise ValueError("crop files hold a cell twice or a cell not in the cell table; rerun crop_well.")
    return summary, obs


def _zscored_blocks(crop_paths, batch_index: np.ndarray, mean: np.ndarray, std: np.ndarray) -> Iterator[np.ndarray]:
    """Pass 2: z-scored float32 blocks of every well file, in obs order."""
    offset = 0
    for path in tqdm(crop_paths, desc="z-score and write", unit="well"):
        n = 0
        for start, block in iter_crop_blocks(path, BLOCK):
            yield zscore(block, batch_index[offset + start: offset + start + len(block)], mean, std)
            n += len(block)
        offset += n
