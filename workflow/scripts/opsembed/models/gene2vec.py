"""The `gene2vec` baseline: pretrained gene vectors in word2vec text format."""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from ..io.embeddings import write_embeddings
from ..io.errors import InputError
from ..io.h5 import screened_genes

log = logging.getLogger(__name__)


def read_word2vec(path: str | os.PathLike) -> pd.DataFrame:
    """Read a word2vec text file as a float64 DataFrame indexed by gene (columns dim_0..).

    Format: an optional header line ``n_genes dim``, then one line per gene,
    ``gene v1 ... vd``, fields separated by spaces or tabs. Blank lines are skipped.
    Raises InputError naming the file and line for a wrong field count, a non-numeric
    or non-finite value, a repeated gene, or a header that disagrees with the rows.
    """
    if not os.path.exists(path):
        raise InputError(f"{path}: gene2vec file not found. Check methods.gene2vec.path.")
    genes, rows, header, dim = [], [], None, None
    first_line: dict[str, int] = {}
    with open(path) as handle:
        for lineno, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if header is None and not genes and len(fields) == 2 and all(f.isdigit() for f in fields):
                header = (int(fields[0]), int(fields[1]), lineno)
                dim = header[1]
                continue
            if dim is None:
                dim = len(fields) - 1
            if len(fields) - 1 != dim or dim < 1:
                raise InputError(f"{path}: line {lineno} has {len(fields) - 1} value(s) after the gene "
                                 f"name; expected {dim}. Each line must be `gene v1 ... v{dim}`.")
            try:
                values = np.array(fields[1:], dtype=np.float64)
            except ValueError:
                raise InputError(f"{path}: line {lineno} (gene {fields[0]!r}) has a non-numeric "
                                 "value.") from None
            if not np.isfinite(values).all():
                raise InputError(f"{path}: line {lineno} (gene {fields[0]!r}) has a NaN or infinite value.")
            if fields[0] in first_line:
                raise InputError(f"{path}: line {lineno} repeats gene {fields[0]!r} "
                                 f"(first on line {first_line[fields[0]]}). Keep one vector per gene.")
            first_line[fields[0]] = lineno
            genes.append(fields[0])
            rows.append(values)
    if not genes:
        raise InputError(f"{path}: no gene vectors found.")
    if header is not None and header[0] != len(genes):
        raise InputError(f"{path}: header (line {header[2]}) announces {header[0]} genes, "
                         f"the file has {len(genes)}.")
    return pd.DataFrame(np.vstack(rows), index=pd.Index(genes, name="gene"),
                        columns=[f"dim_{i}" for i in range(dim)])


def gene2vec_embeddings(vectors: pd.DataFrame, genes) -> tuple[list[str], np.ndarray]:
    """Rows of ``vectors`` for the screened ``genes`` that it has (sorted), as float64.

    Logs how many screened genes have no vector. Raises InputError when none has one.
    """
    genes = sorted(set(str(g) for g in genes))
    found = [g for g in genes if g in vectors.index]
    missing = len(genes) - len(found)
    log.info("gene2vec: %d of %d screened genes have a vector; %d missing%s", len(found), len(genes),
             missing, f" (e.g. {[g for g in genes if g not in vectors.index][:10]})" if missing else "")
    if not found:
        raise InputError(f"gene2vec: none of the {len(genes)} screened genes is in the vector file "
                         f"(its genes look like {list(vectors.index[:5])}). Check gene symbol naming.")
    return found, vectors.loc[found].to_numpy(dtype=np.float64)


def run_gene2vec(cells_path: str | os.PathLike, vectors_path: str | os.PathLike,
                 out_path: str | os.PathLike) -> None:
    """Rule `embed_gene2vec`: restrict the pretrained vectors to the screen's genes."""
    vectors = read_word2vec(vectors_path)
    log.info("gene2vec: %s has %d genes x %d dims", vectors_path, *vectors.shape)
    genes, values = gene2vec_embeddings(vectors, screened_genes(cells_path))
    write_embeddings(out_path, genes, values)
