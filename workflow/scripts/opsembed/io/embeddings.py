"""The embedding file contract: ``results/embeddings/{method}.tsv``.

One row per gene; first column ``gene``, then one numeric column per dimension.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from .errors import InputError
from .tables import read_delimited, write_table

EXPECTED = "an embedding TSV (UTF-8 text: column 'gene', then one numeric column per dimension)"
"""What an embedding file is, for error messages."""


def write_embeddings(path: str | os.PathLike, genes, values: np.ndarray) -> None:
    """Write a (n_genes, d) float array with gene labels atomically as TSV."""
    values = np.asarray(values, dtype=np.float64)
    genes = [str(g) for g in genes]
    if values.ndim != 2 or values.shape[0] != len(genes):
        raise ValueError(f"embeddings: {values.shape} values for {len(genes)} genes")
    df = pd.DataFrame(values, columns=[f"dim_{i}" for i in range(values.shape[1])])
    df.insert(0, "gene", genes)
    check_embeddings(df, path)
    write_table(df, path)


def read_embeddings(path: str | os.PathLike) -> pd.DataFrame:
    """Read an embedding TSV, indexed by gene, float64 values.

    Gene names are read as text exactly as written. Raises InputError naming the file
    when it is missing, binary or not UTF-8, the first column is not ``gene``, a gene is
    empty, a value is non-numeric or NaN/inf, or a gene appears twice.
    """
    if not os.path.exists(path):
        raise InputError(f"{path}: embedding file not found.")
    df = read_delimited(path, "\t", None, ["gene"], EXPECTED)
    if len(df.columns) == 0 or df.columns[0] != "gene":
        found = df.columns[0] if len(df.columns) else None
        raise InputError(f"{path}: first column must be 'gene', found {found!r}; expected {EXPECTED}.")
    if df.shape[1] < 2:
        raise InputError(f"{path}: no embedding dimensions after the 'gene' column.")
    empty = df["gene"].isna()
    if empty.any():
        raise InputError(f"{path}: row {int(empty.to_numpy().argmax()) + 1} has an empty gene.")
    check_embeddings(df, path)
    return df.set_index("gene").astype(np.float64)


def check_embeddings(df: pd.DataFrame, path) -> None:
    """Raise InputError naming ``path`` for duplicate genes or NaN/inf/non-numeric values.

    ``df`` has a ``gene`` column followed by the dimension columns.
    """
    dup = df["gene"].duplicated()
    if dup.any():
        raise InputError(f"{path}: gene {df['gene'][dup].iloc[0]!r} has more than one row "
                         f"({int(dup.sum())} duplicate row(s)). Average or drop duplicates first.")
    values = df.iloc[:, 1:].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise InputError(f"{path}: gene {df['gene'].iloc[row]!r}, column {df.columns[col + 1]!r} "
                         f"is NaN, infinite or non-numeric ({int(bad.sum())} such value(s)).")
