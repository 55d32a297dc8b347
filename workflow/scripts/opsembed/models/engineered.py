"""The `engineered` baseline: classical per-cell features -> PCA -> per-gene mean."""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from ..io.cells import feature_columns
from ..io.embeddings import write_embeddings
from ..io.errors import InputError
from ..io.h5 import read_attrs, read_obs
from ..io.schema import block_config
from ..io.tables import write_table
from .features import features_from_h5

log = logging.getLogger(__name__)

META = ["cell_id", "gene", "plate", "well", "batch"]
"""obs columns copied in front of the per-cell feature table (those present)."""


def engineered_embeddings(
    features: pd.DataFrame,
    genes_per_cell,
    pca_variance: float,
    seed: int,
    controls: str | None = None,
) -> tuple[list[str], np.ndarray]:
    """Per-gene mean of the standardised, PCA-reduced per-cell features.

    ``features``: (n_cells, F) numeric; ``genes_per_cell``: n gene labels, same order.
    Non-finite values are treated as missing; columns with no finite value or zero
    variance are dropped; the rest are z-scored over all cells (controls included) and
    missing values set to 0 (the column mean). PCA (scikit-learn, full SVD, ``seed``)
    keeps the fewest components whose explained variance fraction exceeds
    ``pca_variance`` (in (0, 1]; 1 keeps all). Returns sorted genes without
    ``controls`` and float64 values (n_genes, n_components).
    """
    genes_per_cell = np.asarray(genes_per_cell, dtype=str)
    if len(genes_per_cell) != len(features):
        raise ValueError(f"{len(genes_per_cell)} gene labels for {len(features)} cells")
    x = features.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    x[~np.isfinite(x)] = np.nan
    x[:, np.isnan(x).all(axis=0)] = 0.0  # no value at all: constant, dropped below
    mean = np.nanmean(x, axis=0)
    std = np.nanstd(x, axis=0)
    keep = std > 1e-12
    dropped = [c for c, k in zip(features.columns, keep) if not k]
    if dropped:
        log.info("engineered: dropping %d constant or empty feature(s): %s", len(dropped), dropped[:10])
    if not keep.any():
        raise InputError("engineered: every feature column is constant or missing; nothing to embed.")
    z = (x[:, keep] - mean[keep]) / std[keep]
    n_missing = int(np.isnan(z).sum())
    if n_missing:
        log.info("engineered: %d missing value(s) imputed with the column mean", n_missing)
    z = np.nan_to_num(z, nan=0.0)
    n_comp = None if pca_variance >= 1 else float(pca_variance)
    pca = PCA(n_components=n_comp, svd_solver="full", random_state=seed)
    scores = pca.fit_transform(z)
    log.info("engineered: %d cells x %d features -> %d PCs (%.3f of variance, target %.3f)",
             z.shape[0], z.shape[1], scores.shape[1], pca.explained_variance_ratio_.sum(), pca_variance)
    per_gene = pd.DataFrame(scores).groupby(genes_per_cell, sort=True).mean()
    if controls is not None:
        per_gene = per_gene.drop(index=str(controls), errors="ignore")
    if per_gene.empty:
        raise InputError("engineered: no non-control gene in the cells; nothing to embed.")
    return list(per_gene.index), per_gene.to_numpy(dtype=np.float64)


def run_engineered(cells_path: str | os.PathLike, cfg: dict, embeddings_path, features_path,
                   threads: int = 1) -> None:
    """Rule `embed_engineered`: per-cell features of every cell in ``cells_path``, then embed.

    ``cfg`` is the ``methods.engineered`` block: ``source`` ("crops": compute features
    from the crops; "columns": use the numeric feature columns of the obs table),
    ``pca_variance``, ``seed``. Writes the per-cell features (``features_path``, parquet:
    cell_id, gene, plate, well, batch, then features) and the gene embeddings.
    """
    cfg = block_config("methods.engineered", cfg)
    attrs = read_attrs(cells_path)
    obs = read_obs(cells_path)
    source = cfg["source"]
    if source == "columns":
        cols = feature_columns(obs)
        if not cols:
            raise InputError(
                f"{cells_path}: methods.engineered.source is 'columns' but the cell table has no "
                "numeric feature columns besides plate/well/tile/y/x. Use source: crops, or add "
                "the per-cell profile columns to input.cells.")
        log.info("engineered: using %d feature column(s) from the cell table", len(cols))
        features = obs[cols].astype(np.float64).reset_index(drop=True)
    elif source == "crops":
        features = features_from_h5(cells_path, list(attrs["channels"]), threads=threads)
    else:
        raise InputError(f"methods.engineered.source must be 'crops' or 'columns', not {source!r}.")
    meta = obs[[c for c in META if c in obs.columns]].reset_index(drop=True).astype(str)
    write_table(pd.concat([meta, features], axis=1), features_path)
    genes, values = engineered_embeddings(features, obs["gene"].astype(str).to_numpy(),
                                          pca_variance=float(cfg["pca_variance"]),
                                          seed=int(cfg["seed"]), controls=attrs.get("controls"))
    log.info("engineered: %d genes x %d dims (seed %d)", len(genes), values.shape[1], int(cfg["seed"]))
    write_embeddings(embeddings_path, genes, values)
