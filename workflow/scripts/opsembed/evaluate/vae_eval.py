"""The VAE's evaluation (rule evaluate_vae): disentanglement (Fig. 4 analogue), the Table-2
analogue and the latent x factor mutual-information heat maps. Torch-free.

Inputs are the codes tables of ``train.vae_extract`` (columns z_0 .. z_{d-1} plus metadata),
per variant (``pixels``; ``features`` when the deep-features variant ran).

- Disentanglement rows: (variant, model, dataset) with model in source / random on the
  Source dataset (factors: the value indices, discrete) and finetuned / source / random on
  the screen against the simulator's true per-cell factors (``factors.tsv``, joined on
  ``cell_id``; the Source factors present there, each cut into ``factor_bins`` quantile bins
  for MIG, regressed on their values for DCI). Screen rows need that table (the demo).
- Classification rows: (variant, finetuning) x classifier x seed: accuracy of predicting a
  cell's complex (the curated ground truth of rule curate_ground_truth, columns gene,
  complex; controls and genes outside every complex left out) from its code, held-out cells.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from ..io.atomic import atomic_path
from ..io.errors import InputError
from ..io.schema import block_config
from ..io.tables import read_table, write_table
from .disentangle import classify_codes, dci, discretize, mig, summarise_accuracy

log = logging.getLogger(__name__)


def _codes(table: pd.DataFrame) -> np.ndarray:
    return table[[c for c in table.columns if c.startswith("z_")]].to_numpy(dtype=float)


def screen_factor_table(codes: pd.DataFrame, factors: pd.DataFrame, names: list[str], path) -> pd.DataFrame:
    """The factors ``names`` of every row of ``codes``, in its order (joined on cell_id)."""
    present = [n for n in names if n in factors.columns]
    if not present or "cell_id" not in factors.columns:
        raise InputError(f"{path}: needs cell_id and some of the Source factors {names}.")
    joined = codes[["cell_id"]].merge(factors[["cell_id"] + present], on="cell_id", how="left")
    if joined[present].isna().any().any():
        raise InputError(f"{path}: no factors for {int(joined[present[0]].isna().sum())} cells of the screen.")
    return joined[present]


def score(codes: np.ndarray, factors: np.ndarray, discrete: bool, cfg: dict, seed: int) -> dict:
    """MIG and DCI of one code table; continuous factors are binned for MIG."""
    binned = factors.astype(np.int64) if discrete else discretize(factors, int(cfg["factor_bins"]), "quantile")
    m = mig(codes, binned, int(cfg["mig_bins"]))
    d = dci(codes, factors if not discrete else binned, discrete=discrete, seed=seed)
    return {"mig": m["mig"], **{k: d[k] for k in ("disentanglement", "completeness", "informativeness")},
            "mi_normalised": m["mi"] / np.where(m["entropy"] > 0, m["entropy"], 1.0)}


def cell_complexes(codes: pd.DataFrame, curated, controls: str) -> pd.Series:
    """Each cell's complex from the curated table ``curated`` (TSV: gene, complex; a gene
    listed twice takes its first row), NaN for controls and genes outside every complex."""
    complexes = read_table(curated)
    missing = [c for c in ("gene", "complex") if c not in complexes.columns]
    if missing:
        raise InputError(f"{curated}: missing column(s) {missing}; expected the curated ground truth "
                         f"(gene, complex) of rule curate_ground_truth, has {list(complexes.columns)}.")
    complexes = complexes.astype({"gene": str, "complex": str}).drop_duplicates("gene")
    lookup = dict(zip(complexes["gene"], complexes["complex"]))
    return codes["gene"].map(lambda g: np.nan if g == controls else lookup.get(g, np.nan))


def evaluate_vae(codes: dict, ground_truth, controls: str, cfg: dict, seed: int, out: dict,
                 factors_path: str | os.PathLike | None = None) -> None:
    """``codes``: {variant: {key: codes TSV path}} with keys as in ``train.vae_extract``;
    ``ground_truth``: the curated table (gene, complex); ``cfg``: (part of) ``methods.vae``,
    the schema's defaults fill the rest.

    Writes ``out["disentanglement"]`` (variant, model, dataset, mig, disentanglement,
    completeness, informativeness), ``out["classification"]`` (variant, finetuning,
    classifier, accuracy, sd, chance, n_seeds), ``out["classification_runs"]`` (per seed)
    and ``out["mi"]`` (PNG heat maps: the Source model on Source, the fine-tuned one on the
    screen when factors are given).
    """
    cfg = block_config("methods.vae", cfg)
    factors = read_table(factors_path) if factors_path else None
    dis_rows, runs, maps = [], [], []
    seeds = tuple(range(seed, seed + int(cfg["eval_seeds"])))
    for variant, paths in codes.items():
        tables = {k: read_table(p) for k, p in paths.items()}
        names = [c[:-len("_index")] for c in tables["source_source"].columns if c.endswith("_index")]
        for model in ("source", "random"):
            t = tables[f"{model}_source"]
            s = score(_codes(t), t[[f"{n}_index" for n in names]].to_numpy(), True, cfg, seed)
            dis_rows.append({"variant": variant, "model": model, "dataset": "source", **s})
            if model == "source":
                maps.append((f"{variant}: Source model on Source", names, s["mi_normalised"]))
        if factors is not None:
            for model in ("finetuned", "source", "random"):
                t = tables[f"{model}_screen"]
                f = screen_factor_table(t, factors, names, factors_path)
                s = score(_codes(t), f.to_numpy(dtype=float), False, cfg, seed)
                dis_rows.append({"variant": variant, "model": model, "dataset": "screen", **s})
                if model == "finetuned":
                    maps.append((f"{variant}: fine-tuned model on the screen", list(f.columns), s["mi_normalised"]))
        for model, tuned in (("source", "without"), ("finetuned", "with")):
            t = tables[f"{model}_screen"]
            labels = cell_complexes(t, ground_truth, controls)
            keep = labels.notna().to_numpy()
            table = classify_codes(_codes(t)[keep], labels[keep].to_numpy(), seeds)
            runs.append(table.assign(variant=variant, finetuning=tuned))
    dis = pd.DataFrame(dis_rows)
    write_table(dis.drop(columns="mi_normalised").round(4), out["disentanglement"])
    runs_df = pd.concat(runs, ignore_index=True)[["variant", "finetuning", "classifier", "seed", "accuracy", "chance"]]
    write_table(runs_df.round(4), out["classification_runs"])
    write_table(summarise_accuracy(runs_df, ["variant", "finetuning"]).round(4), out["classification"])
    mi_heatmaps(maps, out["mi"])
    log.info("VAE evaluation:\n%s", dis.drop(columns="mi_normalised").round(3).to_string(index=False))


def mi_heatmaps(maps: list, path) -> None:
    """PNG: one heat map per (title, factor names, MI / H(factor) (d, k)) entry, latents as
    rows, each panel coloured from 0 to its own maximum."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(maps), figsize=(4.2 * len(maps), 4.6), dpi=100, squeeze=False)
    for ax, (title, names, mi) in zip(axes[0], maps):
        im = ax.imshow(mi, cmap="viridis", vmin=0, vmax=max(float(mi.max()), 1e-6), aspect="auto")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(mi.shape[0]))
        ax.set_yticklabels([f"z_{i}" for i in range(mi.shape[0])], fontsize=7)
        ax.set_xlabel("true factor", fontsize=8)
        ax.set_ylabel("latent", fontsize=8)
        ax.set_title(title, fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.046, label="MI / H(factor)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
