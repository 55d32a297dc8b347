"""Protein-complex ground truth in either supported layout.

A UTF-8 text file of ``name<TAB>value`` lines; blank lines and lines starting with ``#``
are skipped. The layout is decided once per file, in this order:

1. A header line decides: ``complex<TAB>gene`` (or ``name<TAB>gene``) is the **long**
   form, ``name<TAB>genes`` (or ``complex<TAB>genes``) the **wide** form.
2. Without a header, the file is long when some complex name appears on more than one
   line, wide otherwise; a file whose names repeat while most of its lines hold several
   space-separated words fits neither and must get a header.

Long form: one gene per line, the value taken whole (a symbol may contain spaces).
Wide form (EFAAR ``CORUM_clusters.tsv``): one complex per line, its genes separated by
spaces, so a wide-form symbol cannot contain a space.

``input.ground_truth`` names one such file, a list of them, or a mapping ``{name: file}``;
:func:`ground_truth_files` turns each into the ordered ``{name: file}`` the pipeline uses
(the first is the primary ground truth).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from .atomic import atomic_path
from .errors import InputError
from .tables import check_text_file, text_read_errors

EXPECTED = ("a complex TSV (UTF-8 text: 'name<TAB>genes separated by spaces' or "
            "'complex<TAB>gene', one gene per line)")
"""What a ground-truth file is, for error messages."""

LONG, WIDE = "long", "wide"
_HEADERS = {("complex", "gene"): LONG, ("name", "gene"): LONG,
            ("name", "genes"): WIDE, ("complex", "genes"): WIDE}


NAME = re.compile(r"[A-Za-z0-9_]+")
"""A ground truth's name: it names folders and is a metrics.tsv value."""


def ground_truth_files(value, key: str = "input.ground_truth") -> dict[str, str]:
    """The ground truths of the config value ``value``, as ``{name: path}`` in order.

    ``value``: one path (str), a list of paths, or a mapping ``{name: path}``. A path's
    name, where not given, is its file name without the suffix (``CORUM_clusters.tsv`` ->
    ``CORUM_clusters``), with any character other than a letter, digit or underscore
    replaced by ``_``. Raises InputError naming ``key`` for an empty list or mapping, a
    name that is not ``[A-Za-z0-9_]+``, a name or a path given twice, or a path that is
    not a string.
    """
    if isinstance(value, (str, os.PathLike)):
        value = [value]
    if isinstance(value, dict):
        pairs = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        pairs = [(re.sub(r"[^A-Za-z0-9_]", "_", Path(str(p)).stem) if isinstance(p, (str, os.PathLike)) else "?", p)
                 for p in value]
    else:
        raise InputError(f"{key}: expected a file, a list of files or a mapping {{name: file}}; "
                         f"got {value!r}.")
    if not pairs:
        raise InputError(f"{key}: no ground-truth file given. Name at least one complex TSV.")
    out: dict[str, str] = {}
    for name, path in pairs:
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise InputError(f"{key}: {path!r} (ground truth {name!r}) is not a file path.")
        if not NAME.fullmatch(name):
            raise InputError(f"{key}: ground-truth name {name!r} must consist of letters, digits and "
                             "underscores (it names result folders). Give the files as a mapping "
                             "{name: file} with such names.")
        if name in out:
            raise InputError(f"{key}: two ground truths are named {name!r}. Give the files as a "
                             "mapping {name: file} with distinct names.")
        if str(path) in out.values():
            raise InputError(f"{key}: {path} is listed twice.")
        out[name] = str(path)
    return out


def write_long(complexes: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a ``complex, gene`` frame atomically in the long layout with its header line
    (``complex<TAB>gene``, one gene per line, in the frame's order)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write("complex\tgene\n")
            for name, gene in complexes[["complex", "gene"]].astype(str).itertuples(index=False):
                handle.write(f"{name}\t{gene}\n")


def read_complexes(path: str | os.PathLike) -> pd.DataFrame:
    """Read a complex TSV as a long frame with string columns ``complex, gene``.

    The layout (long or wide) is detected as the module docstring says. Duplicate
    (complex, gene) pairs are dropped. Raises InputError naming the file (and line) when
    it is missing, binary or not UTF-8, a line has other than two tab-separated fields
    or an empty name or gene, the layout is ambiguous, or no complex is found.
    """
    if not os.path.exists(path):
        raise InputError(f"{path}: ground-truth file not found. Check input.ground_truth.")
    lines = _read_lines(path)
    layout = ground_truth_layout(path, lines)
    if lines and (lines[0][1].lower(), lines[0][2].strip().lower()) in _HEADERS:
        lines = lines[1:]
    rows = []
    for lineno, name, value in lines:
        genes = [value.strip()] if layout == LONG else value.split()
        if not name or not genes or not genes[0]:
            raise InputError(f"{path}: line {lineno} has an empty complex name or gene.")
        rows.extend((name, g) for g in genes)
    if not rows:
        raise InputError(f"{path}: no complexes found; expected {EXPECTED}.")
    return pd.DataFrame(rows, columns=["complex", "gene"]).drop_duplicates(ignore_index=True)


def ground_truth_layout(path, lines: list[tuple[int, str, str]]) -> str:
    """LONG or WIDE for the ``(line number, name, value)`` lines of ``path`` (module docstring)."""
    if lines:
        _, name, value = lines[0]
        header = _HEADERS.get((name.lower(), value.strip().lower()))
        if header:
            return header
    names = [name for _, name, _ in lines]
    if len(set(names)) == len(names):
        return WIDE
    if sum(len(value.split()) > 1 for _, _, value in lines) > len(lines) / 2:
        raise InputError(f"{path}: cannot tell the layout: complex names repeat (long form) but most "
                         "lines list several space-separated genes (wide form). Add a header line, "
                         "`complex<TAB>gene` (long) or `name<TAB>genes` (wide).")
    return LONG


def _read_lines(path) -> list[tuple[int, str, str]]:
    """(line number, stripped name, value) of every non-blank, non-comment line."""
    check_text_file(path, EXPECTED)
    out = []
    with text_read_errors(path, EXPECTED), open(path, encoding="utf-8-sig") as handle:
        for lineno, line in enumerate(handle, start=1):
            line = line.rstrip("\n\r")
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                raise InputError(f"{path}: line {lineno} has {len(parts)} tab-separated fields; "
                                 "expected `complex<TAB>genes`.")
            out.append((lineno, parts[0].strip(), parts[1]))
    return out
