"""Protein-complex ground truth in either supported layout."""

from __future__ import annotations

import os

import pandas as pd

from .errors import InputError


def read_complexes(path: str | os.PathLike) -> pd.DataFrame:
    """Read a complex TSV as a long frame with string columns ``complex, gene``.

    Two layouts are accepted, with or without a header line:
    - ``name<TAB>gene symbols separated by spaces`` (EFAAR ``CORUM_clusters.tsv``);
    - long form ``complex<TAB>gene``, one gene per line.
    Duplicate (complex, gene) pairs are dropped. Raises InputError naming the file and line.
    """
    if not os.path.exists(path):
        raise InputError(f"{path}: ground-truth file not found. Check input.ground_truth.")
    rows = []
    with open(path) as handle:
        for lineno, line in enumerate(handle, start=1):
            line = line.rstrip("\n\r")
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                raise InputError(f"{path}: line {lineno} has {len(parts)} tab-separated fields; "
                                 "expected `complex<TAB>genes`.")
            name, genes = parts[0].strip(), parts[1].split()
            if lineno == 1 and name.lower() in ("complex", "name") and genes in (["gene"], ["genes"]):
                continue  # header line
            if not name or not genes:
                raise InputError(f"{path}: line {lineno} has an empty complex name or gene list.")
            rows.extend((name, g) for g in genes)
    if not rows:
        raise InputError(f"{path}: no complexes found.")
    return pd.DataFrame(rows, columns=["complex", "gene"]).drop_duplicates(ignore_index=True)
