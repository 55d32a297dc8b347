"""Percentile rescaling: the map, the estimate per plate or screen, and the table file."""

import numpy as np
import pandas as pd
import pytest
import tifffile

from opsembed.io.errors import InputError
from opsembed.io.tables import read_table
from opsembed.preprocess.flatfield import save_model
from opsembed.preprocess.rescale import (estimate_percentiles, load_percentiles, percentile_map,
                                         run_rescale_percentiles, sample_pixels)


def test_percentile_map_by_hand():
    values = np.array([[0.0, 10.0, 15.0, 20.0, 30.0],
                       [-1.0, 0.0, 1.0, 2.0, 3.0]], np.float32)
    out = percentile_map(values, low=[10.0, 0.0], high=[20.0, 2.0])
    np.testing.assert_allclose(out, [[0.0, 0.0, 0.5, 1.0, 1.0],
                                     [0.0, 0.0, 0.5, 1.0, 1.0]])
    assert out.dtype == np.float32


def test_percentile_map_broadcasts_over_crops_axis():
    image = np.stack([np.full((2, 2), 5.0), np.full((2, 2), 50.0)])  # (C, Y, X)
    out = percentile_map(image, np.array([0.0, 0.0]), np.array([10.0, 100.0]))
    assert out.shape == (2, 2, 2) and (out == 0.5).all()


def test_estimate_per_plate_and_screen_by_hand():
    samples = {"A": np.arange(101.0)[None], "B": np.arange(101.0)[None] + 100}
    plate = estimate_percentiles(samples, ["DNA"], 10, 90, "plate")
    assert plate[["plate", "low", "high"]].values.tolist() == [["A", 10.0, 90.0], ["B", 110.0, 190.0]]
    # pooled: 0..100 and 100..200, 202 values; 50th percentile sits between the two 100s
    screen = estimate_percentiles(samples, ["DNA"], 0, 50, "screen")
    assert screen[["low", "high"]].values.tolist() == [[0.0, 100.0], [0.0, 100.0]]
    assert list(screen.columns) == ["plate", "channel", "low", "high", "low_pct", "high_pct", "scope"]
    assert (screen["scope"] == "screen").all()


def test_constant_channel_is_an_input_error():
    samples = {"A": np.stack([np.arange(10.0), np.full(10, 3.0)])}
    with pytest.raises(InputError, match="plate A, channel 'actin'.*constant"):
        estimate_percentiles(samples, ["DNA", "actin"], 1, 99, "plate")


def test_sample_pixels_keeps_all_or_draws_distinct():
    image = np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(sample_pixels(image, rng, 100), image.reshape(2, -1))
    drawn = sample_pixels(image, rng, 7)
    assert drawn.shape == (2, 7) and len(set(drawn[0])) == 7
    np.testing.assert_array_equal(drawn[1] - drawn[0], 20)  # same pixels in every channel


def test_run_writes_table_from_corrected_tiles(tmp_path):
    """Tiles = 2 x flatfield: after correction every plate-P1 pixel of channel 0 is 2*value."""
    rng = np.random.default_rng(0)
    flat = np.ones((2, 8, 8), np.float32)
    flat[:, :, 4:] = 2.0  # right half twice as bright
    pattern = str(tmp_path / "{plate}/{well}/{tile}.tif")
    rows, truth = [], {"P1": [], "P2": []}
    for plate in ("P1", "P2"):
        for tile in ("t0", "t1", "t2"):
            base = rng.integers(0, 50, (2, 8, 8)).astype(np.float32)
            path = tmp_path / plate / "W" / f"{tile}.tif"
            path.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(path, (base * flat + 7).astype(np.uint16))  # darkfield 7
            truth[plate].append(base)
            rows.append({"plate": plate, "well": "W", "tile": tile})
        save_model(tmp_path / f"{plate}.npz", flat, np.full((2, 8, 8), 7.0, np.float32), ["a", "b"], [])
    pd.DataFrame(rows).to_parquet(tmp_path / "cells.parquet")
    cfg = {"low": 5.0, "high": 95.0, "scope": "plate", "n_tiles": 3}
    run_rescale_percentiles(tmp_path / "cells.parquet", [tmp_path / "P1.npz", tmp_path / "P2.npz"],
                            tmp_path / "pct.tsv", tmp_path / "pct.png", cfg, ["a", "b"], ["P1", "P2"],
                            0, pattern)
    table = read_table(tmp_path / "pct.tsv")
    assert len(table) == 4
    for plate in ("P1", "P2"):
        expected = np.percentile(np.stack(truth[plate]).transpose(1, 0, 2, 3).reshape(2, -1), [5, 95], axis=1)
        low, high = load_percentiles(tmp_path / "pct.tsv", plate, ["a", "b"])
        np.testing.assert_allclose(low, expected[0], rtol=1e-6)
        np.testing.assert_allclose(high, expected[1], rtol=1e-6)
    assert (tmp_path / "pct.png").exists()


def test_nan_pixel_in_a_sampled_tile_names_the_tile(tmp_path):
    """Case 1: NaN in a float tile named at once, not a 'constant channel' or NaN percentile."""
    tile = np.arange(2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8)
    tile[0, 1, 1] = np.nan
    (tmp_path / "P1" / "W").mkdir(parents=True)
    tifffile.imwrite(tmp_path / "P1/W/t0.tif", tile, photometric="minisblack")
    pd.DataFrame({"plate": ["P1"], "well": ["W"], "tile": ["t0"]}).to_parquet(tmp_path / "cells.parquet")
    save_model(tmp_path / "P1.npz", np.ones((2, 8, 8), np.float32), np.zeros((2, 8, 8), np.float32), ["a", "b"], [])
    cfg = {"low": 5.0, "high": 95.0, "scope": "plate", "n_tiles": 3}
    with pytest.raises(InputError, match=r"P1/W/t0\.tif: 1 pixel\(s\) are NaN or infinite"):
        run_rescale_percentiles(tmp_path / "cells.parquet", [tmp_path / "P1.npz"], tmp_path / "pct.tsv", None,
                                cfg, ["a", "b"], ["P1"], 0, str(tmp_path / "{plate}/{well}/{tile}.tif"))
    assert not (tmp_path / "pct.tsv").exists()
