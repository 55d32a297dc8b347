"""The per-cell table: one row per cell with plate, well, tile, y, x and gene."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from .errors import InputError
from .tables import read_table

REQUIRED = ["plate", "well", "tile", "y", "x", "gene"]
"""Columns every cell table must have (after renaming with ``input.columns``)."""

OPTIONAL = ["sgRNA", "cell_id"]
"""Contract columns filled in when absent: sgRNA from gene, cell_id from the row number."""


def read_cells(path: str | os.PathLike, columns: dict[str, str] | None = None) -> pd.DataFrame:
    """Read and check the cell table at ``path``.

    ``columns`` maps a column name in the file to its contract name (for example
    ``{"i_nucleus": "y", "j_nucleus": "x", "gene_symbol_0": "gene"}``).
    Returns a frame with string ``plate, well, tile, gene, sgRNA, cell_id``, float64
    ``y, x`` (pixel centre in the tile), then any other columns as read.
    Raises InputError naming the file, column or first bad row (1-based data row).
    """
    df = read_table(path)
    columns = dict(columns or {})
    missing_src = [src for src in columns if src not in df.columns]
    if missing_src:
        raise InputError(f"{path}: input.columns renames {missing_src}, which the file lacks. "
                         f"Its columns are {list(df.columns)}.")
    df = df.rename(columns=columns)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise InputError(
            f"{path}: missing required column(s) {missing}. Required: {REQUIRED}. "
            "Rename other spellings with input.columns in your config."
        )
    if df.columns.duplicated().any():
        dup = list(df.columns[df.columns.duplicated()])
        raise InputError(f"{path}: duplicate column(s) {dup} after applying input.columns.")
    if len(df) == 0:
        raise InputError(f"{path}: the cell table has no rows.")
    for col in ("plate", "well", "tile", "gene"):
        bad = df[col].isna()
        if bad.any():
            raise InputError(f"{path}: row {_row(bad)} has an empty {col!r}. Every cell needs one.")
        df[col] = df[col].astype(str)
    for col in ("y", "x"):
        values = pd.to_numeric(df[col], errors="coerce")
        bad = ~np.isfinite(values.to_numpy(dtype=float))
        if bad.any():
            raise InputError(f"{path}: row {_row(bad)} has a non-numeric or NaN {col!r} "
                             f"({df[col].iloc[int(np.argmax(bad))]!r}). Fix or drop that cell.")
        df[col] = values.astype(np.float64)
    if "sgRNA" not in df.columns:
        df["sgRNA"] = df["gene"]
    df["sgRNA"] = df["sgRNA"].astype(str)
    if "cell_id" not in df.columns:
        df["cell_id"] = np.arange(len(df)).astype(str)
    df["cell_id"] = df["cell_id"].astype(str)
    dup = df["cell_id"].duplicated()
    if dup.any():
        raise InputError(f"{path}: cell_id {df['cell_id'][dup].iloc[0]!r} appears twice "
                         f"(row {_row(dup)}). cell_id must be unique.")
    first = REQUIRED + OPTIONAL
    return df[first + [c for c in df.columns if c not in first]].reset_index(drop=True)


def feature_columns(df: pd.DataFrame) -> list[str]:
    """Numeric columns of a cell table beyond the contract columns (e.g. released profiles)."""
    skip = set(REQUIRED + OPTIONAL + ["batch", "gene_id"])
    return [c for c in df.columns if c not in skip and pd.api.types.is_numeric_dtype(df[c])]


def _row(mask) -> int:
    """1-based data row of the first True in ``mask``."""
    return int(np.argmax(np.asarray(mask))) + 1
