"""Exports for the field's tools: genes.h5ad (AnnData) and the pycytominer-style per-cell
Parquet; copairs on that Parquet gives the pipeline's per-gene AP."""

import numpy as np
import pandas as pd
import pytest

from opsembed.evaluate.benchmark import evaluate_embeddings
from opsembed.evaluate.export import (cell_profiles, compartment_name, config_seeds,
                                      write_cell_profiles, write_gene_anndata)
from opsembed.io.embeddings import read_embeddings
from opsembed.io.errors import InputError
from opsembed.io.h5 import read_obs, write_cells_h5
from opsembed.models.engineered import engineered_embeddings, run_engineered

anndata = pytest.importorskip("anndata")

SMALL = {
    "map": {"null_size": 100, "seed": 0},
    "kmeans": {"n_runs": 2, "k_min": 2, "k_max": 3, "max_iter": 50, "seed": 0},
    "recall": {"percentile": 5},
    "umap": {"n_neighbors": 5, "min_dist": 0.1, "seed": 0},
}


# --- genes.h5ad ---------------------------------------------------------------------------

def test_gene_anndata_round_trip(tmp_path):
    m1 = pd.DataFrame([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [9.0, 9.0]], index=["A", "B", "C", "nt"])
    m2 = pd.DataFrame([[0.5, 0.0, 1.0], [1.5, 1.0, 0.0], [2.5, 2.0, 2.0]], index=["B", "C", "D"])
    curated = pd.DataFrame({"gene": ["A", "B", "C", "E"], "complex": ["c1", "c1", "c2", "c2"]})
    cell_genes = ["A", "A", "B", "D", "D", "D", "nt"]
    metrics = pd.DataFrame({"method": ["m1", "m2"], "mAP": [0.75, 0.25], "n_genes_evaluated": [3, 2],
                            "coverage_warning": [False, True]})
    seeds = config_seeds({"seed": 1, "evaluation": {"map": {"seed": 2, "null_size": 10}},
                          "methods": {"random": {"seed": 3}, "gene2vec": {"path": None}}})
    assert seeds == {"seed": 1, "evaluation.map.seed": 2, "methods.random.seed": 3}
    path = tmp_path / "genes.h5ad"
    write_gene_anndata(path, {"m1": m1, "m2": m2}, curated, cell_genes, metrics, seeds=seeds,
                       controls="nt")

    ad = anndata.read_h5ad(path)
    assert list(ad.obs_names) == ["A", "B", "C", "D"]  # union, sorted, control left out
    assert ad.shape == (4, 0)
    x1, x2 = ad.obsm["X_m1"], ad.obsm["X_m2"]
    assert x1.shape == (4, 2) and x2.shape == (4, 3)
    np.testing.assert_array_equal(x1[:3], [[1, 2], [3, 4], [5, 6]])
    assert np.isnan(x1[3]).all()  # m1 has no D
    assert np.isnan(x2[0]).all()  # m2 has no A
    np.testing.assert_array_equal(x2[1:], m2.to_numpy())
    assert list(ad.obs["complex"].astype(object).where(ad.obs["curated"], None)) == ["c1", "c1", "c2", None]
    assert list(ad.obs["curated"]) == [True, True, True, False]
    assert list(ad.obs["n_cells"]) == [2, 1, 0, 3]
    assert list(ad.obs["in_m1"]) == [True, True, True, False]
    assert list(ad.obs["in_m2"]) == [False, True, True, True]
    assert list(ad.uns["methods"]) == ["m1", "m2"]
    assert ad.uns["metrics"]["m1"]["mAP"] == 0.75 and ad.uns["metrics"]["m2"]["n_genes_evaluated"] == 2
    assert bool(ad.uns["metrics"]["m2"]["coverage_warning"]) is True
    assert dict(ad.uns["seeds"]) == seeds
    assert ad.uns["controls"] == "nt"


def test_gene_anndata_keeps_every_ground_truths_rows(tmp_path):
    m1 = pd.DataFrame([[1.0, 2.0], [3.0, 4.0]], index=["A", "B"])
    curated = pd.DataFrame({"gene": ["A", "B"], "complex": ["c1", "c1"]})
    metrics = pd.DataFrame({"method": ["m1", "m1"], "ground_truth": ["corum", "humap"], "mAP": [0.75, 0.5]})
    write_gene_anndata(tmp_path / "genes.h5ad", {"m1": m1}, curated, ["A"], metrics)
    ad = anndata.read_h5ad(tmp_path / "genes.h5ad")
    assert ad.uns["metrics"]["m1"]["mAP"] == 0.75 and ad.uns["metrics"]["m1"]["ground_truth"] == "corum"
    assert ad.uns["metrics_by_ground_truth"]["humap"]["m1"]["mAP"] == 0.5
    assert set(ad.uns["metrics_by_ground_truth"]) == {"corum", "humap"}


def test_gene_anndata_needs_a_metrics_row_per_method(tmp_path):
    emb = pd.DataFrame([[1.0]], index=["A"])
    metrics = pd.DataFrame({"method": ["other"], "mAP": [0.1]})
    with pytest.raises(InputError, match=r"\['m1'\].*no row in the metrics"):
        write_gene_anndata(tmp_path / "g.h5ad", {"m1": emb}, pd.DataFrame({"gene": [], "complex": []}),
                           [], metrics)
    assert not (tmp_path / "g.h5ad").exists()


# --- per-cell Parquet ---------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("DNA_nucleus_mean", "Nuclei_DNA_mean"),
    ("actin_cytoplasm_q90", "Cytoplasm_actin_q90"),
    ("nucleus_area", "Nuclei_area"),
    ("DNA_texture_contrast_d1", "Cells_DNA_texture_contrast_d1"),
    ("corr_DNA_actin", "Cells_corr_DNA_actin"),
    ("Nuclei_AreaShape_Area", "Nuclei_AreaShape_Area"),  # CellProfiler's: kept
])
def test_compartment_name(name, expected):
    assert compartment_name(name) == expected


def test_cell_profiles_columns_and_join(tmp_path):
    features = pd.DataFrame({"cell_id": ["c1", "c0"], "gene": ["B", "A"], "plate": "P1", "well": "A1",
                             "batch": "P1", "DNA_nucleus_mean": [1.0, 2.0], "corr_DNA_actin": [0.5, -0.5]})
    obs = pd.DataFrame({"cell_id": ["c0", "c1"], "plate": "P1", "well": "A1", "tile": ["3", "4"],
                        "y": [10.0, 20.0], "x": [1.0, 2.0], "gene": ["A", "B"], "sgRNA": ["A_1", "B_2"]})
    features.to_parquet(tmp_path / "cells.parquet", index=False)
    write_cell_profiles(tmp_path / "cells.parquet", tmp_path / "profiles.parquet", obs)
    table = pd.read_parquet(tmp_path / "profiles.parquet")
    assert list(table.columns) == ["Metadata_cell_id", "Metadata_Plate", "Metadata_Well", "Metadata_Tile",
                                   "Metadata_Y", "Metadata_X", "Metadata_Gene", "Metadata_sgRNA",
                                   "Metadata_Batch", "Nuclei_DNA_mean", "Cells_corr_DNA_actin"]
    assert list(table["Metadata_cell_id"]) == ["c1", "c0"]  # features' order, joined on cell_id
    assert list(table["Metadata_Tile"]) == ["4", "3"] and list(table["Metadata_Y"]) == [20.0, 10.0]
    assert list(table["Metadata_sgRNA"]) == ["B_2", "A_1"]
    assert list(table["Nuclei_DNA_mean"]) == [1.0, 2.0]


def test_cell_profiles_errors():
    with pytest.raises(InputError, match="no 'cell_id'"):
        cell_profiles(pd.DataFrame({"f": [1.0]}))
    with pytest.raises(InputError, match="'c9' is not in the cell table"):
        cell_profiles(pd.DataFrame({"cell_id": ["c9"], "f": [1.0]}), pd.DataFrame({"cell_id": ["c0"]}))
    with pytest.raises(InputError, match="become 'Nuclei_DNA_mean'"):
        cell_profiles(pd.DataFrame({"cell_id": ["c0"], "DNA_nucleus_mean": [1.0], "Nuclei_DNA_mean": [2.0]}))


def _screen(path, n_complexes=3, genes_per_complex=3, cells_per_gene=6, seed=0):
    """cells.h5 whose obs carries 4 feature columns: a complex's genes share a profile."""
    rng = np.random.default_rng(seed)
    genes = [f"G{c}{g}" for c in range(n_complexes) for g in range(genes_per_complex)]
    centres = {g: 1.0 * np.eye(4)[int(g[1]) % 4] + rng.normal(scale=0.5, size=4) for g in genes}
    per_cell = [g for g in genes for _ in range(cells_per_gene)] + ["nontargeting"] * cells_per_gene
    values = np.array([centres.get(g, np.zeros(4)) for g in per_cell]) + rng.normal(size=(len(per_cell), 4))
    n = len(per_cell)
    obs = pd.DataFrame({"plate": "P1", "well": ["A1", "A2"] * (n // 2), "tile": "0",
                        "cell_id": [f"c{i}" for i in range(n)], "y": 5.0, "x": 5.0, "gene": per_cell,
                        "sgRNA": per_cell, "batch": "P1"})
    for j, name in enumerate(["DNA_nucleus_mean", "nucleus_area", "actin_cytoplasm_sd", "corr_DNA_actin"]):
        obs[name] = values[:, j]
    attrs = {"channels": ["DNA", "actin"], "genes": sorted(set(per_cell)), "controls": "nontargeting",
             "crop_size": 4, "batch_key": "plate", "seed": 0}
    write_cells_h5(path, obs, [np.zeros((n, 2, 4, 4), np.float32)], attrs)
    curated = pd.DataFrame({"gene": genes, "complex": [f"K{g[1]}" for g in genes]})
    return path, curated


def test_copairs_on_the_cell_parquet_matches_the_pipeline_ap(tmp_path):
    from copairs.map import average_precision

    cells, curated = _screen(tmp_path / "cells.h5")
    cfg = {"source": "columns", "pca_variance": 0.9, "seed": 0}
    run_engineered(cells, cfg, tmp_path / "engineered.tsv", tmp_path / "engineered_cells.parquet")
    evaluate_embeddings(read_embeddings(tmp_path / "engineered.tsv"), curated, SMALL, "engineered",
                        tmp_path / "eval", controls="nontargeting")
    pipeline = pd.read_csv(tmp_path / "eval" / "ap_per_gene.tsv", sep="\t")
    write_cell_profiles(tmp_path / "engineered_cells.parquet", tmp_path / "engineered.parquet",
                        read_obs(cells))

    # a user's route: the Parquet alone, aggregated to gene means as the engineered method does
    profiles = pd.read_parquet(tmp_path / "engineered.parquet")
    meta = [c for c in profiles.columns if c.startswith("Metadata_")]
    feats = [c for c in profiles.columns if not c.startswith("Metadata_")]
    assert feats == ["Nuclei_DNA_mean", "Nuclei_area", "Cytoplasm_actin_sd", "Cells_corr_DNA_actin"]
    assert {"Metadata_cell_id", "Metadata_Plate", "Metadata_Well", "Metadata_Gene"} <= set(meta)
    genes, values = engineered_embeddings(profiles[feats], profiles["Metadata_Gene"], 0.9, 0, "nontargeting")
    gene_means = pd.DataFrame(values, index=genes)
    labels = curated.set_index("gene")["complex"]
    keep = [g for g in genes if g in labels.index]
    ap = average_precision(pd.DataFrame({"Metadata_Gene": keep, "Metadata_Complex": labels[keep].to_list()}),
                           gene_means.loc[keep].to_numpy(), pos_sameby=["Metadata_Complex"], pos_diffby=[],
                           neg_sameby=[], neg_diffby=["Metadata_Complex"], progress_bar=False)
    ours = ap.set_index("Metadata_Gene")["average_precision"].sort_index()
    theirs = pipeline.set_index("gene")["average_precision"].sort_index()
    assert list(ours.index) == list(theirs.index) and len(ours) == 9
    np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=0, atol=1e-12)
    assert 0.4 < theirs.mean() < 1.0  # a real signal, not a degenerate all-1 or all-0 case


def test_predictor_features_tsv_to_profiles(tmp_path):
    tsv = tmp_path / "features.tsv"
    pd.DataFrame({"cell_id": ["c1", "c0"], "gene": ["B", "A"], "oe": ["P2", "P1"], "split": ["test", "train"],
                  "f0": [0.25, 0.5], "f1": [1.0, 2.0]}).to_csv(tsv, sep="\t", index=False)
    obs = pd.DataFrame({"cell_id": ["c0", "c1"], "plate": ["P1", "P2"], "well": ["A1", "A2"], "tile": ["0", "7"],
                        "gene": ["A", "B"]})
    write_cell_profiles(tsv, tmp_path / "ist.parquet", obs)
    table = pd.read_parquet(tmp_path / "ist.parquet")
    assert list(table.columns) == ["Metadata_cell_id", "Metadata_Plate", "Metadata_Well", "Metadata_Tile",
                                   "Metadata_Gene", "Metadata_OE", "Metadata_Split", "Cells_f0", "Cells_f1"]
    assert list(table["Metadata_Plate"]) == ["P2", "P1"] and list(table["Metadata_Split"]) == ["test", "train"]
    assert list(table["Cells_f0"]) == [0.25, 0.5]
