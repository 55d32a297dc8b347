"""Phenotypic activity of each gene, and the classes of the OOD benchmark chosen from it.

Activity (``phenotypic_activity``; the field's standard "is this knockout distinguishable
from the non-targeting controls?", copairs' mAP): per-cell engineered features are
standardised per plate against that plate's control cells (mean and SD of the controls;
columns constant or non-finite in the controls are dropped, missing values set to 0, the
control mean), then every cell of a gene is a query whose positives are the other cells of
its gene and whose negatives are the control cells, ranked by cosine similarity (copairs
``average_precision``, ``pos_sameby=[gene]``, ``neg_diffby=[is_control]``). A gene's mAP is
the mean AP of its cells; its p-value comes from copairs' permutation null
(``mean_average_precision``, ``null_size`` draws, seeded) and its q-value is the
Benjamini-Hochberg correction over all genes; ``significant`` is q < ``fdr``. At most
``max_cells`` random cells (seeded) of each gene and of the controls enter, so the cost is
bounded on a large screen. mAP near the null (about the fraction of positives in a
query's ranking) means no visible phenotype.

Classes (``choose_classes``), the rule that replaces a hand-written gene list:
1. ``ood.genes`` set: exactly those genes, reason ``ood.genes``.
2. Otherwise the significant genes, most active first (mAP descending, then name); of the
   genes of one curated complex (``ground_truth.tsv``; genes of one complex share a
   phenotype on a screen and cannot be told apart) only the most active is kept (the
   others: ``same complex as X``); a gene outside every curated complex is its own group.
3. At most ``ood.max_genes`` of them (the most active; the others ``max_genes``).
4. Fewer than 2 significant groups: the 2 most active groups' best genes are taken anyway
   (reason ``fallback``; a warning says the screen shows almost no phenotype).
With ``ood.labels: complex`` each chosen group is one class named after its complex (a
gene outside every complex keeps its name), and every *significant* gene of the group
enters it; with ``gene`` (default) a class is the chosen gene alone.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..io.errors import InputError

log = logging.getLogger(__name__)

ACTIVITY_COLUMNS = ["gene", "complex", "n_cells", "mean_average_precision", "p_value",
                    "corrected_p_value", "significant"]
"""Columns of activity.tsv (one row per non-control gene, most active first)."""
CLASS_COLUMNS = ["gene", "class", "complex", "mean_average_precision", "corrected_p_value", "chosen", "reason"]
"""Columns of the OOD classes table (one row per non-control gene; ``class`` empty when not chosen)."""
MIN_CLASSES = 2


def control_standardised(x: np.ndarray, plates, is_control) -> np.ndarray:
    """``x`` (n, F) float standardised per plate with that plate's control rows: (x - mean) / SD.

    Columns whose control SD is ~0 or non-finite on any plate are dropped; non-finite values
    become 0. A plate without control cells is an InputError. Returns float64 (n, F')."""
    x = np.asarray(x, dtype=np.float64).copy()
    x[~np.isfinite(x)] = np.nan
    plates, is_control = np.asarray(plates).astype(str), np.asarray(is_control, dtype=bool)
    out = np.zeros_like(x)
    keep = np.ones(x.shape[1], dtype=bool)
    for p in sorted(set(plates.tolist())):
        rows = plates == p
        ctrl = x[rows & is_control]
        if len(ctrl) < 2:
            raise InputError(f"phenotypic activity: plate {p!r} has {len(ctrl)} control cell(s); it needs "
                             f"at least 2 to standardise against (check the controls label).")
        with np.errstate(all="ignore"):
            mean, sd = np.nanmean(ctrl, axis=0), np.nanstd(ctrl, axis=0)
        keep &= np.isfinite(sd) & (sd > 1e-9)
        out[rows] = (x[rows] - mean) / np.where(sd > 1e-9, sd, 1.0)
    if not keep.any():
        raise InputError("phenotypic activity: every feature is constant in some plate's controls.")
    return np.nan_to_num(out[:, keep], nan=0.0, posinf=0.0, neginf=0.0)


def phenotypic_activity(x: np.ndarray, genes, plates, controls: str, complexes: dict[str, str],
                        null_size: int, fdr: float, max_cells: int, seed: int) -> pd.DataFrame:
    """Per-gene mAP against the controls (module docstring): ACTIVITY_COLUMNS, most active first.

    ``x`` (n, F) per-cell features; ``genes``, ``plates`` (n,) labels; ``controls`` the control
    label; ``complexes`` gene -> curated complex (genes not in it get ""). InputError when the
    controls are missing."""
    from copairs.map import average_precision, mean_average_precision

    logging.getLogger("copairs").setLevel(logging.WARNING)
    genes = np.asarray(genes).astype(str)
    is_control = genes == str(controls)
    if is_control.sum() < 2:
        raise InputError(f"phenotypic activity needs control cells (label {controls!r}); the cells have "
                         f"{int(is_control.sum())}. Set controls: to the non-targeting label.")
    z = control_standardised(x, plates, is_control)
    rng = np.random.default_rng([int(seed), 31])
    rows = []
    for g in sorted(set(genes.tolist())):
        r = np.flatnonzero(genes == g)
        rows.append(np.sort(rng.choice(r, size=max_cells, replace=False)) if len(r) > max_cells else r)
    rows = np.concatenate(rows)
    meta = pd.DataFrame({"gene": genes[rows], "is_control": is_control[rows]})
    ap = average_precision(meta, z[rows], pos_sameby=["gene"], pos_diffby=[], neg_sameby=[],
                           neg_diffby=["is_control"], progress_bar=False)
    ap = ap[~ap["is_control"]].dropna(subset=["average_precision"])
    if ap.empty:
        raise InputError("phenotypic activity: no gene has two cells to compare.")
    m = mean_average_precision(ap, ["gene"], null_size=int(null_size), threshold=float(fdr), seed=int(seed),
                               progress_bar=False)
    n_cells = pd.Series(genes[~is_control]).value_counts()
    out = pd.DataFrame({"gene": m["gene"].astype(str),
                        "complex": [complexes.get(g, "") for g in m["gene"].astype(str)],
                        "n_cells": [int(n_cells.get(g, 0)) for g in m["gene"].astype(str)],
                        "mean_average_precision": m["mean_average_precision"].astype(float),
                        "p_value": m["p_value"].astype(float),
                        "corrected_p_value": m["corrected_p_value"].astype(float)})
    out["significant"] = out["corrected_p_value"] < float(fdr)
    out = out.sort_values(["mean_average_precision", "gene"], ascending=[False, True], kind="mergesort")
    return out.reset_index(drop=True)[ACTIVITY_COLUMNS]


def choose_classes(activity: pd.DataFrame, genes: list[str] | None, max_genes: int | None,
                   labels: str) -> pd.DataFrame:
    """The OOD benchmark's classes from an activity table (module docstring): CLASS_COLUMNS,
    one row per gene of ``activity``, chosen rows first (in the order of ``activity``).

    ``genes``: ``ood.genes`` (explicit override; names absent from ``activity`` are an
    InputError); ``max_genes``: ``ood.max_genes``; ``labels``: ``gene`` or ``complex``."""
    if labels not in ("gene", "complex"):
        raise InputError(f"ood.labels must be 'gene' or 'complex', not {labels!r}.")
    act = activity.reset_index(drop=True).copy()
    act["complex"] = act["complex"].fillna("").astype(str)
    group = [c if c else g for g, c in zip(act["gene"], act["complex"])]
    act["class"], act["chosen"], act["reason"] = "", False, ""
    if genes is not None:
        unknown = sorted(set(map(str, genes)) - set(act["gene"]))
        if unknown:
            raise InputError(f"ood.genes names {unknown}, which are not screened genes of the cells file "
                             f"(or are the control label); remove them or fix their spelling.")
        pick = act["gene"].isin([str(g) for g in genes])
        act.loc[pick, "chosen"], act.loc[pick, "reason"] = True, "ood.genes"
        act.loc[~pick, "reason"] = "not in ood.genes"
    else:
        best: dict[str, int] = {}
        for i in act.index:
            if not act.at[i, "significant"]:
                act.at[i, "reason"] = f"not significant (q >= FDR; q = {act.at[i, 'corrected_p_value']:.3g})"
            elif group[i] in best:
                act.at[i, "reason"] = f"same complex as {act.at[best[group[i]], 'gene']}"
            else:
                best[group[i]] = i
        firsts = list(best.values())
        if len(firsts) < MIN_CLASSES:
            log.warning("OOD classes: %d significant gene group(s); taking the %d most active groups anyway "
                        "(this screen shows almost no phenotype against its controls)", len(firsts), MIN_CLASSES)
            seen: dict[str, int] = dict(best)
            for i in act.index:
                if len(seen) >= MIN_CLASSES:
                    break
                if group[i] not in seen:
                    seen[group[i]] = i
                    act.at[i, "reason"] = "fallback: among the most active, not significant"
            firsts = sorted(seen.values())
        cap = len(firsts) if max_genes is None else int(max_genes)
        for rank, i in enumerate(firsts):
            if rank < cap:
                act.at[i, "chosen"] = True
                if not act.at[i, "reason"]:
                    act.at[i, "reason"] = (f"most active significant gene of {act.at[i, 'complex']}"
                                           if act.at[i, "complex"] else "significant, in no curated complex")
            else:
                act.at[i, "reason"] = f"max_genes ({cap}) reached"
    chosen = act.index[act["chosen"]]
    if labels == "gene":
        act.loc[chosen, "class"] = act.loc[chosen, "gene"]
    else:
        classes = {group[i]: group[i] for i in chosen}
        for i in act.index:
            if group[i] in classes and (act.at[i, "chosen"] or (genes is None and act.at[i, "significant"])):
                act.at[i, "class"] = classes[group[i]]
                if not act.at[i, "chosen"]:
                    act.at[i, "reason"] = f"significant member of {group[i]} (ood.labels: complex)"
                    act.at[i, "chosen"] = True
    if int(act["chosen"].sum()) < 1:
        raise InputError("OOD classes: no gene was chosen; check ood.genes / ood.max_genes.")
    act = pd.concat([act[act["chosen"]], act[~act["chosen"]]])
    return act.reset_index(drop=True)[CLASS_COLUMNS]



def run_activity(features_path, curated_path, ood_cfg: dict | None, controls: str, activity_path,
                 classes_path) -> pd.DataFrame:
    """Rule ``phenotypic_activity``: activity.tsv from the engineered per-cell features
    (``features_path``, Parquet with gene, plate and feature columns) and the curated complexes
    (``curated_path``: gene, complex), then the OOD classes table (``classes_path``) by the
    ``ood`` block's ``genes``, ``max_genes``, ``labels`` and ``activity`` keys. Returns the classes."""
    from ..io.folds import ood_config
    from ..io.tables import read_table, write_table

    cfg = ood_config(ood_cfg)
    acfg = cfg["activity"]
    cells = read_table(features_path)
    missing = [c for c in ("gene", "plate") if c not in cells.columns]
    if missing:
        raise InputError(f"{features_path}: no column(s) {missing}; rerun embed_engineered.")
    meta = {"cell_id", "gene", "plate", "well", "batch"}
    x = cells[[c for c in cells.columns if c not in meta]].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    curated = read_table(curated_path, text={"gene", "complex"})
    complexes = dict(zip(curated["gene"].astype(str), curated["complex"].astype(str)))
    activity = phenotypic_activity(x, cells["gene"], cells["plate"], controls, complexes, acfg["null_size"],
                                   acfg["fdr"], acfg["max_cells"], cfg["seed"])
    classes = choose_classes(activity, cfg["genes"], cfg["max_genes"], cfg["labels"])
    log.info("phenotypic activity: %d of %d genes significant (q < %g); OOD classes: %s",
             int(activity["significant"].sum()), len(activity), acfg["fdr"],
             sorted(set(classes.loc[classes["chosen"], "class"])))
    write_table(activity, activity_path)
    write_table(classes, classes_path)
    return classes
