"""Crops are centred on the cell, edge cells are dropped or padded, wells may be empty."""

import numpy as np
import pandas as pd
import pytest
import tifffile

from opsembed.io.errors import InputError
from opsembed.io.h5 import read_attrs, read_crops, read_obs
from opsembed.io.tables import write_table
from opsembed.preprocess.crops import centre_index, crop_tile, plan_well, run_crop_well, window_inside
from opsembed.preprocess.flatfield import save_model


def test_centre_index_rounds_half_up():
    np.testing.assert_array_equal(centre_index([0.49, 0.5, 1.5, 2.5, -0.5, 7.0]), [0, 1, 2, 3, 0, 7])


@pytest.mark.parametrize("size", [8, 9])
@pytest.mark.parametrize("y,x", [(10.0, 20.0), (10.4, 19.6), (12.0, 5.0)])
def test_crop_is_centred_on_a_bright_dot(size, y, x):
    image = np.zeros((2, 30, 40), np.float32)
    image[1, int(round(y)), int(round(x))] = 1.0
    crop = crop_tile(image, [y], [x], size)
    assert crop.shape == (1, 2, size, size)
    assert np.unravel_index(np.argmax(crop[0, 1]), (size, size)) == (size // 2, size // 2)
    assert crop.sum() == 1.0


def test_crop_copies_the_window_exactly():
    image = np.arange(3 * 20 * 20, dtype=np.float32).reshape(3, 20, 20)
    crop = crop_tile(image, [10], [7], 6)  # rows 7..12, columns 4..9
    np.testing.assert_array_equal(crop[0], image[:, 7:13, 4:10])


def test_pad_fills_outside_with_zero():
    image = np.ones((1, 10, 10), np.float32)
    crop = crop_tile(image, [0], [9], 4)  # rows -2..1, columns 7..10
    expected = np.zeros((4, 4))
    expected[2:, :3] = 1
    np.testing.assert_array_equal(crop[0, 0], expected)


def test_edge_drop_versus_pad_counts():
    # tile 20 x 20, crop 8: window rows cy-4 .. cy+3 must lie in 0..19
    cells = pd.DataFrame({"tile": ["a", "b", "a", "b", "a"], "y": [4, 3.4, 16, 16.6, 10],
                          "x": [10, 10, 10, 10, 4], "cell_id": list("12345")})
    np.testing.assert_array_equal(window_inside(cells["y"], cells["x"], 8, 20, 20),
                                  [True, False, True, False, True])
    kept, dropped, padded = plan_well(cells, 8, "drop", 20, 20)
    assert (dropped, padded) == (2, 0)
    assert kept["cell_id"].tolist() == ["1", "3", "5"]
    kept, dropped, padded = plan_well(cells, 8, "pad", 20, 20)
    assert (dropped, padded) == (0, 2)
    assert kept["cell_id"].tolist() == ["1", "3", "5", "2", "4"]  # grouped by tile, stable


def _well_inputs(tmp_path, cells, size=16):
    """One plate with identity flatfield and percentiles 0..100 on (2, 32, 32) tiles."""
    save_model(tmp_path / "ff.npz", np.ones((2, size * 2, size * 2), np.float32),
               np.zeros((2, size * 2, size * 2), np.float32), ["a", "b"], [])
    pd.DataFrame({"plate": "P", "channel": ["a", "b"], "low": 0.0, "high": 100.0, "low_pct": 0.0,
                  "high_pct": 100.0, "scope": "plate"}).to_csv(tmp_path / "pct.tsv", sep="\t", index=False)
    write_table(cells, tmp_path / "cells.parquet")


def test_run_crop_well_rescales_pads_and_keeps_obs(tmp_path):
    tile = np.zeros((2, 32, 32), np.uint16)
    tile[0, 10, 12] = 100  # dot under cell c1
    tile[1] = 50
    (tmp_path / "P" / "W").mkdir(parents=True)
    tifffile.imwrite(tmp_path / "P/W/t.tif", tile)
    cells = pd.DataFrame({"plate": "P", "well": ["W", "W", "V"], "tile": "t", "y": [10.0, 1.0, 5.0],
                          "x": [12.0, 30.0, 5.0], "gene": ["g", "nontargeting", "g"],
                          "cell_id": ["c1", "c2", "c3"], "batch": "P", "area": [1.5, 2.5, 3.5],
                          "series": ["S1", "S2", "S1"]})  # a text column, e.g. the OOD benchmark's level 3
    _well_inputs(tmp_path, cells)
    run_crop_well(tmp_path / "cells.parquet", tmp_path / "ff.npz", tmp_path / "pct.tsv", tmp_path / "W.h5",
                  {"size": 16, "edge": "pad"}, ["a", "b"], str(tmp_path / "{plate}/{well}/{tile}.tif"), "P", "W")
    attrs = read_attrs(tmp_path / "W.h5")
    assert (attrs["n_cells"], attrs["n_kept"], attrs["n_dropped_edge"], attrs["n_padded"]) == (2, 2, 0, 1)
    obs = read_obs(tmp_path / "W.h5")
    assert obs["cell_id"].tolist() == ["c1", "c2"] and obs["area"].tolist() == [1.5, 2.5]
    assert obs["series"].tolist() == ["S1", "S2"]
    crops = read_crops(tmp_path / "W.h5")
    assert crops[0, 0, 8, 8] == 1.0 and crops[0, 0].sum() == 1.0  # dot rescaled 100 -> 1 at the centre
    assert (crops[0, 1] == 0.5).all()
    # c2 at (1, 30): rows -7..8, columns 22..37 -> 7 rows above and 6 columns right are padding
    assert (crops[1, 1, :7] == 0).all() and (crops[1, 1, :, 10:] == 0).all()
    assert (crops[1, 1, 7:, :10] == 0.5).all()


def test_well_without_kept_cells_gives_a_valid_empty_file(tmp_path):
    cells = pd.DataFrame({"plate": "P", "well": "W", "tile": "t", "y": [1.0], "x": [1.0], "gene": "g",
                          "cell_id": ["c1"], "batch": "P"})
    _well_inputs(tmp_path, cells)
    run_crop_well(tmp_path / "cells.parquet", tmp_path / "ff.npz", tmp_path / "pct.tsv", tmp_path / "W.h5",
                  {"size": 16, "edge": "drop"}, ["a", "b"], str(tmp_path / "{plate}/{well}/{tile}.tif"), "P", "W")
    attrs = read_attrs(tmp_path / "W.h5")
    assert (attrs["n_cells"], attrs["n_kept"], attrs["n_dropped_edge"]) == (1, 0, 1)
    assert read_crops(tmp_path / "W.h5").shape == (0, 2, 16, 16)
    assert len(read_obs(tmp_path / "W.h5")) == 0


def _two_tile_well(tmp_path, second: np.ndarray):
    """Well W of plate P: tile t (a dot, and a gradient in channel b) and tile z (``second``), 2 cells each."""
    good = np.zeros((2, 32, 32), np.float32)
    good[0, 10, 12] = 100.0  # a dot under cell t1
    good[1] = np.arange(32, dtype=np.float32)[None, :]  # a gradient: never a constant crop
    (tmp_path / "P" / "W").mkdir(parents=True)
    tifffile.imwrite(tmp_path / "P/W/t.tif", good, photometric="minisblack")
    tifffile.imwrite(tmp_path / "P/W/z.tif", second, photometric="minisblack")
    cells = pd.DataFrame({"plate": "P", "well": "W", "tile": ["t", "z", "t", "z"], "y": [10.0, 12.0, 20.0, 16.0],
                          "x": [12.0, 12.0, 20.0, 16.0], "gene": ["g", "g", "nontargeting", "nontargeting"],
                          "cell_id": ["t1", "z1", "t2", "z2"], "batch": "P"})
    _well_inputs(tmp_path, cells)
    return str(tmp_path / "{plate}/{well}/{tile}.tif")


def test_blank_crops_of_an_all_zero_tile_are_dropped_counted_and_named(tmp_path, caplog):
    """Case 2: an all-zero tile gives blank crops; they are dropped (n_dropped_blank) with a warning."""
    pattern = _two_tile_well(tmp_path, np.zeros((2, 32, 32), np.float32))
    with caplog.at_level("WARNING"):
        run_crop_well(tmp_path / "cells.parquet", tmp_path / "ff.npz", tmp_path / "pct.tsv", tmp_path / "W.h5",
                      {"size": 16, "edge": "pad"}, ["a", "b"], pattern, "P", "W")
    attrs = read_attrs(tmp_path / "W.h5")
    assert (attrs["n_cells"], attrs["n_kept"], attrs["n_dropped_blank"], attrs["n_dropped_edge"]) == (4, 2, 2, 0)
    assert read_obs(tmp_path / "W.h5")["cell_id"].tolist() == ["t1", "t2"]
    crops = read_crops(tmp_path / "W.h5")
    assert crops.shape == (2, 2, 16, 16)
    np.testing.assert_allclose(crops[0, 1, 0, :3], np.array([4, 5, 6]) / 100, atol=1e-3)  # t1: columns 4..19
    messages = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("P/W/z.tif: every channel is constant (every pixel 0)" in m for m in messages)
    assert any("2 of 4 crops are blank" in m for m in messages)
    assert not list(tmp_path.glob(".*.h5"))  # no temporary file left behind


def test_a_constant_channel_is_named_but_its_crops_kept(tmp_path, caplog):
    second = np.zeros((2, 32, 32), np.float32)
    second[0, 12, 12] = 50.0  # a dot in channel a; channel b is empty
    pattern = _two_tile_well(tmp_path, second)
    with caplog.at_level("WARNING"):
        run_crop_well(tmp_path / "cells.parquet", tmp_path / "ff.npz", tmp_path / "pct.tsv", tmp_path / "W.h5",
                      {"size": 16, "edge": "pad"}, ["a", "b"], pattern, "P", "W")
    attrs = read_attrs(tmp_path / "W.h5")
    # z1's crop holds the dot; z2's window (rows 8..23) too: none is blank
    assert (attrs["n_kept"], attrs["n_dropped_blank"]) == (4, 0)
    assert any("P/W/z.tif: channel(s) ['b'] are constant" in r.getMessage() for r in caplog.records)


def test_nan_pixels_in_a_tile_fail_the_well_naming_the_tile(tmp_path):
    """Case 1: a NaN in a tile no sample touched fails crop_well, and nothing is written."""
    second = np.ones((2, 32, 32), np.float32)
    second[1, 3, 4] = np.nan
    pattern = _two_tile_well(tmp_path, second)
    with pytest.raises(InputError, match=r"P/W/z\.tif: 1 pixel\(s\) are NaN or infinite"):
        run_crop_well(tmp_path / "cells.parquet", tmp_path / "ff.npz", tmp_path / "pct.tsv", tmp_path / "W.h5",
                      {"size": 16, "edge": "pad"}, ["a", "b"], pattern, "P", "W")
    assert not (tmp_path / "W.h5").exists() and not list(tmp_path.glob(".*.h5"))


def test_crop_well_reads_one_file_per_channel(tmp_path):
    tile = np.zeros((2, 32, 32), np.uint16)
    tile[0, 10, 12] = 100
    tile[1] = np.arange(32, dtype=np.uint16)[None, :]
    (tmp_path / "P" / "W").mkdir(parents=True)
    for token, plane in zip(("ch5", "ch2"), tile):
        tifffile.imwrite(tmp_path / f"P/W/t-{token}.tiff", plane, compression="lzw")
    cells = pd.DataFrame({"plate": "P", "well": "W", "tile": "t", "y": [10.0], "x": [12.0], "gene": "g",
                          "cell_id": ["c1"], "batch": "P"})
    _well_inputs(tmp_path, cells)
    run_crop_well(tmp_path / "cells.parquet", tmp_path / "ff.npz", tmp_path / "pct.tsv", tmp_path / "W.h5",
                  {"size": 16, "edge": "pad"}, ["a", "b"], str(tmp_path / "{plate}/{well}/{tile}-{channel}.tiff"),
                  "P", "W", channel_tokens={"a": "ch5", "b": "ch2"})
    crops = read_crops(tmp_path / "W.h5")
    assert crops[0, 0, 8, 8] == 1.0 and crops[0, 0].sum() == 1.0
    np.testing.assert_allclose(crops[0, 1, 0, :2], [0.04, 0.05], atol=1e-3)  # columns 4, 5 of the gradient


def test_blank_crops_and_constant_tiles_reach_the_terminal_from_a_job(tmp_path, capfd):
    from opsembed.io.logs import script_logging

    pattern = _two_tile_well(tmp_path, np.zeros((2, 32, 32), np.float32))
    with script_logging(str(tmp_path / "job.log")):
        run_crop_well(tmp_path / "cells.parquet", tmp_path / "ff.npz", tmp_path / "pct.tsv", tmp_path / "W.h5",
                      {"size": 16, "edge": "pad"}, ["a", "b"], pattern, "P", "W")
    err = capfd.readouterr().err
    assert "opsembed: WARNING: plate P well W: 1 tile(s) with a constant channel (" in err
    assert "P/W/z.tif); 2 of 4 crops are blank" in err
    assert "P/W/z.tif: every channel is constant" in (tmp_path / "job.log").read_text()
