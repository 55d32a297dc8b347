"""Mean average precision of complex membership, computed with copairs.

Each gene is a query: all other evaluated genes are ranked by cosine similarity to it,
the genes of its own complex are the positives. Its AP is the mean of the precision at
the rank of each positive (sklearn's ``average_precision_score``; ties, which do not
occur with continuous embeddings, are broken by gene order in copairs). mAP is the mean
over genes. Significance uses copairs' permutation nulls (``null_size`` random rankings
per (n_positives, n_ranked) configuration, seeded), for the overall mAP and per complex
with Benjamini-Hochberg correction.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

ALPHA = 0.05
"""Significance threshold on the BH-corrected per-complex mAP p-values."""


def gene_average_precision(values: np.ndarray, genes, complexes,
                           null_size: int, seed: int) -> pd.DataFrame:
    """Per-gene AP of complex membership under cosine similarity.

    ``values`` is (n_genes, d) float; ``genes`` and ``complexes`` are length-n labels
    (every complex needs >= 2 genes). Returns one row per gene, in input order, with
    ``gene, complex, average_precision, n_pos_pairs, n_total_pairs, p_value`` (the gene's
    own permutation p-value with ``null_size`` and ``seed``).
    """
    from copairs.map import average_precision
    from copairs.map.average_precision import p_values

    logging.getLogger("copairs").setLevel(logging.WARNING)  # its INFO lines are per step
    meta = pd.DataFrame({"gene": list(map(str, genes)), "complex": list(map(str, complexes))})
    ap = average_precision(meta, np.asarray(values, dtype=np.float64),
                           pos_sameby=["complex"], pos_diffby=[],
                           neg_sameby=[], neg_diffby=["complex"], progress_bar=False)
    ap["p_value"] = p_values(ap, null_size=null_size, seed=seed, progress_bar=False)
    return ap[["gene", "complex", "average_precision", "n_pos_pairs", "n_total_pairs", "p_value"]]


def map_significance(ap: pd.DataFrame, null_size: int, seed: int) -> tuple[pd.DataFrame, float]:
    """mAP per complex and the p-value of the overall mAP, from a per-gene AP table.

    Returns ``(per_complex, overall_p)``: ``per_complex`` has ``complex,
    mean_average_precision, p_value, corrected_p_value, significant`` (corrected p <
    ``ALPHA``); ``overall_p`` compares the mean AP of all genes with the mean of their
    nulls (copairs ``mean_average_precision`` on a single all-genes group).
    """
    from copairs.map import mean_average_precision

    scores = ap.assign(normalized_average_precision=np.nan, _all="all")
    per_complex = mean_average_precision(scores, ["complex"], null_size=null_size,
                                         threshold=ALPHA, seed=seed, progress_bar=False)
    per_complex = per_complex.rename(columns={"below_corrected_p": "significant"})
    overall = mean_average_precision(scores, ["_all"], null_size=null_size,
                                     threshold=ALPHA, seed=seed, progress_bar=False)
    cols = ["complex", "mean_average_precision", "p_value", "corrected_p_value", "significant"]
    return per_complex[cols], float(overall["p_value"].iloc[0])
