"""The demo's second ground truth: a coarser grouping of its complexes.

Complexes are paired greedily by how alike their simulated phenotypes are: over all pairs
of complexes that have a phenotype, the cosine similarity of their effect vectors (one
entry per effect of :data:`opsembed.simulate.phenotypes.EFFECTS`, 0 where a complex names
none) is taken; pairs are accepted in descending similarity (ties: the pair's names in
ascending order) when neither complex is paired yet. A complex left unpaired (an odd one
out, or one without a phenotype) stays a group of its own. A group is named
``"A + B"`` (names in ascending order) and holds the genes of both complexes: a process
level view, as a coarser database (e.g. Reactome pathways next to CORUM) would give.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def phenotype_pairs(complexes: pd.DataFrame, phenotypes: dict[str, dict[str, float]],
                    effects: list[str]) -> pd.DataFrame:
    """The grouping of the module docstring of a long ``complex, gene`` frame.

    ``phenotypes``: ``{complex: {effect: value}}``; ``effects``: the effect names, the
    vectors' order. Returns a long frame ``complex, gene`` (str), groups in the order of
    their first complex in ``complexes``, genes in input order within each complex.
    """
    names = list(dict.fromkeys(complexes["complex"].astype(str)))
    known = [n for n in names if any(phenotypes.get(n, {}).values())]
    vectors = np.array([[float(phenotypes[n].get(e, 0.0)) for e in effects] for n in known]).reshape(len(known), len(effects))
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True) if len(known) else vectors
    sims = vectors @ vectors.T
    candidates = sorted(((-sims[i, j],) + tuple(sorted((known[i], known[j])))
                         for i in range(len(known)) for j in range(i + 1, len(known))))
    partner: dict[str, str] = {}
    for _, a, b in candidates:
        if a not in partner and b not in partner:
            partner[a], partner[b] = b, a
    group = {n: " + ".join(sorted({n, partner.get(n, n)})) for n in names}
    rows = complexes[["complex", "gene"]].astype(str)
    out = rows.assign(complex=rows["complex"].map(group), _first=rows["complex"].map(
        lambda n: min(names.index(n), names.index(partner.get(n, n)))))
    return (out.sort_values("_first", kind="stable").drop(columns="_first")
            .drop_duplicates(ignore_index=True))
