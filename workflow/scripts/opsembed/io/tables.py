"""Reading and writing tables by file extension (.csv, .tsv, .parquet).

Id and label columns are text: every column named in ``TEXT_COLUMNS`` (or passed as
``text``) is read exactly as written, so a tile ``000`` stays ``"000"`` and a gene ``NA``
stays ``"NA"``; only an empty field is missing. Other columns are parsed by pandas
(numbers become numbers). A file that is binary, not UTF-8, or not a table of its type
gives an InputError naming the file and what was expected.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

try:
    from pandas._libs.parsers import STR_NA_VALUES  # pandas' own default NA spellings
except ImportError:  # pragma: no cover - a pandas that moved them: the documented defaults
    STR_NA_VALUES = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                     "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}

from .atomic import atomic_path
from .errors import InputError

TEXT_COLUMNS = ("plate", "well", "tile", "cell_id", "sgRNA", "gene", "batch", "series",
                "complex", "channel", "method", "fold", "oe")
"""Id and label columns, read as text in every table (cell tables and the pipeline's own)."""


def read_table(path: str | os.PathLike, columns: list[str] | None = None,
               text: Iterable[str] = (), where: dict[str, str] | None = None) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet file, chosen by its extension (``.gz`` allowed).

    ``columns`` restricts the columns read (all when None). Columns in ``TEXT_COLUMNS``
    or ``text`` come back as str exactly as written (NaN only where a field is empty).
    ``where`` ({text column: value}) keeps only the rows with those values (index
    0..n-1); a Parquet file is filtered while it is read (memory: the kept rows), e.g. one
    well of a genome-scale table. Raises InputError naming the file when it is missing, of
    an unknown type, binary, not UTF-8, not parseable, or lacks a column of ``columns``.
    """
    path, kind = _table_kind(path)
    text = set(TEXT_COLUMNS) | set(text)
    if kind == ".parquet":
        return _read_parquet(path, columns, text, where)
    table = read_delimited(path, _SEPARATORS[kind], columns, text, _EXPECTED[kind])
    for column, value in (where or {}).items():
        table = table[table[column].astype(str) == str(value)]
    return table.reset_index(drop=True) if where else table


def read_delimited(path: str | os.PathLike, sep: str, columns: list[str] | None,
                   text: Iterable[str], expected: str) -> pd.DataFrame:
    """Read a delimited UTF-8 text table (``.gz`` allowed) with a header line.

    ``text`` columns are str exactly as written (see the module docstring); ``expected``
    describes the file in error messages ("a tab-separated table ..."). Raises InputError
    naming the file for a binary, non-UTF-8, empty or unparseable file, or a column of
    ``columns`` that the header lacks.
    """
    header = delimited_columns(path, sep, expected)
    if columns is not None:
        missing = [c for c in columns if c not in header]
        if missing:
            raise InputError(f"{path}: missing column(s) {missing}; its columns are {header}.")
    text = set(text)
    dtype = {c: str for c in header if c in text}
    na_values = {c: [""] if c in text else list(STR_NA_VALUES) for c in header}
    with _parse_errors(path, expected):
        return pd.read_csv(path, sep=sep, usecols=columns, dtype=dtype, keep_default_na=False,
                           na_values=na_values, encoding="utf-8-sig", low_memory=False)


def delimited_columns(path: str | os.PathLike, sep: str, expected: str) -> list[str]:
    """The header of a delimited UTF-8 text table, after checking that the file is text."""
    check_text_file(path, expected)
    with _parse_errors(path, expected):
        return list(pd.read_csv(path, sep=sep, nrows=0, encoding="utf-8-sig").columns)


def table_columns(path: str | os.PathLike) -> list[str]:
    """The column names of a CSV, TSV or Parquet file, from its header or schema alone."""
    path, kind = _table_kind(path)
    if kind == ".parquet":
        import pyarrow.parquet as pq

        with _parse_errors(path, _EXPECTED[kind]):
            return list(pq.read_schema(path).names)
    return delimited_columns(path, _SEPARATORS[kind], _EXPECTED[kind])


def group_counts(path: str | os.PathLike, columns: list[str], text: Iterable[str] = ()) -> pd.DataFrame:
    """The distinct rows of ``columns`` of a table, with ``n`` (rows of each, int64) and
    ``first_row`` (0-based row of its first occurrence, int64), in first-occurrence order.

    ``columns`` in ``TEXT_COLUMNS`` or ``text`` are str as written (see ``read_table``);
    a missing value is a group of its own (NaN). Parquet is grouped by pyarrow before any
    Python object is built (25 M rows x 3 id columns: about a second and 0.5 GB); a text
    table is read with pandas (only ``columns``). Raises InputError as ``read_table``.
    """
    path, kind = _table_kind(path)
    if kind != ".parquet":
        table = read_table(path, columns=columns, text=text)
        groups = table.groupby(columns, sort=False, dropna=False)
        first = groups.ngroup()
        out = table.loc[~first.duplicated(), columns].reset_index(names="first_row")
        out["n"] = groups.size().to_numpy()
        return out[list(columns) + ["n", "first_row"]].astype({"n": np.int64, "first_row": np.int64})
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    text = set(TEXT_COLUMNS) | set(text)
    with _parse_errors(path, _EXPECTED[".parquet"]):
        names = pq.read_schema(path).names
        missing = [c for c in columns if c not in names]
        if missing:
            raise InputError(f"{path}: missing column(s) {missing}; its columns are {names}.")
        table = pq.read_table(path, columns=list(columns))
        for i, field in enumerate(table.schema):
            if field.name in text and not pa.types.is_string(field.type):
                table = table.set_column(i, field.name, pc.cast(table.column(i), pa.string()))
        table = table.append_column("_row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
        grouped = table.group_by(list(columns), use_threads=False).aggregate(
            [("_row", "min"), ("_row", "count")])
        grouped = grouped.sort_by("_row_min")
    out = grouped.select(list(columns)).to_pandas()
    out["n"] = grouped.column("_row_count").to_numpy().astype(np.int64)
    out["first_row"] = grouped.column("_row_min").to_numpy().astype(np.int64)
    return out


def read_table_where(path: str | os.PathLike, columns: list[str], column: str, value: str) -> pd.DataFrame:
    """The rows of a table whose text column ``column`` equals ``value``, ``columns`` only
    (read as ``read_table`` reads them), indexed by their 0-based row in the file. A
    Parquet file is filtered by pyarrow before pandas sees it (memory: the matching rows
    plus ``column``)."""
    path, kind = _table_kind(path)
    if kind != ".parquet":
        table = read_table(path, columns=list(dict.fromkeys([*columns, column])))
        return table.loc[table[column].astype(str) == str(value), list(columns)]
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    with _parse_errors(path, _EXPECTED[".parquet"]):
        key = pq.read_table(path, columns=[column]).column(0)
        rows = pc.indices_nonzero(pc.equal(pc.cast(key, pa.string()), str(value))).to_numpy()
        del key
        text = set(TEXT_COLUMNS)
        table = pq.read_table(path, columns=list(columns)).take(pa.array(rows))
        for i, field in enumerate(table.schema):
            if field.name in text and not pa.types.is_string(field.type):
                table = table.set_column(i, field.name, pc.cast(table.column(i), pa.string()))
    return table.to_pandas().set_axis(pd.Index(rows.astype(np.int64)))


def check_text_file(path: str | os.PathLike, expected: str, n_bytes: int = 1 << 16) -> None:
    """InputError naming ``path`` and ``expected`` when its first ``n_bytes`` (decompressed
    for ``.gz``) are binary (a NUL byte) or not UTF-8; missing files are InputErrors too."""
    if not os.path.exists(path):
        raise InputError(f"{path}: file not found; expected {expected}. Check the path in your config.")
    try:
        opener = gzip.open if str(path).lower().endswith(".gz") else open
        with opener(path, "rb") as handle:
            head = handle.read(n_bytes)
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot be read ({_first_line(exc)}); expected {expected}.") from None
    if b"\x00" in head:
        raise InputError(f"{path}: binary data (NUL bytes), not text; expected {expected}.")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte 0x{head[exc.start]:02x} at offset "
                         f"{exc.start}); expected {expected}. Save it as UTF-8.") from None


@contextlib.contextmanager
def text_read_errors(path, expected: str) -> Iterator[None]:
    """Turn a decoding error while reading ``path`` as UTF-8 into a one-line InputError."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({_first_line(exc)}); expected {expected}. "
                         "Save it as UTF-8.") from None


_SEPARATORS = {".csv": ",", ".tsv": "\t", ".txt": "\t"}
_EXPECTED = {".csv": "a comma-separated UTF-8 text table with a header line",
             ".tsv": "a tab-separated UTF-8 text table with a header line",
             ".txt": "a tab-separated UTF-8 text table with a header line",
             ".parquet": "a Parquet file"}


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


def _read_parquet(path: Path, columns: list[str] | None, text: set[str], where: dict | None = None) -> pd.DataFrame:
    """Parquet through pyarrow; ``text`` columns cast to strings (nulls stay missing);
    ``where`` rows only (string columns compared to the values as str)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with _parse_errors(path, _EXPECTED[".parquet"]):
        names = pq.read_schema(path).names
        if columns is not None:
            missing = [c for c in columns if c not in names]
            if missing:
                raise InputError(f"{path}: missing column(s) {missing}; its columns are {names}.")
        filters = None
        if where:
            schema = pq.read_schema(path)
            filters = [(c, "==", str(v) if pa.types.is_string(schema.field(c).type) else v) for c, v in where.items()]
        table = pq.read_table(path, columns=columns, filters=filters)
        for i, field in enumerate(table.schema):
            if field.name in text and not pa.types.is_string(field.type):
                table = table.set_column(i, field.name, table.column(i).cast(pa.string()))
        return table.to_pandas()


@contextlib.contextmanager
def _parse_errors(path, expected: str) -> Iterator[None]:
    """One-line InputErrors for the ways a table file can fail to parse."""
    import pyarrow as pa

    try:
        with text_read_errors(path, expected):
            yield
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: the file is empty; expected {expected}.") from None
    except (pd.errors.ParserError, pa.ArrowException, gzip.BadGzipFile, EOFError) as exc:
        raise InputError(f"{path}: not readable as {expected} ({_first_line(exc)}).") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``df`` atomically, no index: Parquet for ``.parquet``, CSV for ``.csv``, else TSV."""
    with atomic_path(path) as tmp:
        if str(path).endswith(".parquet"):
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, sep="," if str(path).endswith(".csv") else "\t", index=False)
