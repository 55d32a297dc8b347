"""Non-learned baselines: random, engineered (features -> PCA -> gene mean), gene2vec."""

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA

from opsembed.io.embeddings import read_embeddings
from opsembed.io.errors import InputError
from opsembed.io.h5 import write_cells_h5
from opsembed.io.tables import read_table
from opsembed.models.engineered import engineered_embeddings, run_engineered
from opsembed.models.gene2vec import gene2vec_embeddings, read_word2vec, run_gene2vec
from opsembed.io.h5 import screened_genes
from opsembed.models.random import random_embeddings, run_random

GENES = ["A", "A", "B", "B", "C", "nontargeting", "nontargeting", "C"]


def make_cells(path, extra_columns=None, size=32):
    """Tiny cells.h5: 8 cells of genes A, B, C and controls, a centred disk per DNA crop."""
    n = len(GENES)
    yy, xx = np.mgrid[:size, :size]
    rng = np.random.default_rng(0)
    crops = np.zeros((n, 2, size, size), np.float32)
    for i in range(n):
        crops[i, 0][np.hypot(yy - size // 2, xx - size // 2) <= 4 + i % 4] = 3
        crops[i, 1] = rng.normal(size=(size, size))
    obs = pd.DataFrame({
        "plate": "P1", "well": "A1", "tile": "0", "cell_id": [f"c{i}" for i in range(n)],
        "y": 50.0, "x": 50.0, "gene": GENES, "sgRNA": GENES, "batch": "P1",
        "gene_id": [sorted(set(GENES)).index(g) for g in GENES],
    })
    for name, values in (extra_columns or {}).items():
        obs[name] = values
    attrs = {"channels": ["DNA", "actin"], "genes": sorted(set(GENES)), "controls": "nontargeting",
             "crop_size": size, "batch_key": "plate", "seed": 0}
    write_cells_h5(path, obs, [crops], attrs)
    return path


# --- random -------------------------------------------------------------------------------

def test_random_is_seeded_gaussian():
    a = random_embeddings(["g"] * 100, dim=500, seed=3)
    assert a.shape == (100, 500) and a.dtype == np.float64
    assert np.array_equal(a, random_embeddings(["g"] * 100, dim=500, seed=3))
    assert not np.allclose(a, random_embeddings(["g"] * 100, dim=500, seed=4))
    assert abs(a.mean()) < 0.01 and abs(a.std() - 1) < 0.01


def test_run_random_covers_screened_genes_without_controls(tmp_path):
    cells = make_cells(tmp_path / "cells.h5")
    assert screened_genes(cells) == ["A", "B", "C"]
    run_random(cells, {"dim": 7, "seed": 1}, tmp_path / "random.tsv")
    emb = read_embeddings(tmp_path / "random.tsv")
    assert list(emb.index) == ["A", "B", "C"] and emb.shape == (3, 7)
    np.testing.assert_allclose(emb.to_numpy(), random_embeddings(["A", "B", "C"], 7, 1))


# --- engineered ---------------------------------------------------------------------------

def test_engineered_hand_example_gene_means_and_controls():
    # one informative feature, a constant one and an empty one (both dropped)
    x = np.array([1, 3, 5, 7, 0, 8], float)
    genes = ["A", "A", "B", "B", "ctrl", "ctrl"]
    feats = pd.DataFrame({"f": x, "const": 5.0, "empty": np.nan})
    out_genes, values = engineered_embeddings(feats, genes, pca_variance=1.0, seed=0, controls="ctrl")
    assert out_genes == ["A", "B"]
    assert values.shape == (2, 1)
    sd = np.sqrt(np.mean((x - 4) ** 2))  # population sd; mean is 4
    # PC1 of a single z-scored feature is +-z; gene means of z are -2/sd and +2/sd
    np.testing.assert_allclose(np.abs(values[:, 0]), [2 / sd, 2 / sd])
    assert values[0, 0] == pytest.approx(-values[1, 0])


def test_engineered_imputes_missing_values_with_column_mean():
    feats = pd.DataFrame({"f": [1.0, np.nan, 3.0, 5.0]})
    _, values = engineered_embeddings(feats, ["A", "B", "C", "D"], pca_variance=1.0, seed=0)
    # the missing cell sits at the column mean (z = 0) -> score 0
    assert values[1, 0] == pytest.approx(0.0)


def test_engineered_pca_keeps_requested_variance():
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(300, 3)) * [5, 2, 1]
    feats = pd.DataFrame(latent @ rng.normal(size=(3, 12)) + 0.1 * rng.normal(size=(300, 12)))
    genes = np.repeat([f"g{i}" for i in range(30)], 10)
    z = (feats - feats.mean()) / feats.std(ddof=0)
    cum = np.cumsum(PCA(svd_solver="full").fit(z).explained_variance_ratio_)
    for frac in (0.5, 0.8, 0.95, 0.999):
        _, values = engineered_embeddings(feats, genes, pca_variance=frac, seed=0)
        k = values.shape[1]
        assert cum[k - 1] >= frac and (k == 1 or cum[k - 2] < frac)
    _, full = engineered_embeddings(feats, genes, pca_variance=1.0, seed=0)
    assert full.shape == (30, 12)
    # per-gene mean of the scores: compare with scikit-learn on the same standardised data
    scores = PCA(n_components=0.8, svd_solver="full").fit_transform(z)
    expected = pd.DataFrame(scores).groupby(genes).mean().to_numpy()
    _, values = engineered_embeddings(feats, genes, pca_variance=0.8, seed=0)
    np.testing.assert_allclose(np.abs(values), np.abs(expected), atol=1e-9)


def test_run_engineered_from_crops(tmp_path):
    cells = make_cells(tmp_path / "cells.h5")
    cfg = {"source": "crops", "pca_variance": 0.9, "seed": 0}
    run_engineered(cells, cfg, tmp_path / "emb.tsv", tmp_path / "features.parquet")
    emb = read_embeddings(tmp_path / "emb.tsv")
    assert list(emb.index) == ["A", "B", "C"]
    feats = read_table(tmp_path / "features.parquet")
    assert list(feats.columns[:5]) == ["cell_id", "gene", "plate", "well", "batch"]
    assert list(feats["cell_id"]) == [f"c{i}" for i in range(len(GENES))]
    assert "nucleus_area" in feats.columns and "corr_DNA_actin" in feats.columns
    # disks of radius 4 + i % 4: cell 3 (r = 7) is bigger than cell 0 (r = 4)
    assert feats["nucleus_area"][3] > feats["nucleus_area"][0]


def test_run_engineered_from_columns(tmp_path):
    f1 = [1.0, 3.0, 5.0, 7.0, 2.0, 0.0, 8.0, 2.0]
    cells = make_cells(tmp_path / "cells.h5", {"f1": f1, "label": ["x"] * len(GENES)})
    cfg = {"source": "columns", "pca_variance": 1.0, "seed": 0}
    run_engineered(cells, cfg, tmp_path / "emb.tsv", tmp_path / "features.parquet")
    emb = read_embeddings(tmp_path / "emb.tsv")
    genes, values = engineered_embeddings(pd.DataFrame({"f1": f1}), GENES, 1.0, 0, "nontargeting")
    assert list(emb.index) == genes == ["A", "B", "C"]
    np.testing.assert_allclose(emb.to_numpy(), values)
    feats = read_table(tmp_path / "features.parquet")
    assert list(feats.columns) == ["cell_id", "gene", "plate", "well", "batch", "f1"]


def test_run_engineered_columns_without_features_is_an_error(tmp_path):
    cells = make_cells(tmp_path / "cells.h5")
    with pytest.raises(InputError, match="no numeric feature columns"):
        run_engineered(cells, {"source": "columns"}, tmp_path / "e.tsv", tmp_path / "f.parquet")
    assert not (tmp_path / "e.tsv").exists()


# --- gene2vec -----------------------------------------------------------------------------

def test_read_word2vec_with_and_without_header(tmp_path):
    body = "A 1 2 3\nB\t4 5 6\n\nC -1 0.5 1e-3\n"
    (tmp_path / "h.txt").write_text("3 3\n" + body)
    (tmp_path / "n.txt").write_text(body)
    for name in ("h.txt", "n.txt"):
        df = read_word2vec(tmp_path / name)
        assert list(df.index) == ["A", "B", "C"] and df.shape == (3, 3)
        np.testing.assert_array_equal(df.loc["C"].to_numpy(), [-1, 0.5, 1e-3])


@pytest.mark.parametrize("text, message", [
    ("A 1 2\nB 3\n", "line 2 has 1 value"),
    ("2 2\nA 1 2\nB 3 x\n", "line 3 .*non-numeric"),
    ("A 1 nan\n", "line 1 .*NaN"),
    ("A 1 2\nB 1 2\nA 3 4\n", "line 3 repeats gene 'A' \\(first on line 1\\)"),
    ("5 2\nA 1 2\n", "announces 5 genes"),
    ("\n", "no gene vectors"),
])
def test_read_word2vec_rejects_malformed_files(tmp_path, text, message):
    path = tmp_path / "v.txt"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_word2vec(path)


def test_gene2vec_restricted_to_screened_genes(tmp_path):
    cells = make_cells(tmp_path / "cells.h5")
    (tmp_path / "v.txt").write_text("A 1 2\nZ 9 9\nC 5 6\nnontargeting 0 0\n")
    run_gene2vec(cells, tmp_path / "v.txt", tmp_path / "g2v.tsv")
    emb = read_embeddings(tmp_path / "g2v.tsv")
    assert list(emb.index) == ["A", "C"]  # B has no vector; Z is not screened; controls never
    np.testing.assert_array_equal(emb.loc["C"].to_numpy(), [5, 6])
    with pytest.raises(InputError, match="none of the 2 screened genes"):
        gene2vec_embeddings(read_word2vec(tmp_path / "v.txt"), ["Q", "R"])
