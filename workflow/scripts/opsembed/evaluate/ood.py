"""The out-of-distribution (OOD) protocol of IST (Pernice et al. 2023) on a screen's replicates.

Observational environments (OEs) are groups of cells named by obs columns, the label
being the column values joined by "/" (e.g. ``"P1/A1"`` for plate/well). Each OOD
*level* names such columns (config ``ood.levels``): level 1 holds out one well of a
plate, level 2 one plate, level 3 one value of a further column (e.g. a batch or series)
when the cell table has it. A level whose columns are missing, or that has a single OE,
is skipped. Folds: one per held-out OE of each level (at most ``max_folds`` of them,
chosen at random with ``ood.seed``), plus one IID fold, a random split stratified by gene.

Gene subset (``ood.genes``, ``ood.max_genes``; ``gene_subset``): the benchmark may classify
only some genes, e.g. so that a small demo screen has enough cells per class. Cells of
other genes are dropped from every fold, train and test alike; the folds themselves (the
held-out OEs) do not change.

Scoring (``scored_labels``): a test cell counts only when its gene has training cells
in that fold, since a classifier cannot name a gene it never saw. Macro-F1 is averaged
over the genes that have both test and training cells. In the demo's sparse design every
gene is on at least two plates, so every gene of a held-out plate is scored.

Metrics: macro-F1 (sklearn), scaled cLISI and bLISI (harmonypy ``compute_lisi``, scaled
as in scIB with the median), kNN BatchCV and the Harmony + kNN classifier variant.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

from ..io.errors import InputError

log = logging.getLogger(__name__)

PREDICTOR_KINDS = ("naive", "dr", "mixstyle", "stargan", "ist")
"""The gene predictors of the benchmark (``ood.predictors``)."""
INTERVENTIONAL = ("stargan", "ist")
"""Kinds trained through a fold's generator (its model file is an input)."""

OOD_DEFAULTS = {
    "seed": 0,
    "oe_columns": ["plate", "well"],
    "levels": [
        {"name": "well", "columns": ["plate", "well"], "max_folds": 1},  # demo: 1 of 6 wells
        {"name": "plate", "columns": ["plate"], "max_folds": None},
        {"name": "series", "columns": ["series"], "max_folds": None},
    ],
    "iid_test_fraction": 0.2,
    "batch_level": "plate",
    "knn_neighbors": 15,
    "harmony_pcs": 20,
    "lisi_perplexity": 30,
    "max_eval_cells": 20000,
    "genes": None,
    "max_genes": None,
}
"""Keys of the ``ood`` config block that define folds and metrics, with defaults."""

IID = "iid"
"""Fold id and level name of the IID split."""


def ood_config(cfg: dict | None) -> dict:
    """OOD_DEFAULTS updated by ``cfg`` (keys of other parts of the ``ood`` block are ignored)."""
    out = dict(OOD_DEFAULTS)
    out.update({k: v for k, v in (cfg or {}).items() if k in OOD_DEFAULTS})
    names = [lv["name"] for lv in out["levels"]]
    if IID in names or len(set(names)) != len(names):
        raise InputError(f"ood.levels: names {names} must be unique and not {IID!r}.")
    if out["max_genes"] is not None and (isinstance(out["max_genes"], bool) or int(out["max_genes"]) < 1
                                         or int(out["max_genes"]) != out["max_genes"]):
        raise InputError(f"ood.max_genes is {out['max_genes']!r}; use an integer >= 1 or null (all genes).")
    if out["genes"] is not None and (isinstance(out["genes"], str) or not len(out["genes"])):
        raise InputError(f"ood.genes is {out['genes']!r}; use a non-empty list of gene names or null (all genes).")
    if not 0 < float(out["iid_test_fraction"]) < 1:
        raise InputError(f"ood.iid_test_fraction is {out['iid_test_fraction']}; use a value in (0, 1).")
    return out


def oe_labels(obs: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """One OE label per row: the values of ``columns`` as str joined by "/" (object array)."""
    return obs[list(columns)].astype(str).agg("/".join, axis=1).to_numpy(dtype=object)


def active_levels(obs: pd.DataFrame, cfg: dict) -> list[dict]:
    """The levels of ``cfg['levels']`` whose columns ``obs`` has and that have >= 2 OEs."""
    out = []
    for level in cfg["levels"]:
        missing = [c for c in level["columns"] if c not in obs.columns]
        if missing:
            log.info("OOD level %r skipped: the cell table has no column(s) %s", level["name"], missing)
            continue
        if len(set(oe_labels(obs, level["columns"]))) < 2:
            log.info("OOD level %r skipped: a single OE", level["name"])
            continue
        out.append(level)
    return out


def fold_id(level: str, held_out: str) -> str:
    """``level-held_out`` with characters other than letters, digits, '.', '-' replaced by '_'."""
    return f"{level}-{re.sub(r'[^A-Za-z0-9.-]+', '_', held_out)}"


def held_out_oes(obs: pd.DataFrame, level: dict, seed: int, level_index: int) -> list[str]:
    """The OEs of ``level`` held out one per fold: all (sorted), or ``max_folds`` of them drawn
    with ``default_rng([seed, level_index])`` and kept in sorted order."""
    oes = sorted(set(oe_labels(obs, level["columns"])))
    k = level.get("max_folds")
    if k is not None and k < len(oes):
        rng = np.random.default_rng([int(seed), int(level_index)])
        oes = sorted(rng.choice(np.array(oes, dtype=object), size=int(k), replace=False).tolist())
    return oes


def list_folds(obs: pd.DataFrame, cfg: dict) -> list[str]:
    """Fold ids for a table with (at least) the OE columns of the levels: ``iid`` first, then
    one per held-out OE of each active level. Cheap: usable when Snakemake parses the
    workflow, on the screen's plate/well listing."""
    cfg = ood_config(cfg)
    ids = [IID]
    for i, level in enumerate(cfg["levels"]):
        if level in active_levels(obs, cfg):
            ids += [fold_id(level["name"], oe) for oe in held_out_oes(obs, level, cfg["seed"], i)]
    if len(set(ids)) != len(ids):
        raise InputError(f"OOD fold ids collide after sanitising OE names: {ids}. Rename plates/wells.")
    return ids


def gene_subset(genes, cfg: dict | None, controls: str | None) -> np.ndarray:
    """Which cells the OOD benchmark keeps: bool (n,) over the cells' gene labels ``genes``.

    ``ood.genes`` (list or null): only cells of these labels (the control label may be one
    of them); a name that no cell has is an InputError. ``ood.max_genes`` (int or null): of
    the remaining *library* genes (labels other than ``controls``), only the ``max_genes``
    with most cells, ties broken by name (ascending). The control label is never counted
    in ``max_genes``; it stays only when ``ood.genes`` names it. Both null: all True.
    """
    cfg = ood_config(cfg)
    genes = np.asarray(genes).astype(str)
    keep = np.ones(len(genes), dtype=bool)
    wanted = None if cfg["genes"] is None else [str(g) for g in cfg["genes"]]
    if wanted is not None:
        unknown = sorted(set(wanted) - set(genes.tolist()))
        if unknown:
            raise InputError(f"ood.genes names {unknown}, which no cell of the cells file has; "
                             f"remove them or fix their spelling.")
        keep &= np.isin(genes, wanted)
    if cfg["max_genes"] is not None:
        library = keep & (genes != controls)
        names, counts = np.unique(genes[library], return_counts=True)
        order = sorted(zip(names.tolist(), counts.tolist()), key=lambda t: (-t[1], t[0]))
        top = [g for g, _ in order[:int(cfg["max_genes"])]]
        listed_controls = wanted is not None and controls in wanted
        keep &= np.isin(genes, top) | (listed_controls & (genes == controls))
    return keep


def iid_split(genes: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, test_idx), sorted int64: per gene, floor(fraction * n) random cells go to
    test, always leaving at least one in training (genes with one cell stay in training)."""
    rng = np.random.default_rng([int(seed), 1000])
    test = []
    for g in sorted(set(genes)):
        rows = np.flatnonzero(genes == g)
        k = min(int(np.floor(fraction * len(rows))), len(rows) - 1)
        test.append(rng.choice(rows, size=k, replace=False) if k > 0 else rows[:0])
    test_idx = np.sort(np.concatenate(test)).astype(np.int64)
    train_idx = np.setdiff1d(np.arange(len(genes)), test_idx).astype(np.int64)
    return train_idx, test_idx


def ood_folds(obs: pd.DataFrame, cfg: dict | None, seed: int | None = None,
              controls: str | None = None) -> list[dict]:
    """All folds of the OOD protocol on a cell table.

    Returns dicts with ``fold_id`` (str), ``level`` (level name or "iid"), ``held_out``
    (OE label, "" for IID), ``columns`` (the level's OE columns), ``train_idx`` and
    ``test_idx`` (sorted int64 row numbers into ``obs``, disjoint). A held-out OE's cells are
    all in test and none in train. Only cells kept by ``gene_subset`` (``controls``: the
    control label) are in either; the IID split is drawn among them. ``seed`` overrides
    ``cfg['seed']``.
    """
    cfg = ood_config(cfg)
    if seed is not None:
        cfg["seed"] = seed
    genes = obs["gene"].astype(str).to_numpy(dtype=object)
    keep = gene_subset(genes, cfg, controls)
    kept = np.flatnonzero(keep)
    train, test = (kept[i] for i in iid_split(genes[kept], float(cfg["iid_test_fraction"]), cfg["seed"]))
    folds = [{"fold_id": IID, "level": IID, "held_out": "", "columns": [], "train_idx": train,
              "test_idx": test}]
    active = [lv["name"] for lv in active_levels(obs, cfg)]
    for i, level in enumerate(cfg["levels"]):
        if level["name"] not in active:
            continue
        labels = oe_labels(obs, level["columns"])
        for oe in held_out_oes(obs, level, cfg["seed"], i):
            mask = labels == oe
            folds.append({"fold_id": fold_id(level["name"], oe), "level": level["name"], "held_out": oe,
                          "columns": list(level["columns"]), "train_idx": np.flatnonzero(~mask & keep),
                          "test_idx": np.flatnonzero(mask & keep)})
    return folds


def get_fold(obs: pd.DataFrame, cfg: dict | None, fold: str, controls: str | None = None) -> dict:
    """The fold ``fold`` of ``ood_folds``; InputError listing the known ids when absent."""
    folds = ood_folds(obs, cfg, controls=controls)
    for f in folds:
        if f["fold_id"] == fold:
            return f
    raise InputError(f"OOD fold {fold!r} does not exist for this cell table; folds are "
                     f"{[f['fold_id'] for f in folds]}. Check ood.levels.")


def scored_labels(y_train, y_test) -> list:
    """Labels that have both training and test cells (sorted): the genes a fold scores."""
    return sorted(set(np.asarray(y_train).tolist()) & set(np.asarray(y_test).tolist()))


def macro_f1(y_true, y_pred, labels) -> float:
    """Unweighted mean over ``labels`` of per-label F1 (sklearn ``f1_score(average="macro")``).

    Predictions of other labels count as errors; a label never predicted has F1 0.
    """
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, labels=list(labels), average="macro", zero_division=0))


def scored_macro_f1(y_train, y_test, y_pred) -> dict:
    """Macro-F1 of the test cells whose gene has training cells, with the counts.

    Returns ``macro_f1``, ``accuracy`` (over scored cells), ``n_test_cells``,
    ``n_scored_cells`` and ``n_scored_genes``.
    """
    y_test, y_pred = np.asarray(y_test), np.asarray(y_pred)
    labels = scored_labels(y_train, y_test)
    keep = np.isin(y_test, labels)
    return {"macro_f1": macro_f1(y_test[keep], y_pred[keep], labels) if keep.any() else float("nan"),
            "accuracy": float((y_test[keep] == y_pred[keep]).mean()) if keep.any() else float("nan"),
            "n_test_cells": int(len(y_test)), "n_scored_cells": int(keep.sum()),
            "n_scored_genes": len(labels)}


def lisi(x: np.ndarray, labels, perplexity: float) -> np.ndarray:
    """Per-cell LISI of one label column (harmonypy ``compute_lisi``): float64 (n,) in [1, #labels].

    The perplexity is capped at (n - 1) / 3 so that its 3 * perplexity neighbours exist.
    """
    from harmonypy import compute_lisi

    perplexity = min(float(perplexity), (len(x) - 1) / 3)
    meta = pd.DataFrame({"label": np.asarray(labels).astype(str)})
    return compute_lisi(np.asarray(x, dtype=np.float64), meta, ["label"], perplexity)[:, 0]


def scaled_clisi(x: np.ndarray, genes, perplexity: float) -> float:
    """(G - median LISI over genes) / (G - 1), G = distinct genes: 1 = neighbours share the gene."""
    n = len(set(np.asarray(genes).tolist()))
    return float((n - np.median(lisi(x, genes, perplexity))) / (n - 1)) if n > 1 else float("nan")


def scaled_blisi(x: np.ndarray, batches, perplexity: float) -> float:
    """(median LISI over batches - 1) / (K - 1), K = distinct batches: 1 = batches fully mixed."""
    n = len(set(np.asarray(batches).tolist()))
    return float((np.median(lisi(x, batches, perplexity)) - 1) / (n - 1)) if n > 1 else float("nan")


def knn_predict(x_ref: np.ndarray, y_ref, x_query: np.ndarray, k: int) -> np.ndarray:
    """Majority label of the k nearest (Euclidean) reference cells for each query cell
    (sklearn KNeighborsClassifier, uniform weights; k capped at the reference size)."""
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=min(int(k), len(x_ref)))
    return knn.fit(x_ref, np.asarray(y_ref)).predict(x_query)


def knn_batchcv(x_ref: np.ndarray, y_ref, oe_ref, x_query: np.ndarray, y_query, oe_query, k: int) -> float:
    """kNN BatchCV: each query cell is classified by kNN on the reference cells of *other* OEs
    only (its own OE's reference cells removed); macro-F1 of the pooled predictions over the
    genes that occur both in the query and in some reference (``scored_labels``)."""
    y_ref, oe_ref, y_query, oe_query = map(np.asarray, (y_ref, oe_ref, y_query, oe_query))
    pred = np.empty(len(y_query), dtype=object)
    for oe in sorted(set(oe_query.tolist())):
        q, r = oe_query == oe, oe_ref != oe
        if not r.any():
            raise ValueError(f"knn_batchcv: OE {oe!r} is the only OE of the reference")
        pred[q] = knn_predict(x_ref[r], y_ref[r], x_query[q], k)
    return scored_macro_f1(y_ref, y_query, pred.astype(y_query.dtype))["macro_f1"]


def harmony_correct(x: np.ndarray, batches, n_pcs: int, seed: int) -> np.ndarray:
    """Harmony (harmonypy ``run_harmony``) on the first ``n_pcs`` principal components of
    ``x`` (n, d), batch variable ``batches`` (n,): corrected coordinates (n, min(n_pcs, d, n))."""
    from harmonypy import run_harmony
    from sklearn.decomposition import PCA

    n_pcs = int(min(n_pcs, x.shape[1], x.shape[0]))
    pcs = PCA(n_components=n_pcs, random_state=seed).fit_transform(np.asarray(x, dtype=np.float64))
    meta = pd.DataFrame({"batch": np.asarray(batches).astype(str)})
    out = run_harmony(pcs, meta, "batch", verbose=False, random_state=seed, ncores=1)
    return np.asarray(out.Z_corr, dtype=np.float64).reshape(len(x), n_pcs)


def harmony_knn(x_train: np.ndarray, y_train, b_train, x_test: np.ndarray, b_test, k: int, n_pcs: int,
                seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Harmony-kNN (stand-in for Symphony): Harmony on train and test features together with
    their OEs as batches, then kNN (``k``) on the corrected training cells predicts the test
    cells. Returns (predictions (n_test,), corrected train, corrected test)."""
    z = harmony_correct(np.concatenate([x_train, x_test]),
                        np.concatenate([np.asarray(b_train), np.asarray(b_test)]), n_pcs, seed)
    z_train, z_test = z[:len(x_train)], z[len(x_train):]
    return knn_predict(z_train, y_train, z_test, k), z_train, z_test
