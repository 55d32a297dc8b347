"""One method's embeddings against the curated complexes, end to end; the combined table.

:func:`evaluate_embeddings` writes into its output folder:

- ``metrics.tsv``: one row (columns :data:`METRIC_COLUMNS`; ``ground_truth`` names the
  ground truth);
- ``ap_per_gene.tsv`` (gene, complex, average_precision, n_pos_pairs, n_total_pairs,
  p_value, corrected_p_value, significant: BH over genes) and ``map_per_complex.tsv``
  (complex, mean_average_precision, p_value, corrected_p_value, significant);
- ``kmeans_runs.tsv``: the runs at k = number of complexes (k, run, seed, purity, nmi,
  ari, inertia, n_iter);
- ``ksweep.tsv`` (method, k, n_runs, purity/nmi/ari mean and sd) and ``ksweep.png``;
- ``heatmap.png`` (clustered gene x gene cosine similarity) and ``complex_ap.png`` (mean
  AP per complex), see :mod:`opsembed.evaluate.gene_figures`.

The figures are left out with ``figures=False``. :func:`evaluate_ground_truths`
scores one method against several ground truths: the first (primary) one as above in the
output folder, each further one without figures in ``ground_truths/<name>/`` below it, and
all rows (primary first) in the folder's ``metrics.tsv``.

:func:`write_gene_umaps` draws the UMAP of each method (``umap.tsv``: gene, complex, umap_1,
umap_2, and ``umap.png``) on the genes :func:`evaluated_genes` keeps, all methods in one
process (rule gene_umaps): umap-learn compiles its numba code afresh in every process (about
15 s on one core), and the drawing itself takes well under a second.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..io.embeddings import check_embeddings
from ..io.errors import InputError
from ..io.figures import save_figure
from ..io.tables import read_table, write_table
from .average_precision import gene_average_precision, map_significance
from .clustering import SCORES, k_sweep, summarise
from .gene_figures import complex_ap, gene_significance, plot_complex_ap, plot_similarity_heatmap
from .recall import EFAAR_PERCENTILE, known_relationship_recall, recall_chance
from .umap_plot import plot_umap, umap_coordinates

logger = logging.getLogger(__name__)

METRIC_COLUMNS = [
    "method", "ground_truth", "mAP", "purity_mean", "purity_sd", "nmi_mean", "nmi_sd", "ari_mean",
    "ari_sd", "recall", "recall_chance", "recall_10_90", "recall_10_90_chance", "n_genes_embedded", "n_genes_evaluated", "n_complexes", "n_genes_ignored",
    "n_genes_curated", "coverage", "coverage_warning", "map_p_value", "map_fraction_significant",
    "k", "n_runs", "kmeans_seed", "map_null_size", "map_seed", "recall_percentile", "umap_seed",
]
"""Columns of ``metrics.tsv``, in order. ``recall`` is at ``recall_percentile`` (both tails),
``recall_10_90`` at EFAAR's 10th/90th percentiles; ``*_chance`` is a random embedding's."""

MIN_COVERAGE = 0.5
"""Below this fraction of curated genes present in the embedding, a warning is raised."""


def evaluated_genes(embeddings: pd.DataFrame, curated: pd.DataFrame, method: str,
                    controls: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """The genes a method is scored on: (values float64 (n, d), genes (n,), complexes (n,),
    counts), rows sorted by (complex, gene).

    Checks ``embeddings`` (InputError on duplicate genes, NaN/inf or all-zero rows), drops
    the ``controls`` row, keeps the curated genes present and, of those, the complexes with
    at least 2 of them; InputError when fewer than 2 complexes remain. ``counts`` holds
    n_genes_embedded, n_genes_evaluated, n_complexes, n_genes_ignored, n_genes_curated,
    coverage and coverage_warning (coverage below ``MIN_COVERAGE``, also logged).
    """
    frame = embeddings.copy()
    frame.index = frame.index.astype(str)
    check_embeddings(frame.rename_axis("gene").reset_index(), f"embeddings of {method!r}")
    if controls is not None:
        frame = frame.drop(index=str(controls), errors="ignore")
    zero = np.linalg.norm(frame.to_numpy(dtype=np.float64), axis=1) == 0
    if zero.any():
        raise InputError(f"embeddings of {method!r}: gene {frame.index[zero][0]!r} has an all-zero "
                         f"vector ({int(zero.sum())} such gene(s)); cosine similarity is undefined. "
                         "Drop those genes.")
    curated = curated[["gene", "complex"]].astype(str)
    present = curated[curated["gene"].isin(frame.index)]
    sizes = present["complex"].value_counts()
    evaluated = present[present["complex"].isin(sizes.index[sizes >= 2])]
    evaluated = evaluated.sort_values(["complex", "gene"], ignore_index=True)
    n_curated = len(curated)
    coverage = len(present) / n_curated if n_curated else 0.0
    counts = dict(n_genes_embedded=len(frame), n_genes_evaluated=len(evaluated),
                  n_complexes=int(evaluated["complex"].nunique()),
                  n_genes_ignored=int((~frame.index.isin(curated["gene"])).sum()),
                  n_genes_curated=n_curated, coverage=coverage,
                  coverage_warning=bool(coverage < MIN_COVERAGE))
    if counts["coverage_warning"]:
        logger.warning("%s: only %d of %d curated genes (%.0f%%) have an embedding; the scores "
                       "rest on few genes.", method, len(present), n_curated, 100 * coverage)
    if counts["n_complexes"] < 2:
        raise InputError(f"embeddings of {method!r}: only {counts['n_complexes']} complex(es) have "
                         f">= 2 embedded genes ({len(present)} of {n_curated} curated genes are in "
                         "the embedding). Check that gene names match the ground truth.")
    values = frame.loc[evaluated["gene"]].to_numpy(dtype=np.float64)
    return values, evaluated["gene"].to_numpy(), evaluated["complex"].to_numpy(), counts


def write_gene_umaps(embeddings: dict[str, pd.DataFrame], curated: pd.DataFrame, umap_cfg: dict,
                     out_dirs: dict[str, str | os.PathLike], controls: str | None = None) -> None:
    """For each method of ``embeddings`` ({method: embedding frame}), the 2-D UMAP (cosine,
    ``umap_cfg``: the ``evaluation.umap`` block) of its :func:`evaluated_genes`, written to
    ``out_dirs[method]`` as ``umap.tsv`` (gene, complex, umap_1, umap_2) and ``umap.png``."""
    for method, frame in embeddings.items():
        values, genes, labels, counts = evaluated_genes(frame, curated, method, controls)
        t0 = time.perf_counter()
        coords = umap_coordinates(values, umap_cfg["n_neighbors"], umap_cfg["min_dist"], umap_cfg["seed"])
        table = pd.DataFrame({"gene": genes, "complex": labels, "umap_1": coords[:, 0], "umap_2": coords[:, 1]})
        out = Path(out_dirs[method])
        write_table(table, out / "umap.tsv")
        plot_umap(table, out / "umap.png", f"{method}: {len(genes)} genes, {counts['n_complexes']} complexes")
        logger.info("%s: UMAP of %d genes in %.1f s", method, len(genes), time.perf_counter() - t0)


def evaluate_embeddings(embeddings: pd.DataFrame, curated: pd.DataFrame, cfg: dict, method: str,
                        out_dir: str | os.PathLike, controls: str | None = None,
                        threads: int | None = None, ground_truth: str | None = None,
                        figures: bool = True) -> pd.Series:
    """Score one method's gene embeddings against curated complexes; write ``out_dir``.

    ``embeddings``: float frame indexed by gene (one row per gene, no NaN); rows of the
    ``controls`` label are dropped, genes absent from ``curated`` are ignored (counted in
    ``n_genes_ignored``). ``curated``: columns ``gene, complex``, as from
    :func:`opsembed.evaluate.curate.curate_complexes`. Evaluation runs on the curated genes
    present in the embedding; complexes left with fewer than 2 of them are dropped.
    When fewer than ``MIN_COVERAGE`` of the curated genes are present a warning is logged
    and ``coverage_warning`` is True. ``cfg`` is the config's ``evaluation`` block
    (``map``, ``kmeans``, ``recall`` are used; ``umap.seed`` is recorded). ``threads`` sets
    torch's thread count for the k-means (None: leave it). ``ground_truth`` is the ground
    truth's name, written in the row's ``ground_truth`` column; ``figures=False`` skips every
    figure (the tables are written); the UMAP is :func:`write_gene_umaps`'s. Returns the
    metrics row (index :data:`METRIC_COLUMNS`). Raises InputError on duplicate genes, NaN/inf
    or all-zero rows, or when fewer than 2 complexes can be evaluated.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    values, genes, labels, counts = evaluated_genes(embeddings, curated, method, controls)
    truth = pd.factorize(labels, sort=True)[0]
    logger.info("%s: %d genes in %d complexes (%d embedded genes ignored)", method, len(genes),
                counts["n_complexes"], counts["n_genes_ignored"])

    m, km, rc, um = cfg["map"], cfg["kmeans"], cfg["recall"], cfg["umap"]
    ap = gene_average_precision(values, genes, labels, m["null_size"], m["seed"])
    per_complex, map_p = map_significance(ap, m["null_size"], m["seed"])
    t1 = time.perf_counter()

    k = counts["n_complexes"]
    sweep_ks = list(range(km["k_min"], min(km["k_max"], len(genes) - 1) + 1))
    with _torch_threads(threads):
        runs = k_sweep(values, truth, sorted(set(sweep_ks) | {k}), km["n_runs"],
                       km["max_iter"], km["seed"])
    main = runs[runs["k"] == k].reset_index(drop=True)
    sweep = summarise(runs[runs["k"].isin(sweep_ks)])
    sweep.insert(0, "method", method)
    t2 = time.perf_counter()

    recall = known_relationship_recall(values, labels, rc["percentile"])
    recall_10_90 = known_relationship_recall(values, labels, EFAAR_PERCENTILE)
    t3 = time.perf_counter()

    row = {"method": method, "ground_truth": ground_truth,
           "mAP": float(ap["average_precision"].mean())}
    for s in SCORES:
        row[f"{s}_mean"] = float(main[s].mean())
        row[f"{s}_sd"] = float(main[s].std(ddof=0))
    row.update(recall=recall, recall_chance=recall_chance(rc["percentile"]), recall_10_90=recall_10_90,
               recall_10_90_chance=recall_chance(EFAAR_PERCENTILE))
    row.update(counts)
    row.update(map_p_value=map_p,
               map_fraction_significant=float(per_complex["significant"].mean()),
               k=k, n_runs=km["n_runs"], kmeans_seed=km["seed"], map_null_size=m["null_size"],
               map_seed=m["seed"], recall_percentile=rc["percentile"], umap_seed=um["seed"])
    metrics = pd.Series(row)[METRIC_COLUMNS]

    write_table(gene_significance(ap), out / "ap_per_gene.tsv")
    write_table(per_complex, out / "map_per_complex.tsv")
    write_table(main, out / "kmeans_runs.tsv")
    write_table(sweep, out / "ksweep.tsv")
    if figures:
        plot_ksweep([sweep], out / "ksweep.png", marks=[k])
        plot_similarity_heatmap(values, genes, labels, out / "heatmap.png",
                                f"{method}: cosine similarity of {len(genes)} genes, clustered")
        plot_complex_ap(complex_ap(ap, per_complex), out / "complex_ap.png",
                        f"{method}: mean AP per complex (genes)",
                        chance=float((ap["n_pos_pairs"] / ap["n_total_pairs"]).mean()))
    write_table(metrics.to_frame().T, out / "metrics.tsv")
    logger.info("%s evaluated against %s in %.2f s (mAP %.2f s, %d k-means runs %.2f s, recall "
                "%.2f s): mAP %.3f, purity %.3f, NMI %.3f, ARI %.3f, recall %.3f", method, ground_truth,
                time.perf_counter() - t0, t1 - t0, len(runs), t2 - t1, t3 - t2, row["mAP"],
                row["purity_mean"], row["nmi_mean"], row["ari_mean"], recall)
    return metrics


def evaluate_ground_truths(embeddings: pd.DataFrame, curated: dict[str, pd.DataFrame], cfg: dict,
                           method: str, out_dir: str | os.PathLike, controls: str | None = None,
                           threads: int | None = None) -> pd.DataFrame:
    """:func:`evaluate_embeddings` of one method against each ground truth of ``curated``
    (``{name: curated table}``, ordered, primary first): the primary one with figures into
    ``out_dir``, each further one without figures into ``out_dir/ground_truths/<name>``.
    Writes and returns the metrics of all of them, one row per ground truth in the order of
    ``curated``, as ``out_dir/metrics.tsv``. Raises ValueError when ``curated`` is empty.
    """
    if not curated:
        raise ValueError("evaluate_ground_truths: no ground truth given")
    rows = []
    for i, (name, table) in enumerate(curated.items()):
        where = Path(out_dir) if i == 0 else Path(out_dir) / "ground_truths" / name
        rows.append(evaluate_embeddings(embeddings, table, cfg, method, where, controls=controls,
                                        threads=threads, ground_truth=name, figures=i == 0))
    metrics = pd.DataFrame(rows).reset_index(drop=True)
    write_table(metrics, Path(out_dir) / "metrics.tsv")
    return metrics


def plot_ksweep(sweeps: list[pd.DataFrame], path: str | os.PathLike, marks=()) -> None:
    """Purity, NMI and ARI against k, mean line and shaded +/- sd, one line per method.

    ``sweeps``: tables as in ``ksweep.tsv`` (column ``method`` names the line); ``marks``:
    k values drawn as dashed vertical lines (the number of complexes).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharex=True)
    for ax, score, name in zip(axes, SCORES, ["purity", "NMI", "ARI"]):
        for sweep in sweeps:
            if len(sweep) == 0:
                continue
            mean, sd = sweep[f"{score}_mean"], sweep[f"{score}_sd"]
            line, = ax.plot(sweep["k"], mean, label=str(sweep["method"].iloc[0]), lw=1.5)
            ax.fill_between(sweep["k"], mean - sd, mean + sd, color=line.get_color(), alpha=0.2)
        for k in sorted(set(marks)):
            ax.axvline(k, color="grey", ls="--", lw=0.8)
        ax.set_xlabel("k (clusters)")
        ax.set_title(name)
    if not any(len(s) for s in sweeps):
        axes[1].text(0.5, 0.5, "no k in [k_min, k_max] below the number of genes",
                     ha="center", va="center", transform=axes[1].transAxes)
    else:
        axes[-1].legend(fontsize=8, frameon=False)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def combine_metrics(metric_paths, ksweep_paths, out_tsv: str | os.PathLike,
                    out_png: str | os.PathLike) -> pd.DataFrame:
    """The ``metrics.tsv`` files in one table (one row per method and ground truth) and the
    combined k-sweep figure (the primary ground truth's sweeps, ``ksweep_paths``).

    Rows keep the order of ``metric_paths`` and, within a file, its order; a (method,
    ground truth) pair appearing twice raises InputError. Returns the table written to
    ``out_tsv``.
    """
    table = pd.concat([read_table(p) for p in metric_paths], ignore_index=True)
    keys = ["method"] + (["ground_truth"] if "ground_truth" in table.columns else [])
    dup = table.duplicated(keys)
    if dup.any():
        first = table.loc[dup, keys].iloc[0].tolist()
        raise InputError(f"combine_metrics: {dict(zip(keys, first))} appears more than once in the "
                         "metrics files.")
    write_table(table, out_tsv)
    sweeps = [read_table(p) for p in ksweep_paths]
    names = table["ground_truth"].astype(str) if "ground_truth" in keys else pd.Series("", index=table.index)
    primary = table[names == names.iloc[0]]
    plot_ksweep(sweeps, out_png, marks=primary["k"].astype(int).tolist())
    return table


@contextlib.contextmanager
def _torch_threads(threads: int | None):
    """Temporarily set torch's intra-op thread count (no-op for None)."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)
