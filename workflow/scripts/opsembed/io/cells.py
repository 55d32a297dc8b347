"""The per-cell table: one row per cell with plate, well, tile, y, x and gene."""

from __future__ import annotations

import os
import re
from typing import Iterable

import numpy as np
import pandas as pd

from .errors import InputError
from .presets import missing_hint, resolve_columns
from .tables import read_table, table_columns

REQUIRED = ["plate", "well", "tile", "y", "x", "gene"]
"""Columns every cell table must have (after renaming with ``input.columns``)."""

OPTIONAL = ["sgRNA", "cell_id"]
"""Contract columns filled in when absent: sgRNA from gene, cell_id from the row number."""

ID_COLUMNS = ["plate", "well", "tile", "gene", "sgRNA", "cell_id"]
"""Contract columns that are ids: read as text exactly as written (``000`` stays ``000``)."""

PATH_COLUMNS = ["plate", "well", "tile"]
"""Id columns whose values become file and folder names (tile files, per-plate and
per-well outputs, logs), so they must be safe path components."""

SAFE_NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]*")
"""A safe path component: ASCII letters, digits, ``_ + - .``, not starting with ``.``
(so never empty, ``.``, ``..``, a hidden or temporary file, or holding a ``/``)."""


def read_cells(path: str | os.PathLike, columns: dict[str, str] | None = None,
               text: Iterable[str] = (), preset: str | None = None) -> pd.DataFrame:
    """Read and check the cell table at ``path``.

    ``columns`` maps a column name in the file to its contract name (for example
    ``{"i_nucleus": "y", "j_nucleus": "x", "gene_symbol_0": "gene"}``). ``text`` names
    further id columns by their contract name (e.g. the batch_key and the OOD level
    columns); they, the ``ID_COLUMNS`` and ``opsembed.io.tables.TEXT_COLUMNS`` are read as
    str exactly as written. Returns a frame with string ``plate, well, tile, gene, sgRNA,
    cell_id``, float64 ``y, x`` (pixel centre in the tile), then any other columns as read.
    ``preset`` (``input.preset``: cellprofiler, brieflow, funk2022) adds that tool's
    renames under ``columns`` (``opsembed.io.presets``; ``columns`` wins).
    Raises InputError naming the file, column or first bad row (1-based data row), and
    the preset when a contract column is missing.
    """
    columns = resolve_columns(preset, columns, table_columns(path) if preset else [])
    source = {dst: src for src, dst in columns.items()}
    df = read_table(path, text=[source.get(c, c) for c in ID_COLUMNS + list(text)])
    missing_src = [src for src in columns if src not in df.columns]
    if missing_src:
        raise InputError(f"{path}: input.columns renames {missing_src}, which the file lacks. "
                         f"Its columns are {list(df.columns)}.")
    df = df.rename(columns=columns)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise InputError(
            f"{path}: missing required column(s) {missing}. Required: {REQUIRED}. "
            f"Rename other spellings with input.columns in your config.{separator_hint(df.columns)}"
            f"{missing_hint(preset, missing)}"
        )
    if df.columns.duplicated().any():
        dup = list(df.columns[df.columns.duplicated()])
        raise InputError(f"{path}: duplicate column(s) {dup} after applying input.columns.")
    if len(df) == 0:
        raise InputError(f"{path}: the cell table has no rows.")
    for col in [c for c in ID_COLUMNS if c in df.columns]:
        bad = df[col].isna()
        if bad.any():
            raise InputError(f"{path}: row {_row(bad)} has an empty {col!r}. Every cell needs one.")
        df[col] = df[col].astype(str)
    check_path_names(df, path)
    for col in ("y", "x"):
        values = pd.to_numeric(df[col], errors="coerce")
        bad = ~np.isfinite(values.to_numpy(dtype=float))
        if bad.any():
            raise InputError(f"{path}: row {_row(bad)} has a non-numeric or NaN {col!r} "
                             f"({df[col].iloc[int(np.argmax(bad))]!r}). Fix or drop that cell.")
        df[col] = values.astype(np.float64)
    if "sgRNA" not in df.columns:
        df["sgRNA"] = df["gene"]
    if "cell_id" not in df.columns:
        df["cell_id"] = np.arange(len(df)).astype(str)
    dup = df["cell_id"].duplicated()
    if dup.any():
        raise InputError(f"{path}: cell_id {df['cell_id'][dup].iloc[0]!r} appears twice "
                         f"(row {_row(dup)}). cell_id must be unique.")
    first = REQUIRED + OPTIONAL
    return df[first + [c for c in df.columns if c not in first]].reset_index(drop=True)


def separator_hint(header) -> str:
    """A sentence for a missing-column error when ``header`` is a single column holding
    separators (a ``;``-separated .csv, a tab-separated .csv ...); else ""."""
    header = [str(c) for c in header]
    if len(header) == 1 and any(sep in header[0] for sep in ",;\t"):
        return (f" Its header is one column, {header[0][:60]!r}: a .csv file must be "
                "comma-separated and a .tsv file tab-separated.")
    return ""


def check_path_names(df: pd.DataFrame, path, rows=None, counts=None) -> None:
    """InputError naming ``path``, the 1-based row, the column and the value when a
    ``PATH_COLUMNS`` value of ``df`` (contract names) is empty or not ``SAFE_NAME``, or
    when two plates, or two wells of a plate, differ only in letter case (they would share
    output files on a case-insensitive file system). ``df`` may be the table's distinct
    rows (``io.tables.group_counts``): ``rows`` then gives each one's 0-based row in the
    file (in file order) and ``counts`` how many rows it stands for."""
    for col in [c for c in PATH_COLUMNS if c in df.columns]:
        values = df[col]
        bad_names = [v for v in values.dropna().astype(str).unique() if not SAFE_NAME.fullmatch(v)]
        ok = values.notna().to_numpy() & ~values.astype(str).isin(bad_names).to_numpy()
        if not ok.all():
            i = int(np.argmin(ok))
            value = values.iloc[i]
            row = i if rows is None else int(np.asarray(rows)[i])
            n_bad = int((~ok).sum()) if counts is None else int(np.asarray(counts)[~ok].sum())
            what = "is empty" if pd.isna(value) or str(value) == "" else f"is {str(value)!r}"
            raise InputError(
                f"{path}: row {row + 1}: {col} {what}, which cannot be a file or folder name "
                f"({n_bad} such row(s)). Plate, well and tile names may hold ASCII "
                "letters, digits and _ + - . (not first); rename them in the cell table.")
    for col, parents in (("plate", []), ("well", ["plate"])):
        if col not in df.columns or any(p not in df.columns for p in parents):
            continue
        names = df[parents + [col]].astype(str).drop_duplicates()
        folded = names.assign(**{col: names[col].str.lower()}).duplicated(keep=False)
        if folded.any():
            clash = sorted(names.loc[folded.to_numpy(), col].tolist())
            raise InputError(f"{path}: {col} names {clash} differ only in letter case; they would "
                             "share output files on a case-insensitive file system. Rename them.")


def feature_columns(df: pd.DataFrame) -> list[str]:
    """Numeric columns of a cell table beyond the contract columns (e.g. released profiles)."""
    skip = set(REQUIRED + OPTIONAL + ["batch", "gene_id"])
    return [c for c in df.columns if c not in skip and pd.api.types.is_numeric_dtype(df[c])]


def _row(mask) -> int:
    """1-based data row of the first True in ``mask``."""
    return int(np.argmax(np.asarray(mask))) + 1
