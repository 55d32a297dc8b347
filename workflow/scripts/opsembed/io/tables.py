"""Reading and writing tables by file extension (.csv, .tsv, .parquet)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .atomic import atomic_path
from .errors import InputError


def read_table(path: str | os.PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet file, chosen by its extension (``.gz`` allowed).

    ``columns`` restricts the columns read (all when None).
    Raises InputError naming the file when it is missing or of an unknown type.
    """
    path, kind = _table_kind(path)
    if kind == ".parquet":
        return pd.read_parquet(path, columns=columns)
    return pd.read_csv(path, sep=_SEPARATORS[kind], usecols=columns, low_memory=False)


def table_columns(path: str | os.PathLike) -> list[str]:
    """The column names of a CSV, TSV or Parquet file, from its header or schema alone."""
    path, kind = _table_kind(path)
    if kind == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    return list(pd.read_csv(path, sep=_SEPARATORS[kind], nrows=0).columns)


_SEPARATORS = {".csv": ",", ".tsv": "\t", ".txt": "\t"}


def _table_kind(path) -> tuple[Path, str]:
    """(path, ".parquet" or a key of _SEPARATORS); InputError when missing or of another type."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found. Check the path in your config.")
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    kind = suffixes[-1] if suffixes else ""
    if kind != ".parquet" and kind not in _SEPARATORS:
        raise InputError(f"{path}: unknown table type {kind!r}; use .csv, .tsv or .parquet.")
    return path, kind


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``df`` atomically, no index: Parquet for ``.parquet``, CSV for ``.csv``, else TSV."""
    with atomic_path(path) as tmp:
        if str(path).endswith(".parquet"):
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, sep="," if str(path).endswith(".csv") else "\t", index=False)
