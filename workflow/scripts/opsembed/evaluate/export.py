"""Outputs in the formats the field's tools read: AnnData and pycytominer-style Parquet.

- :func:`gene_anndata` / :func:`write_gene_anndata`: ``results/embeddings/genes.h5ad``,
  one AnnData for every method. Rows (``obs_names``) are the union of the methods'
  embedded genes, sorted, controls excluded; ``X`` is empty (0 columns) and each method's
  embedding is ``obsm["X_<method>"]`` (float64, n_genes x its dims), NaN rows where the
  method has no embedding for the gene. ``obs``: ``complex`` (the curated complex,
  categorical, NaN for genes outside the curated ground truth), ``curated`` (bool),
  ``n_cells`` (int64, cells of the gene in ``cells.h5``), ``in_<method>`` (bool, the gene
  has that method's embedding). ``uns``: ``methods`` (names, in metrics order),
  ``metrics`` ({method: its metrics.tsv row against the primary ground truth, the first
  in the table}), ``metrics_by_ground_truth`` ({ground truth: {method: row}}, every
  ground truth of metrics.tsv, when it has a ``ground_truth`` column), ``seeds`` ({dotted config key: seed}), ``controls``.
- :func:`cell_profiles` / :func:`write_cell_profiles`: per-cell features with
  pycytominer's column conventions: metadata first, each named ``Metadata_<Name>``
  (``Metadata_cell_id, Metadata_Plate, Metadata_Well, Metadata_Tile, Metadata_Gene,
  Metadata_sgRNA, Metadata_Batch`` ... those present), then the feature columns, named
  ``<Compartment>_<feature>`` (:func:`compartment_name`) so that pycytominer's default
  feature inference (``Cells_``, ``Nuclei_``, ``Cytoplasm_`` prefixes) finds them. The
  same for a predictor's penultimate features of the OOD benchmark's IID fold
  (``results/ood/iid/<kind>/features.tsv``: ``f0, f1`` ... -> ``Cells_f0`` ..., plus
  ``Metadata_OE, Metadata_Split``).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..io.atomic import atomic_path
from ..io.errors import InputError
from ..io.tables import read_table, write_table

METADATA = {"cell_id": "Metadata_cell_id", "plate": "Metadata_Plate", "well": "Metadata_Well",
            "tile": "Metadata_Tile", "y": "Metadata_Y", "x": "Metadata_X", "gene": "Metadata_Gene",
            "sgRNA": "Metadata_sgRNA", "batch": "Metadata_Batch", "oe": "Metadata_OE",
            "split": "Metadata_Split"}
"""Cell-table columns written as metadata, in this order (those present), and their names."""

COMPARTMENTS = ("Cells", "Nuclei", "Cytoplasm")
"""pycytominer's default compartments: a feature name starts with one of them and ``_``."""

_REGION_TOKENS = {"nucleus": "Nuclei", "cytoplasm": "Cytoplasm"}


def compartment_name(feature: str) -> str:
    """The pycytominer-style name of a per-cell feature column.

    Names already starting with a compartment (``Cells_``, ``Nuclei_``, ``Cytoplasm_``,
    e.g. CellProfiler's) are kept. Otherwise a ``nucleus`` or ``cytoplasm`` token (the
    engineered features' regions, :mod:`opsembed.models.features`) gives the
    compartment and is dropped (``DNA_nucleus_mean`` -> ``Nuclei_DNA_mean``,
    ``nucleus_area`` -> ``Nuclei_area``); any other feature (texture, colocalisation:
    measured over the whole cell) gets ``Cells_`` (``corr_DNA_actin`` -> ``Cells_corr_DNA_actin``).
    """
    if feature.startswith(tuple(f"{c}_" for c in COMPARTMENTS)):
        return feature
    tokens = feature.split("_")
    for token, compartment in _REGION_TOKENS.items():
        if token in tokens:
            rest = [t for t in tokens if t != token] or [token]
            return "_".join([compartment, *rest])
    return f"Cells_{feature}"


def cell_profiles(features: pd.DataFrame, obs: pd.DataFrame | None = None,
                  source: str = "per-cell features") -> pd.DataFrame:
    """Per-cell table in pycytominer's conventions, one row per cell in ``features`` order.

    ``features``: a per-cell table: ``cell_id``, optionally other :data:`METADATA`
    columns, then numeric feature columns (``results/features/engineered_cells.parquet``,
    or a predictor's ``features.tsv``).
    ``obs``: the cells.h5 obs table; when given, its ``tile, y, x, sgRNA`` (those present,
    and any :data:`METADATA` column ``features`` lacks) are joined on ``cell_id``.
    Returns ``Metadata_*`` columns (:data:`METADATA` order) then the features renamed by
    :func:`compartment_name`, float64. Raises InputError naming ``source`` when
    ``cell_id`` is missing or repeated, a cell is absent from ``obs``, or two features
    get the same name.
    """
    if "cell_id" not in features.columns:
        raise InputError(f"{source}: no 'cell_id' column; it is the per-cell table the "
                         "engineered method writes (cell_id, gene, plate, well, batch, features).")
    ids = features["cell_id"].astype(str)
    if ids.duplicated().any():
        raise InputError(f"{source}: cell_id {ids[ids.duplicated()].iloc[0]!r} appears twice.")
    meta_cols = [c for c in METADATA if c in features.columns]
    meta = features[meta_cols].astype(str).reset_index(drop=True)
    if obs is not None:
        extra = [c for c in METADATA if c in obs.columns and c not in meta_cols]
        lookup = obs.assign(cell_id=obs["cell_id"].astype(str)).drop_duplicates("cell_id")
        lookup = lookup.set_index("cell_id")
        missing = ~ids.isin(lookup.index)
        if missing.any():
            raise InputError(f"{source}: cell {ids[missing].iloc[0]!r} is not in the cell table "
                             f"({int(missing.sum())} such cell(s)); rerun the engineered method.")
        for col in extra:
            values = lookup.loc[ids, col].reset_index(drop=True)
            meta[col] = values if col in ("y", "x") else values.astype(str)
    meta = meta[[c for c in METADATA if c in meta.columns]].rename(columns=METADATA)
    feats = features.drop(columns=meta_cols).reset_index(drop=True)
    names = [compartment_name(str(c)) for c in feats.columns]
    seen = pd.Index(names)
    if seen.duplicated().any():
        raise InputError(f"{source}: features {list(feats.columns[seen.duplicated(keep=False)])} "
                         f"all become {seen[seen.duplicated()][0]!r}; rename one.")
    feats = feats.astype(np.float64)
    feats.columns = names
    return pd.concat([meta, feats], axis=1)


def write_cell_profiles(features_path, out_path, obs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Read a per-cell table (Parquet or TSV), write :func:`cell_profiles` atomically to
    ``out_path`` (Parquet); returns the table."""
    features = read_table(features_path, text=[c for c in METADATA if c not in ("y", "x")])
    table = cell_profiles(features, obs, source=str(features_path))
    write_table(table, out_path)
    return table


def gene_anndata(embeddings: dict[str, pd.DataFrame], curated: pd.DataFrame, cell_genes,
                 metrics: pd.DataFrame, seeds: dict | None = None, controls: str | None = None):
    """One AnnData of every method's gene embedding (layout in the module docstring).

    ``embeddings``: {method: float frame indexed by gene}, as from
    :func:`opsembed.io.embeddings.read_embeddings`; ``curated``: columns ``gene, complex``;
    ``cell_genes``: the gene label of every cell (cells.h5 obs ``gene``), counted into
    ``n_cells``; ``metrics``: the combined metrics table (columns ``method`` and, where
    several ground truths ran, ``ground_truth``), each method's row against the first
    ground truth stored in ``uns["metrics"]``, its rows against each in
    ``uns["metrics_by_ground_truth"]`` (a method missing there raises InputError);
    ``seeds``: stored as ``uns["seeds"]``; ``controls``: a gene label left out.
    """
    import anndata

    if not embeddings:
        raise InputError("export: no method's embeddings to write.")
    metrics = metrics.assign(method=metrics["method"].astype(str))
    names = (metrics["ground_truth"].astype(str) if "ground_truth" in metrics.columns
             else pd.Series("", index=metrics.index))
    by_truth = {g: metrics[names == g].set_index("method") for g in dict.fromkeys(names)}
    by_method = next(iter(by_truth.values())) if by_truth else metrics.set_index("method")
    absent = [m for m in embeddings if m not in by_method.index]
    if absent:
        raise InputError(f"export: method(s) {absent} have embeddings but no row in the metrics table.")
    genes = sorted(set().union(*(map(str, e.index) for e in embeddings.values())) - {str(controls)})
    index = pd.Index(genes, name="gene")
    curated = curated[["gene", "complex"]].astype(str).drop_duplicates("gene").set_index("gene")
    counts = pd.Series(np.asarray(cell_genes, dtype=str)).value_counts()
    obs = pd.DataFrame(index=index)
    obs["complex"] = pd.Categorical(curated["complex"].reindex(index))
    obs["curated"] = index.isin(curated.index)
    obs["n_cells"] = counts.reindex(index, fill_value=0).to_numpy(dtype=np.int64)
    obsm = {}
    for method, frame in embeddings.items():
        frame = frame.set_axis(frame.index.astype(str), axis=0)
        obs[f"in_{method}"] = index.isin(frame.index)
        obsm[f"X_{method}"] = frame.reindex(index).to_numpy(dtype=np.float64)
    uns = {"methods": list(embeddings),
           "metrics": {m: {k: _plain(v) for k, v in by_method.loc[m].items()} for m in embeddings},
           "seeds": {str(k): _plain(v) for k, v in (seeds or {}).items()},
           "controls": "" if controls is None else str(controls)}
    if "ground_truth" in metrics.columns:
        uns["metrics_by_ground_truth"] = {g: {m: {k: _plain(v) for k, v in t.loc[m].items()}
                                              for m in embeddings if m in t.index}
                                          for g, t in by_truth.items()}
    return anndata.AnnData(X=np.zeros((len(index), 0)), obs=obs, obsm=obsm, uns=uns)


def write_gene_anndata(path: str | os.PathLike, *args, **kwargs):
    """:func:`gene_anndata` written atomically to ``path`` (``.h5ad``); returns the AnnData."""
    adata = gene_anndata(*args, **kwargs)
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)
    return adata


def config_seeds(config: dict, prefix: str = "") -> dict[str, int]:
    """Every key named ``seed`` in a (nested) config, as {dotted key: value}, e.g.
    ``{"seed": 0, "evaluation.map.seed": 0, "methods.random.seed": 0}``."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(config_seeds(value, f"{name}."))
        elif key == "seed" and value is not None:
            out[name] = value
    return out


def _plain(value):
    """A table cell as a plain Python value h5py can store (None -> NaN)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return float("nan")
    if isinstance(value, str) and value in ("True", "False"):
        return value == "True"
    return value
