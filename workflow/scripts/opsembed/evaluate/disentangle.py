"""Disentanglement scores of latent codes against known factors (torch-free).

- MIG (Chen et al. 2018): every latent is discretised into ``n_bins`` equal-width bins;
  m[i, j] is the mutual information (nats) between latent i and factor j; per factor, the
  gap between its largest and second-largest m over latents, divided by the factor's
  entropy; MIG is the mean gap over factors.
- DCI (Eastwood & Williams 2018): per factor, gradient-boosted trees predict it from the
  codes (a classifier for discrete factors, a regressor for continuous ones); their
  ``feature_importances_`` form R (d latents x k factors).
  Disentanglement: sum_i rho_i (1 - H_k(R[i, :] / sum_j R[i, j])), rho_i = sum_j R[i, j] / sum R;
  completeness: mean_j (1 - H_d(R[:, j] / sum_i R[i, j])) (entropies with log base k resp. d);
  informativeness: mean over factors of the held-out accuracy (classifier) or R^2 (regressor).
- The Table-2 analogue (``classify_codes``): a gradient-boosted tree classifier and an MLP
  predict each cell's label (its complex) from its code, on held-out cells, per seed.

Inputs: codes float (n, d); factors (n, k), discrete (integer codes) unless said otherwise.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.metrics import mutual_info_score


def discretize(values: np.ndarray, n_bins: int = 20, how: str = "uniform") -> np.ndarray:
    """Bin every column of ``values`` (n, d): ``uniform`` equal-width bins between the
    column's min and max, ``quantile`` equal-count bins (ties share a bin). int64 (n, d)."""
    values = np.asarray(values, dtype=float)
    out = np.empty(values.shape, dtype=np.int64)
    for j in range(values.shape[1]):
        col = values[:, j]
        if how == "uniform":
            edges = np.linspace(col.min(), col.max(), n_bins + 1)[1:-1]
        elif how == "quantile":
            edges = np.unique(np.quantile(col, np.linspace(0, 1, n_bins + 1)[1:-1]))
        else:
            raise ValueError(f"discretize: how must be 'uniform' or 'quantile', got {how!r}")
        out[:, j] = np.searchsorted(edges, col, side="right")
    return out


def mutual_information(codes_binned: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """m[i, j] = MI (nats) between discrete latent i and discrete factor j: float (d, k)."""
    d, k = codes_binned.shape[1], factors.shape[1]
    return np.array([[mutual_info_score(factors[:, j], codes_binned[:, i]) for j in range(k)]
                     for i in range(d)])


def entropies(factors: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each discrete factor column: float (k,)."""
    return np.array([mutual_info_score(f, f) for f in np.asarray(factors).T])


def mig(codes: np.ndarray, factors: np.ndarray, n_bins: int = 20) -> dict:
    """MIG of ``codes`` (n, d) against discrete ``factors`` (n, k), needs d >= 2.

    Returns {"mig": float, "gaps": (k,) normalised gaps, "mi": (d, k) MI in nats,
    "entropy": (k,)}. A factor with zero entropy gets gap 0.
    """
    codes, factors = np.asarray(codes), np.asarray(factors)
    if codes.shape[1] < 2:
        raise ValueError("mig: needs at least two latent dimensions")
    mi = mutual_information(discretize(codes, n_bins), factors)
    h = entropies(factors)
    top = np.sort(mi, axis=0)[::-1]
    gaps = np.where(h > 0, (top[0] - top[1]) / np.where(h > 0, h, 1.0), 0.0)
    return {"mig": float(gaps.mean()), "gaps": gaps, "mi": mi, "entropy": h}


def _entropy_rows(p: np.ndarray, base: int) -> np.ndarray:
    """Entropy with log base ``base`` of each row of probabilities ``p``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    return terms.sum(axis=1) / np.log(base)


def dci_scores(importance: np.ndarray) -> tuple[float, float]:
    """(disentanglement, completeness) of an importance matrix R (d latents x k factors), R >= 0."""
    r = np.abs(np.asarray(importance, dtype=float))
    d, k = r.shape
    total = r.sum()
    if total <= 0:
        return 0.0, 0.0
    row = r.sum(axis=1)
    p_rows = r / np.where(row > 0, row, 1.0)[:, None]
    dis = 1.0 - _entropy_rows(p_rows, k) if k > 1 else np.ones(d)
    disentanglement = float((row / total * dis).sum())
    col = r.sum(axis=0)
    p_cols = (r / np.where(col > 0, col, 1.0)[None, :]).T
    comp = 1.0 - _entropy_rows(p_cols, d) if d > 1 else np.ones(k)
    comp = np.where(col > 0, comp, 0.0)
    return disentanglement, float(comp.mean())


def dci(codes: np.ndarray, factors: np.ndarray, discrete: bool = True, train_fraction: float = 0.7,
        n_estimators: int = 50, seed: int = 0) -> dict:
    """DCI of ``codes`` (n, d) against ``factors`` (n, k) (integer classes when ``discrete``,
    else real values), with one gradient-boosted tree model per factor fit on a random
    ``train_fraction`` of rows (``seed``) and scored on the rest.

    Returns {"disentanglement", "completeness", "informativeness": floats, "importance": (d, k)}.
    """
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor

    codes, factors = np.asarray(codes, dtype=float), np.asarray(factors)
    n, k = factors.shape
    order = np.random.default_rng(seed).permutation(n)
    cut = int(round(train_fraction * n))
    train, test = order[:cut], order[cut:]
    importance, scores = np.zeros((codes.shape[1], k)), []
    for j in range(k):
        y = factors[:, j]
        if discrete and len(np.unique(y[train])) < 2:
            scores.append(1.0)
            continue
        model_cls = GradientBoostingClassifier if discrete else GradientBoostingRegressor
        model = model_cls(n_estimators=n_estimators, max_depth=3, random_state=seed)
        model.fit(codes[train], y[train])
        importance[:, j] = model.feature_importances_
        scores.append(float(model.score(codes[test], y[test])))
    dis, comp = dci_scores(importance)
    return {"disentanglement": dis, "completeness": comp, "informativeness": float(np.mean(scores)),
            "importance": importance}


def classify_codes(codes: np.ndarray, labels, seeds=(0, 1, 2, 3, 4), test_fraction: float = 0.3,
                   mlp_hidden: int = 64, max_iter: int = 300) -> pd.DataFrame:
    """Table-2 analogue: accuracy of predicting ``labels`` (n,) from ``codes`` (n, d) on
    held-out rows (stratified split of ``test_fraction`` per seed).

    Classifiers: ``GBT`` (HistGradientBoostingClassifier) and ``MLP`` (standardised codes,
    one hidden layer of ``mlp_hidden`` units). Returns rows (classifier, seed, accuracy,
    chance), chance = the test split's most frequent label's share.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    codes, labels = np.asarray(codes, dtype=float), np.asarray(labels)
    rows = []
    for seed in seeds:
        xtr, xte, ytr, yte = train_test_split(codes, labels, test_size=test_fraction, random_state=seed,
                                              stratify=labels)
        chance = float(pd.Series(yte).value_counts(normalize=True).iloc[0])
        models = {"GBT": HistGradientBoostingClassifier(max_iter=100, random_state=seed),
                  "MLP": make_pipeline(StandardScaler(), MLPClassifier(
                      (mlp_hidden,), alpha=1e-3, max_iter=max_iter, random_state=seed))}
        for name, model in models.items():
            with warnings.catch_warnings():  # an MLP stopped at max_iter is what we asked for
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(xtr, ytr)
            rows.append({"classifier": name, "seed": int(seed), "accuracy": float(model.score(xte, yte)),
                         "chance": chance})
    return pd.DataFrame(rows)


def summarise_accuracy(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean and sd (ddof 1) of ``accuracy`` and mean chance per group of ``keys`` + classifier."""
    g = table.groupby(keys + ["classifier"], sort=False)
    out = g["accuracy"].agg(["mean", "std"]).rename(columns={"mean": "accuracy", "std": "sd"})
    out["chance"] = g["chance"].mean()
    out["n_seeds"] = g.size()
    return out.reset_index()
