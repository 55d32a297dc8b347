"""MIG, DCI and the Table-2 classifiers on toy codes with known answers."""

import numpy as np
import pytest

from opsembed.evaluate.disentangle import (classify_codes, dci, dci_scores, discretize, entropies, mig,
                                           summarise_accuracy)

N = 4000


@pytest.fixture
def factors():
    """Three independent discrete factors with 4, 5 and 3 values."""
    rng = np.random.default_rng(0)
    return np.stack([rng.integers(0, 4, N), rng.integers(0, 5, N), rng.integers(0, 3, N)], axis=1)


def test_discretize_uniform_and_quantile():
    x = np.array([[0.0], [0.1], [0.5], [0.9], [1.0]])
    assert discretize(x, 2, "uniform")[:, 0].tolist() == [0, 0, 1, 1, 1]
    assert discretize(np.arange(8.0)[:, None], 4, "quantile")[:, 0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_entropy_of_uniform_factor():
    f = np.repeat(np.arange(4), 25)[:, None]
    assert entropies(f)[0] == pytest.approx(np.log(4))


def test_mig_identity_code_is_one(factors):
    codes = factors + 0.01 * np.random.default_rng(1).normal(size=factors.shape)
    out = mig(codes, factors)
    assert out["mig"] > 0.97
    assert np.allclose(np.diag(out["mi"]), out["entropy"], rtol=0.01)


def test_mig_independent_code_is_zero(factors):
    codes = np.random.default_rng(2).normal(size=(N, 5))
    assert mig(codes, factors)["mig"] < 0.03


def test_mig_one_latent_for_two_factors_has_no_gap_for_the_duplicated_factor(factors):
    # latents 0 and 1 both copy factor 0: its gap is 0; factors 1 and 2 keep gap ~1
    codes = np.stack([factors[:, 0], factors[:, 0], factors[:, 1], factors[:, 2]], axis=1).astype(float)
    out = mig(codes, factors)
    assert out["gaps"][0] == pytest.approx(0.0, abs=1e-9)
    assert out["gaps"][1:] == pytest.approx([1.0, 1.0], abs=0.01)
    assert out["mig"] == pytest.approx(2 / 3, abs=0.01)


def test_dci_scores_hand_matrices():
    assert dci_scores(np.eye(3)) == pytest.approx((1.0, 1.0))
    # uniform importance: every latent spread over every factor and vice versa
    assert dci_scores(np.ones((3, 3))) == pytest.approx((0.0, 0.0), abs=1e-12)
    # latent 0 holds factors 0 and 1 equally, latent 1 holds factor 2:
    # D = rho_0 (1 - log 2 / log 3) + rho_1 * 1 with rho = (2/3, 1/3); C = 1 (one latent per factor)
    r = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    d, c = dci_scores(r)
    assert d == pytest.approx(2 / 3 * (1 - np.log(2) / np.log(3)) + 1 / 3)
    assert c == pytest.approx(1.0)
    # factor 0 spread over latents 0 and 1 of 3: its completeness is 1 - log 2 / log 3
    r = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    d, c = dci_scores(r)
    assert c == pytest.approx((1 - np.log(2) / np.log(3) + 1.0) / 2)
    assert d == pytest.approx(1.0)


def test_dci_identity_code_is_near_one(factors):
    codes = factors + 0.01 * np.random.default_rng(3).normal(size=factors.shape)
    out = dci(codes, factors, n_estimators=20)
    assert out["disentanglement"] > 0.9 and out["completeness"] > 0.9
    assert out["informativeness"] > 0.99


def test_dci_independent_code_is_uninformative(factors):
    codes = np.random.default_rng(4).normal(size=(N, 4))
    out = dci(codes, factors, n_estimators=20)
    # chance accuracies of the three factors are about 1/4, 1/5, 1/3
    assert out["informativeness"] < 0.35
    assert out["completeness"] < 0.2


def test_dci_latent_mixing_two_factors_is_less_disentangled_and_a_split_factor_less_complete(factors):
    clean = dci(factors.astype(float), factors, n_estimators=20)
    mixed = np.stack([factors[:, 0] * 5 + factors[:, 1], factors[:, 2]], axis=1).astype(float)
    two_in_one = dci(mixed, factors, n_estimators=20)
    assert two_in_one["disentanglement"] < clean["disentanglement"] - 0.2
    rng = np.random.default_rng(5)
    half = rng.integers(0, 2, N)
    split = np.stack([np.where(half, factors[:, 0], 0), np.where(half, 0, factors[:, 0]),
                      factors[:, 1], factors[:, 2]], axis=1).astype(float)
    one_in_two = dci(split + 0.01 * rng.normal(size=split.shape), factors, n_estimators=20)
    assert one_in_two["completeness"] < clean["completeness"] - 0.1


def test_dci_continuous_factors_use_regression():
    rng = np.random.default_rng(6)
    f = rng.normal(size=(1000, 2))
    out = dci(f[:, ::-1].copy(), f, discrete=False, n_estimators=30)
    assert out["informativeness"] > 0.9
    assert out["importance"][1, 0] > 0.9 and out["importance"][0, 1] > 0.9


def test_classify_codes_separable_and_random():
    rng = np.random.default_rng(7)
    labels = np.repeat(np.array(["a", "b", "c"]), 100)
    good = np.eye(3)[np.repeat(np.arange(3), 100)] * 3 + rng.normal(size=(300, 3)) * 0.3
    table = classify_codes(good, labels, seeds=(0, 1))
    assert set(table["classifier"]) == {"GBT", "MLP"} and len(table) == 4
    assert (table["accuracy"] > 0.95).all()
    assert table["chance"].iloc[0] == pytest.approx(1 / 3, abs=0.02)
    noise = classify_codes(rng.normal(size=(300, 3)), labels, seeds=(0, 1))
    assert noise["accuracy"].mean() < 0.5
    summary = summarise_accuracy(table.assign(model="x"), ["model"])
    assert summary[["accuracy", "n_seeds"]].to_numpy().tolist()[0][1] == 2
    assert summary["sd"].notna().all()
