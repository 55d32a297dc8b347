"""mAP (copairs vs sklearn), batched k-means (vs sklearn), purity/NMI/ARI, recall."""

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, average_precision_score, normalized_mutual_info_score

from opsembed.evaluate.average_precision import gene_average_precision, map_significance
from opsembed.evaluate.clustering import k_sweep, kmeans_runs, partition_scores, purity, contingency
from opsembed.evaluate.kmeans import batched_kmeans, kmeans_plusplus, row_space, run_seeds
from opsembed.evaluate.recall import cosine_similarity, known_relationship_recall


def _blobs(n_per=(6, 5, 4, 5), d=8, spread=1.0, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(n_per)), n_per)
    centres = rng.normal(size=(len(n_per), d)) * 2.0
    return centres[labels] + spread * rng.normal(size=(len(labels), d)), labels


# ---------- mAP ----------

def test_copairs_ap_equals_sklearn_ap_on_the_cosine_ranking():
    X, labels = _blobs(spread=2.0)
    genes = [f"g{i}" for i in range(len(labels))]
    ap = gene_average_precision(X, genes, [f"C{c}" for c in labels], null_size=100, seed=0)
    sims = cosine_similarity(X)
    expected = []
    for i in range(len(labels)):
        others = np.arange(len(labels)) != i
        expected.append(average_precision_score(labels[others] == labels[i], sims[i, others]))
    assert list(ap["gene"]) == genes
    np.testing.assert_allclose(ap["average_precision"], expected, atol=1e-6)
    assert ap["average_precision"].mean() == pytest.approx(np.mean(expected), abs=1e-6)
    assert 0.2 < np.mean(expected) < 0.99  # a ranking with both hits and misses
    assert (ap["n_pos_pairs"] == np.bincount(labels)[labels] - 1).all()
    assert (ap["n_total_pairs"] == len(labels) - 1).all()


def test_map_of_random_embeddings_is_chance_level():
    """GRAPE's 14 complexes (106 genes) with random 500-d embeddings, averaged over 5 draws.

    A random ranking of N items with M positives has E[AP] = (M-1)/(N-1) + (N-M) H_N / (N(N-1))
    (H_N the harmonic number): 0.1031 for these sizes; the paper's Random row has 0.104.
    """
    sizes = [10, 10, 9, 9, 8, 8, 7, 7, 7, 7, 6, 6, 6, 6]
    labels = np.repeat(np.arange(len(sizes)), sizes)
    n = len(labels) - 1
    h_n = np.sum(1.0 / np.arange(1, n + 1))
    m = np.array(sizes)[labels] - 1                      # positives of each gene
    expected = np.mean((m - 1) / (n - 1) + (n - m) * h_n / (n * (n - 1)))
    assert expected == pytest.approx(0.1031, abs=5e-4)
    maps = [gene_average_precision(np.random.default_rng(seed).normal(size=(len(labels), 500)),
                                   np.arange(len(labels)), labels, null_size=10, seed=0)
            ["average_precision"].mean() for seed in range(5)]
    assert np.mean(maps) == pytest.approx(expected, abs=0.01)


def test_map_significance_separates_structure_from_noise():
    X, labels = _blobs(n_per=(5, 5, 5, 5), d=16, spread=0.05)
    names = [f"C{c}" for c in labels]
    genes = [f"g{i}" for i in range(len(labels))]
    ap = gene_average_precision(X, genes, names, null_size=1000, seed=0)
    per_complex, p = map_significance(ap, null_size=1000, seed=0)
    assert ap["average_precision"].eq(1.0).all()
    assert p < 0.01 and per_complex["significant"].all()
    noise = np.random.default_rng(1).normal(size=X.shape)
    ap = gene_average_precision(noise, genes, names, null_size=1000, seed=0)
    per_complex, p_noise = map_significance(ap, null_size=1000, seed=0)
    assert p_noise > 0.05 and not per_complex["significant"].any()
    assert map_significance(ap, 1000, 0)[1] == p_noise  # seeded


# ---------- k-means ----------

def test_batched_kmeans_reproduces_sklearn_lloyd_from_the_same_centres():
    X, _ = _blobs(n_per=(12, 10, 9, 9), d=5, spread=1.5, seed=3)
    k = 5
    init = kmeans_plusplus(X, k, run_seeds(0, k, 12))
    labels, centres, inertia, n_iter = batched_kmeans(X, init, max_iter=300)
    assert n_iter.max() > 2  # the runs really iterate
    for r in range(len(init)):
        ref = KMeans(k, init=init[r], n_init=1, algorithm="lloyd", tol=0.0, max_iter=300).fit(X)
        np.testing.assert_array_equal(labels[r], ref.labels_)
        np.testing.assert_allclose(centres[r], ref.cluster_centers_, atol=1e-10)
        assert inertia[r] == pytest.approx(ref.inertia_, rel=1e-10)


def test_empty_cluster_is_reseeded_like_sklearn():
    X, _ = _blobs(n_per=(8, 8), d=3, seed=4)
    init = np.concatenate([X[[0, 9]], np.full((1, 3), 100.0)])[None]  # third centre attracts no point
    labels, centres, _, _ = batched_kmeans(X, init, max_iter=300)
    ref = KMeans(3, init=init[0], n_init=1, algorithm="lloyd", tol=0.0).fit(X)
    np.testing.assert_array_equal(labels[0], ref.labels_)
    assert len(np.unique(labels[0])) == 3


def test_runs_depend_only_on_their_own_seed():
    X, _ = _blobs()
    seeds = run_seeds(7, 4, 5)
    assert len(set(seeds.tolist())) == 5
    np.testing.assert_array_equal(seeds, run_seeds(7, 4, 5))
    assert not np.array_equal(seeds, run_seeds(7, 5, 5))
    batch = kmeans_plusplus(X, 4, seeds)
    np.testing.assert_array_equal(batch[2:3], kmeans_plusplus(X, 4, seeds[2:3]))
    # every centre is a data point and no point is chosen twice in a run
    for centres in batch:
        idx = [int(np.flatnonzero((X == c).all(1))[0]) for c in centres]
        assert len(set(idx)) == 4


def test_row_space_keeps_distances_and_partitions():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 40))
    Y = row_space(X)
    assert Y.shape == (12, 12)
    np.testing.assert_allclose(Y @ Y.T, X @ X.T, atol=1e-10)
    labels = np.repeat(np.arange(3), 4)
    wide = k_sweep(X, labels, [3], n_runs=6, max_iter=100, seed=0)   # rotated inside
    direct = kmeans_runs(X, labels, 3, n_runs=6, max_iter=100, seed=0)
    pd.testing.assert_frame_equal(wide[["purity", "nmi", "ari"]], direct[["purity", "nmi", "ari"]])


# ---------- clustering scores ----------

def test_purity_hand_example():
    truth = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([[0, 0, 1, 1, 1, 2],     # clusters {0,0}, {0,1,1}, {2}: (2 + 2 + 1) / 6
                     [5, 5, 5, 5, 5, 5]])    # one cluster: majority 3 / 6
    np.testing.assert_allclose(purity(contingency(truth, pred)), [5 / 6, 0.5])


def test_nmi_and_ari_equal_sklearn():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 6, size=40)
    preds = [rng.integers(0, k, size=40) for k in (2, 3, 6, 9, 20)]
    preds += [truth.copy(), np.zeros(40, int), np.arange(40), 7 - truth]
    scores = partition_scores(truth, np.stack(preds))
    for row, pred in zip(scores.itertuples(), preds):
        assert row.nmi == pytest.approx(normalized_mutual_info_score(truth, pred), abs=1e-12)
        assert row.ari == pytest.approx(adjusted_rand_score(truth, pred), abs=1e-12)
    # degenerate truth: a single class
    one = np.zeros(10, int)
    for pred in (np.zeros(10, int), np.arange(10) % 3):
        got = partition_scores(one, pred[None]).iloc[0]
        assert got.nmi == pytest.approx(normalized_mutual_info_score(one, pred), abs=1e-12)
        assert got.ari == pytest.approx(adjusted_rand_score(one, pred), abs=1e-12)


# ---------- recall ----------

def test_recall_hand_example():
    # unit vectors with designed cosines; complexes {0, 1} and {2, 3}
    gram = np.array([[1.0, 0.9, -0.5, 0.2],
                     [0.9, 1.0, -0.3, 0.0],
                     [-0.5, -0.3, 1.0, 0.1],
                     [0.2, 0.0, 0.1, 1.0]])
    X = np.linalg.cholesky(gram)
    np.testing.assert_allclose(cosine_similarity(X), gram, atol=1e-12)
    # 6 pairs sorted: -0.5 -0.3 0.0 0.1 0.2 0.9; the 20th/80th percentiles are -0.3 and 0.2
    # pair (0,1) = 0.9 is in the top tail, pair (2,3) = 0.1 in neither
    assert known_relationship_recall(X, ["A", "A", "B", "B"], 20) == 0.5
    # with complexes {0, 2} and {1, 3}: -0.5 (bottom tail) and 0.0 (neither)
    assert known_relationship_recall(X, ["A", "B", "A", "B"], 20) == 0.5
    # one same-complex pair in the top tail, or one in the bottom tail: both count
    assert known_relationship_recall(X, ["A", "A", "C", "D"], 20) == 1.0
    assert known_relationship_recall(X, ["A", "C", "A", "D"], 20) == 1.0
    assert known_relationship_recall(X, ["A", "B", "C", "C"], 20) == 0.0
