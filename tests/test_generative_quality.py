"""Generative-quality metrics on hand-made crops with known answers."""

import numpy as np
import pandas as pd
import pytest

from opsembed.evaluate.generative_quality import (class_accuracy, class_classifier, content_kept,
                                                  frechet_distance, input_dependence, nucleus_masks,
                                                  restyle_quality)

S = 32


def _disc(cy: float, cx: float, r: float = 5.0, size: int = S) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2).astype(np.float32)


def _crops(centres, channels: int = 2, seed: int = 0) -> np.ndarray:
    """One crop (C, S, S) per (cy, cx): a bright DNA disc there on faint noise; other channels noise."""
    rng = np.random.default_rng(seed)
    out = rng.normal(0, 0.05, (len(centres), channels, S, S)).astype(np.float32)
    for i, (cy, cx) in enumerate(centres):
        out[i, 0] += 3 * _disc(cy, cx)
    return out


def test_identical_output_keeps_content_and_input_dependence_is_one():
    x = _crops([(16, 16), (14, 17), (18, 15), (15, 15)])
    iou, shift = content_kept(x, x.copy(), sigma=1.0)
    assert iou == pytest.approx(np.ones(4))
    assert shift == pytest.approx(np.zeros(4), abs=1e-12)
    assert input_dependence(x, x.copy()) == pytest.approx(1.0)


def test_one_constant_output_for_every_input_has_input_dependence_zero():
    x = _crops([(16, 16), (14, 17), (18, 15), (15, 15)])
    same = np.repeat(x[:1], 4, axis=0)
    assert input_dependence(x, same) == pytest.approx(0.0, abs=1e-12)
    # half the spread: every output is the input scaled by 0.5 about the mean
    half = x.mean(0, keepdims=True) + 0.5 * (x - x.mean(0, keepdims=True))
    assert input_dependence(x, half) == pytest.approx(0.5)


def test_shifted_nucleus_gives_the_known_centroid_shift_and_iou():
    x = _crops([(16, 16)])
    moved = _crops([(19, 20)])                      # 3 rows down, 4 columns right: 5 px
    iou, shift = content_kept(x, moved, sigma=1.0)
    assert shift[0] == pytest.approx(5.0, abs=0.05)
    a, b = nucleus_masks(x[:, 0], 1.0)[0], nucleus_masks(moved[:, 0], 1.0)[0]
    assert iou[0] == pytest.approx((a & b).sum() / (a | b).sum())
    assert 0 < iou[0] < 0.6


def test_empty_output_mask_scores_iou_zero_and_no_shift():
    x = _crops([(16, 16)])
    flat = np.zeros_like(x)
    iou, shift = content_kept(x, flat, sigma=1.0)
    assert iou[0] == 0.0 and np.isnan(shift[0])


def test_frechet_distance_known_values():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, a + np.array([3.0, 4.0, 0.0])) == pytest.approx(25.0, rel=1e-6)
    # one dimension, b = 2a: mean term mean(a)^2, covariance term var + 4 var - 2 * 2 var = var
    one = a[:, :1]
    assert frechet_distance(one, 2 * one) == pytest.approx(one.mean() ** 2 + one.var(ddof=1), rel=1e-9)


def test_class_classifier_reads_a_planted_class_feature():
    rng = np.random.default_rng(0)
    classes = np.repeat(["A", "B"], 40)
    feats = pd.DataFrame({"f1": (classes == "B") * 5.0 + rng.normal(0, 0.5, 80), "f2": rng.normal(size=80)})
    forest, cv = class_classifier(feats, classes, seed=0)
    assert cv > 0.95
    probe = pd.DataFrame({"f1": [0.0, 5.0, 5.0, np.nan], "f2": [0.0, 0.0, 0.0, np.nan]})
    # rows 1 and 2 look like B; row 3 has no finite feature and counts as wrong
    assert class_accuracy(forest, probe, np.array(["A", "B", "A", "A"])) == pytest.approx(0.5)


def _mean_features(crops: np.ndarray) -> pd.DataFrame:
    """Toy features: per-channel mean intensity of each crop."""
    return pd.DataFrame(crops.mean(axis=(2, 3)), columns=[f"c{i}" for i in range(crops.shape[1])])


def test_restyle_quality_of_a_perfect_and_a_collapsed_restyler():
    rng = np.random.default_rng(1)
    centres = [(16 + rng.integers(-3, 4), 16 + rng.integers(-3, 4)) for _ in range(30)]
    x = _crops(centres)
    lift = {"G1": 0.0, "G2": 1.0, "G3": 2.0}         # the target's style: channel-1 brightness
    real = np.concatenate([_crops(centres, seed=2) + np.array([0, v], np.float32)[None, :, None, None]
                           for v in lift.values()])
    real_targets = np.repeat(list(lift), len(centres))
    classes = {"G1": "X", "G2": "Y", "G3": "Z"}

    def perfect():
        for g, v in lift.items():
            yield g, x + np.array([0, v], np.float32)[None, :, None, None]

    table, gen, inputs = restyle_quality(x, perfect(), _mean_features, _mean_features(real), real_targets, classes,
                                 sigma=1.0, seed=0)
    m = dict(zip(table["metric"], table["value"]))
    assert m["nucleus_iou"] == pytest.approx(1.0)
    assert m["centroid_shift_px"] == pytest.approx(0.0, abs=1e-9)
    assert m["input_dependence"] == pytest.approx(1.0)
    assert m["nucleus_iou_other_input"] < 1.0 and m["centroid_shift_other_input_px"] > 0   # the centres differ
    assert m["class_accuracy_generated"] == pytest.approx(1.0)
    assert m["class_accuracy_inputs"] == pytest.approx(1 / 3)        # every input looks like G1
    assert m["class_accuracy_chance"] == pytest.approx(1 / 3)
    assert m["frechet_generated"] < m["frechet_inputs"]
    assert len(gen) == 3 * len(x) and set(gen["target"]) == set(lift)
    pd.testing.assert_frame_equal(inputs, _mean_features(x))

    def collapsed():
        for g in lift:
            yield g, np.repeat(x[:1], len(x), axis=0)

    table, _, _ = restyle_quality(x, collapsed(), _mean_features, _mean_features(real), real_targets, classes,
                               sigma=1.0, seed=0)
    m = dict(zip(table["metric"], table["value"]))
    assert m["input_dependence"] == pytest.approx(0.0, abs=1e-12)
    assert m["nucleus_iou"] < 1.0
