"""Per-cell classical features on synthetic crops with known answers."""

import numpy as np
import pandas as pd
import pytest

from opsembed.io.h5 import write_cells_h5
from opsembed.models.features import cell_features, feature_names, features_from_h5, nucleus_mask

S = 64
YY, XX = np.mgrid[:S, :S]


def disk(r, cy=S // 2, cx=S // 2):
    return np.hypot(YY - cy, XX - cx) <= r


def test_disk_nucleus_shape_and_region_intensities():
    r, ring = 10, 6
    d = np.hypot(YY - S // 2, XX - S // 2)
    crop = np.zeros((2, S, S), np.float32)
    crop[0][d <= r] = 5.0
    crop[1][d <= r] = 2.0
    crop[1][(d > r) & (d <= r + ring + 3)] = 7.0
    f = cell_features(crop[None], ["DNA", "actin"], ring_width=ring, progress=False).iloc[0]
    assert f["nucleus_area"] == pytest.approx(np.pi * r**2, rel=0.03)
    assert f["nucleus_perimeter"] == pytest.approx(2 * np.pi * r, rel=0.1)
    assert f["nucleus_eccentricity"] < 0.2
    assert f["nucleus_solidity"] > 0.9  # a digitised disk is not quite convex
    assert f["nucleus_major_axis"] == pytest.approx(2 * r, rel=0.05)
    assert f["nucleus_minor_axis"] == pytest.approx(2 * r, rel=0.05)
    assert f["nucleus_form_factor"] == pytest.approx(1.0, abs=0.15)
    assert f["actin_nucleus_mean"] == pytest.approx(2.0, abs=0.1)
    assert f["actin_nucleus_q50"] == 2.0
    assert f["actin_nucleus_integrated"] == pytest.approx(2.0 * f["nucleus_area"], rel=0.03)
    assert f["actin_cytoplasm_mean"] == 7.0
    assert f["actin_cytoplasm_sd"] == 0.0
    assert f["DNA_nucleus_mean"] == pytest.approx(5.0, abs=0.1)
    assert f["DNA_cytoplasm_q90"] == 0.0
    # cytoplasm ring: pixels at distance 0 < d <= ring from the nucleus
    ring_area = f["actin_cytoplasm_integrated"] / 7.0
    assert ring_area == pytest.approx(np.pi * ((r + ring) ** 2 - r**2), rel=0.08)


def test_perfectly_correlated_channels():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(S, S)).astype(np.float32)
    crop = np.stack([5.0 * disk(10), noise, 3 * noise + 1, -noise]).astype(np.float32)
    f = cell_features(crop[None], ["DNA", "a", "b", "c"], progress=False).iloc[0]
    assert f["corr_a_b"] == pytest.approx(1.0, abs=1e-6)
    assert f["corr_a_c"] == pytest.approx(-1.0, abs=1e-6)
    assert f["corr_b_c"] == pytest.approx(-1.0, abs=1e-6)


def test_texture_flat_and_checkerboard():
    checker = ((YY + XX) % 2).astype(np.float32)
    crop = np.stack([5.0 * disk(12), np.full((S, S), 3.0), checker]).astype(np.float32)
    f = cell_features(crop[None], ["DNA", "flat", "check"], levels=16, distances=(1, 3),
                      progress=False).iloc[0]
    for d in (1, 3):
        # a flat region: one grey level, so no contrast and all mass in one GLCM cell
        assert f[f"flat_texture_contrast_d{d}"] == 0.0
        assert f[f"flat_texture_homogeneity_d{d}"] == 1.0
        assert f[f"flat_texture_energy_d{d}"] == 1.0
        # checkerboard -> levels 0 and 15: odd offsets along rows/columns always differ,
        # diagonal offsets never do; mean over the four directions
        assert f[f"check_texture_contrast_d{d}"] == pytest.approx(15**2 / 2)
        assert f[f"check_texture_homogeneity_d{d}"] == pytest.approx((2 / 226 + 2) / 4)
        assert f[f"check_texture_correlation_d{d}"] == pytest.approx(0.0, abs=1e-9)
        assert f[f"check_texture_energy_d{d}"] == pytest.approx(np.sqrt(0.5), abs=0.01)


def test_nucleus_is_the_component_nearest_the_centre():
    dna = np.zeros((S, S), np.float32)
    dna[disk(5)] = 5  # small, at the centre
    dna[disk(9, 12, 12)] = 5  # larger, in a corner
    mask = nucleus_mask(dna)
    assert mask[disk(5)].all() and not mask[disk(9, 12, 12)].any()
    assert mask.sum() < disk(6).sum()
    off = np.zeros((S, S), np.float32)
    off[disk(4, S // 2 + 8, S // 2)] = 5  # centre pixel is background
    off[disk(9, 8, 8)] = 5
    mask = nucleus_mask(off)
    assert mask[disk(3, S // 2 + 8, S // 2)].all() and not mask[disk(9, 8, 8)].any()


def test_flat_dna_gives_missing_row_and_names_match():
    crops = np.zeros((2, 2, S, S), np.float32)
    crops[1, 0][disk(8)] = 4
    crops[1, 1] = np.random.default_rng(0).normal(size=(S, S))
    df = cell_features(crops, ["DNA", "x"], progress=False)
    assert list(df.columns) == feature_names(["DNA", "x"])
    assert df.iloc[0].isna().all()
    assert df.iloc[1].notna().all()


def test_features_from_h5_matches_in_memory(tmp_path):
    rng = np.random.default_rng(1)
    n = 7
    crops = np.zeros((n, 2, S, S), np.float32)
    for i in range(n):
        crops[i, 0][disk(6 + i)] = 4
        crops[i, 1] = np.round(rng.normal(size=(S, S)), 2)
    crops = crops.astype(np.float16).astype(np.float32)  # exactly what the file holds
    obs = pd.DataFrame({"cell_id": [str(i) for i in range(n)], "gene": ["A"] * n})
    path = tmp_path / "cells.h5"
    write_cells_h5(path, obs, [crops], {"channels": ["DNA", "x"]})
    expected = cell_features(crops, ["DNA", "x"], progress=False)
    pd.testing.assert_frame_equal(features_from_h5(path, ["DNA", "x"], block_size=3), expected)
    pd.testing.assert_frame_equal(features_from_h5(path, ["DNA", "x"], threads=2, block_size=3), expected)
