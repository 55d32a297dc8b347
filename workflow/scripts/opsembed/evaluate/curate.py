"""Curating the ground truth: non-overlapping complexes of screened genes.

The rules, in order (every input (complex, gene) row that is not kept gets exactly one
row in the log, with one of the reasons below):

1. ``control``: the gene is the control label; ``not_screened``: the gene was not screened.
2. ``too_few_screened``: the complex keeps fewer than ``min_genes`` screened genes.
3. ``overlap``: complexes are made non-overlapping greedily. At each step the complex with
   the most still-available genes is accepted (ties: complex name in ascending string
   order) and takes all of them; the others lose those genes (logged as ``overlap``,
   "kept in complex X") and a complex left with fewer than ``min_genes`` genes is dropped
   (its remaining genes logged as ``overlap`` too). Genes are taken before the size cap,
   so a gene belongs to at most one complex of the screened-gene sets.
4. ``subsampled``: an accepted complex with more than ``max_genes`` genes keeps a random
   ``max_genes`` of them, drawn with ``numpy.random.default_rng([seed, crc32(name)])``
   from its sorted genes, so one complex's sample does not depend on the others.
5. ``max_complexes``: when set, only the first ``max_complexes`` accepted complexes (the
   largest, in the greedy order of step 3) are kept.
"""

from __future__ import annotations

import heapq
import logging
import zlib
from typing import Iterable

import numpy as np
import pandas as pd

from ..io.errors import InputError
from ..io.ground_truth import read_complexes

logger = logging.getLogger(__name__)

LOG_COLUMNS = ["complex", "gene", "reason", "detail"]


def curate_complexes(
    complexes: pd.DataFrame,
    screened_genes: Iterable[str],
    controls: str | None,
    min_genes: int,
    max_genes: int,
    max_complexes: int | None,
    seed: int,
    source: str = "ground truth",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Curate a long ``(complex, gene)`` table against the screened genes.

    Returns ``(curated, log)``: ``curated`` has string columns ``gene, complex``, one row
    per kept gene (each gene once), sorted by complex then gene; ``log`` has columns
    ``complex, gene, reason, detail``, one row per dropped input row (see the module
    docstring for the rules and reasons). Raises InputError, with the counts after each
    step, when fewer than 2 complexes remain (naming ``source``, e.g. the file), or when
    ``min_genes > max_genes``.
    """
    if min_genes > max_genes:
        raise InputError(f"evaluation.ground_truth: min_genes ({min_genes}) is larger than "
                         f"max_genes ({max_genes}). Lower min_genes or raise max_genes.")
    rows = complexes[["complex", "gene"]].astype(str).drop_duplicates(ignore_index=True)
    screened = {str(g) for g in screened_genes} - ({str(controls)} if controls else set())
    log: list[tuple[str, str, str, str]] = []

    is_control = rows["gene"] == str(controls) if controls else pd.Series(False, index=rows.index)
    unscreened = ~rows["gene"].isin(screened) & ~is_control
    log += [(c, g, "control", "the control label is never a complex member")
            for c, g in rows.loc[is_control, ["complex", "gene"]].itertuples(index=False)]
    log += [(c, g, "not_screened", "gene not among the screened genes")
            for c, g in rows.loc[unscreened, ["complex", "gene"]].itertuples(index=False)]
    members = {name: set(group) for name, group in
               rows.loc[~is_control & ~unscreened].groupby("complex")["gene"]}

    big = {}
    for name, genes in members.items():
        if len(genes) < min_genes:
            detail = f"{len(genes)} screened gene(s) < min_genes={min_genes}"
            log += [(name, g, "too_few_screened", detail) for g in sorted(genes)]
        else:
            big[name] = genes

    accepted = _non_overlapping(big, min_genes, log)

    curated: dict[str, list[str]] = {}
    for name, genes in accepted:
        genes = sorted(genes)
        if len(genes) > max_genes:
            rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
            keep = set(rng.choice(genes, size=max_genes, replace=False).tolist())
            detail = f"{len(genes)} genes > max_genes={max_genes} (seed {seed})"
            log += [(name, g, "subsampled", detail) for g in genes if g not in keep]
            genes = sorted(keep)
        curated[name] = genes

    if max_complexes is not None and len(accepted) > max_complexes:
        for name, _ in accepted[max_complexes:]:
            detail = f"beyond the {max_complexes} largest complexes (max_complexes)"
            log += [(name, g, "max_complexes", detail) for g in curated.pop(name)]

    counts = (f"{rows['complex'].nunique()} complex(es) in the input, {len(members)} with any "
              f"screened gene, {len(big)} with >= min_genes={min_genes} screened genes, "
              f"{len(accepted)} left after removing overlaps, {len(curated)} kept")
    if len(curated) < 2:
        raise InputError(f"{source}: fewer than 2 usable complexes ({counts}). Check that the "
                         "ground truth's gene symbols match the screen's, or lower "
                         "evaluation.ground_truth.min_genes.")
    logger.info("curated ground truth: %s; %d genes", counts, sum(map(len, curated.values())))

    out = pd.DataFrame([(g, name) for name in sorted(curated) for g in curated[name]],
                       columns=["gene", "complex"])
    log_df = pd.DataFrame(log, columns=LOG_COLUMNS)
    return out, log_df


def curate_ground_truth(path, screened_genes: Iterable[str], controls: str | None,
                        cfg: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``curate_complexes`` of the complex file at ``path`` with ``cfg`` (the config's
    ``evaluation.ground_truth``: min_genes, max_genes, max_complexes, seed). Used by the
    validate_inputs job (on the cell table's genes, before any long work), by
    curate_ground_truth (on the genes left in cells.h5) and by ``opsembed evaluate``.
    Raises InputError naming ``path`` with the counts when fewer than 2 complexes remain.
    """
    return curate_complexes(read_complexes(path), screened_genes, controls, cfg["min_genes"],
                            cfg["max_genes"], cfg["max_complexes"], cfg["seed"],
                            source=str(path))


def _non_overlapping(big: dict[str, set[str]], min_genes: int,
                     log: list) -> list[tuple[str, set[str]]]:
    """Greedy largest-first selection (lazy heap); appends overlap drops to ``log``."""
    heap = [(-len(genes), name) for name, genes in big.items()]
    heapq.heapify(heap)
    owner: dict[str, str] = {}
    accepted = []
    while heap:
        neg_size, name = heapq.heappop(heap)
        available = {g for g in big[name] if g not in owner}
        if len(available) == -neg_size:
            for g in available:
                owner[g] = name
            accepted.append((name, available))
        elif len(available) >= min_genes:
            heapq.heappush(heap, (-len(available), name))
        else:
            taken = sorted(big[name] - available)
            log += [(name, g, "overlap", f"kept in complex {owner[g]}") for g in taken]
            detail = (f"complex left with {len(available)} gene(s) < min_genes={min_genes} "
                      "after removing genes of larger complexes")
            log += [(name, g, "overlap", detail) for g in sorted(available)]
    for name, genes in accepted:
        lost = sorted(big[name] - genes)
        log += [(name, g, "overlap", f"kept in complex {owner[g]}") for g in lost]
    return accepted
