"""The folds of the out-of-distribution (OOD) protocol of IST (Pernice et al. 2023) on a
screen's replicates: which cells train and which test each gene predictor.

Observational environments (OEs) are groups of cells named by obs columns, the label
being the column values joined by "/" (e.g. ``"P1/A1"`` for plate/well). Each OOD
*level* names such columns (config ``ood.levels``): level 1 holds out one well of a
plate, level 2 one plate, level 3 one value of a further column (e.g. a batch or series)
when the cell table has it. A level whose columns are missing, or that has a single OE,
is skipped. Folds: one per held-out OE of each level (at most ``max_folds`` of them,
chosen at random with ``ood.seed``), plus one IID fold, a random split stratified by gene.

Classes (``classes``): the benchmark classifies the cells of the genes a classes table
chooses (``results/ood/classes.tsv``, written by ``opsembed.evaluate.activity`` from each
gene's phenotypic activity, or from ``ood.genes``), each cell labelled by its gene's class
(the gene itself, or its complex with ``ood.labels: complex``). Cells of other genes are
dropped from every fold, train and test alike; the folds themselves (the held-out OEs) do
not change.

Below ``train`` (the fold trainers read it) and ``evaluate`` (the metrics,
``opsembed.evaluate.ood``); Snakemake lists the folds with it at parse time.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

from .config_rules import IID
from .errors import InputError
from .schema import block_config, schema_of

log = logging.getLogger(__name__)

PREDICTOR_KINDS = tuple(schema_of("ood.predictors")["items"]["enum"])
"""The gene predictors of the benchmark: the values ``ood.predictors`` may hold (naive, dr,
mixstyle, stargan, ist)."""
INTERVENTIONAL = ("stargan", "ist")
"""Kinds trained through a fold's generator (its model file is an input)."""

FOLD_KEYS = ("seed", "oe_columns", "levels", "iid_test_fraction", "batch_level")
"""Keys of the ``ood`` block that define the folds: what a fold's training job reads (with
``batch_level``, which a cross-key rule ties to the names of ``levels``). Which genes
enter is the classes file, an input of those jobs; the keys that choose it
(``CLASS_KEYS``) are read by the job that writes it."""
CLASS_KEYS = ("seed", "genes", "max_genes", "labels", "activity")
"""Keys of the ``ood`` block that choose the benchmark's classes (rule ``ood_classes``)."""


def ood_config(cfg: dict | None) -> dict:
    """The ``ood`` block: schema defaults updated by ``cfg`` (a whole block or some of its
    keys), checked against the schema and the cross-key rules; InputError naming the key."""
    return block_config("ood", cfg)


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
    k = level["max_folds"]
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


def read_classes(path) -> dict[str, str]:
    """gene -> class of the chosen rows of a classes table (``opsembed.evaluate.activity``'s
    CLASS_COLUMNS: gene, class, ..., chosen); InputError naming the file when it has none."""
    from .tables import read_table

    t = read_table(path, text={"gene", "class", "chosen"})
    chosen = t[t["chosen"].astype(str).str.lower().isin(["true", "1"])]
    if chosen.empty:
        raise InputError(f"{path}: no chosen class; rerun the rule ood_classes (check ood.genes).")
    return dict(zip(chosen["gene"].astype(str), chosen["class"].astype(str)))


def gene_subset(genes, classes: dict[str, str] | None) -> np.ndarray:
    """Which cells the OOD benchmark keeps: bool (n,) over the cells' gene labels ``genes``:
    those whose gene is a key of ``classes`` (gene -> class); all True when it is None. A
    chosen gene that no cell has is an InputError."""
    genes = np.asarray(genes).astype(str)
    if classes is None:
        return np.ones(len(genes), dtype=bool)
    unknown = sorted(set(classes) - set(genes.tolist()))
    if unknown:
        raise InputError(f"the OOD classes name genes {unknown} that no cell of the cells file has; "
                         f"rerun the rule ood_classes on this cells file.")
    return np.isin(genes, list(classes))


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
              classes: dict[str, str] | None = None) -> list[dict]:
    """All folds of the OOD protocol on a cell table.

    Returns dicts with ``fold_id`` (str), ``level`` (level name or "iid"), ``held_out``
    (OE label, "" for IID), ``columns`` (the level's OE columns), ``train_idx`` and
    ``test_idx`` (sorted int64 row numbers into ``obs``, disjoint). A held-out OE's cells are
    all in test and none in train. Only cells kept by ``gene_subset`` (``classes``: gene ->
    class, None = every cell) are in either; the IID split is drawn among them. ``seed`` overrides
    ``cfg['seed']``.
    """
    cfg = ood_config(cfg)
    if seed is not None:
        cfg["seed"] = seed
    genes = obs["gene"].astype(str).to_numpy(dtype=object)
    keep = gene_subset(genes, classes)
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


def get_fold(obs: pd.DataFrame, cfg: dict | None, fold: str, classes: dict[str, str] | None = None) -> dict:
    """The fold ``fold`` of ``ood_folds``; InputError listing the known ids when absent."""
    folds = ood_folds(obs, cfg, classes=classes)
    for f in folds:
        if f["fold_id"] == fold:
            return f
    raise InputError(f"OOD fold {fold!r} does not exist for this cell table; folds are "
                     f"{[f['fold_id'] for f in folds]}. Check ood.levels.")
