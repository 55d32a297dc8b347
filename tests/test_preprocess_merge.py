"""Streamed z-scoring against controls and the merge into cells.h5."""

import numpy as np
import pandas as pd
import pytest

from opsembed.io.errors import InputError
from opsembed.io.h5 import read_attrs, read_crops, read_obs, write_cells_h5
from opsembed.io.tables import read_table, write_table
from opsembed.preprocess.merge import merge_cells
from opsembed.preprocess.zscore import ChannelMoments, zscore

CHANNELS = ["DNA", "actin"]
S = 4


def test_channel_moments_match_numpy_over_blocks():
    rng = np.random.default_rng(0)
    crops = rng.normal([[[[3.0]], [[-2.0]]]], [[[[0.5]], [[4.0]]]], size=(30, 2, S, S))
    moments = ChannelMoments(2)
    for block in (crops[:7], crops[7:8], crops[8:8], crops[8:]):
        moments.add(block)
    pixels = crops.transpose(1, 0, 2, 3).reshape(2, -1)
    np.testing.assert_allclose(moments.mean, pixels.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(moments.std, pixels.std(axis=1), rtol=1e-12)
    assert (moments.n_crops, moments.n_pixels) == (30, 30 * S * S)


def test_zscore_uses_each_crops_batch():
    crops = np.ones((2, 2, 1, 1), np.float32) * np.array([10.0, 20.0])[None, :, None, None]
    mean = np.array([[10.0, 10.0], [0.0, 0.0]])
    std = np.array([[1.0, 5.0], [2.0, 4.0]])
    out = zscore(crops, np.array([0, 1]), mean, std)
    np.testing.assert_allclose(out[:, :, 0, 0], [[0.0, 2.0], [5.0, 5.0]])


def _write_wells(root, wells):
    """wells: list of (plate, well, obs rows) -> crop files; each crop is random with a cell offset."""
    rng = np.random.default_rng(2)
    paths, all_rows, truth = [], [], {}
    for plate, well, rows in wells:
        obs = pd.DataFrame(rows, columns=["plate", "well", "tile", "y", "x", "gene", "sgRNA", "cell_id",
                                          "batch", "area"])
        crops = np.empty((len(obs), 2, S, S), np.float32)
        for i, row in obs.iterrows():
            shift = 0.0 if row["gene"] == "nontargeting" else 0.3
            scale = 0.1 if row["batch"] == "B1" else 0.05
            crops[i] = np.clip(rng.normal(0.4 + shift, scale, (2, S, S)), 0, 1)
            truth[row["cell_id"]] = crops[i].astype(np.float16).astype(np.float32)
        path = root / f"{plate}_{well}.h5"
        n_dropped = 1  # one extra cell per well, dropped at the edge
        write_cells_h5(path, obs, [crops], {"plate": plate, "well": well, "n_cells": len(obs) + n_dropped,
                                            "n_kept": len(obs), "n_dropped_edge": n_dropped, "n_padded": 0,
                                            "crop_size": S, "edge": "drop", "channels": CHANNELS})
        paths.append(path)
        all_rows += rows + [(plate, well, "t", 0.0, 0.0, "GENEX", "GENEX", f"{plate}{well}-dropped", plate, 0.0)]
    cells = pd.DataFrame(all_rows, columns=["plate", "well", "tile", "y", "x", "gene", "sgRNA", "cell_id",
                                            "batch", "area"])
    write_table(cells, root / "cells.parquet")
    return paths, truth


def _cell(plate, well, k, gene):
    return (plate, well, "t", 10.0 + k, 20.0, gene, gene + "_1", f"{plate}{well}-{k}", plate, float(k))


@pytest.fixture
def wells(tmp_path):
    spec = [("B1", "A01", [_cell("B1", "A01", k, g) for k, g in
                           enumerate(["nontargeting", "G2", "G1", "nontargeting", "G2"])]),
            ("B1", "A02", [_cell("B1", "A02", k, g) for k, g in enumerate(["G1", "nontargeting"])]),
            ("B2", "A01", [_cell("B2", "A01", k, g) for k, g in
                           enumerate(["nontargeting", "G3", "nontargeting", "G1"])]),
            ("B2", "A02", [])]
    paths, truth = _write_wells(tmp_path, spec)
    return tmp_path, paths, truth


def _merge(root, paths, seed=3):
    merge_cells(paths, root / "cells.parquet", root / "cells.h5", root / "zscore.tsv", root / "summary.tsv",
                "nontargeting", "plate", CHANNELS, seed, S)


def test_controls_are_standardised_per_batch_and_channel(wells):
    root, paths, truth = wells
    _merge(root, paths)
    obs, images = read_obs(root / "cells.h5"), read_crops(root / "cells.h5")
    attrs = read_attrs(root / "cells.h5")
    assert attrs["zscore_batches"] == ["B1", "B2"]
    for b, batch in enumerate(["B1", "B2"]):
        controls = images[((obs["batch"] == batch) & (obs["gene"] == "nontargeting")).to_numpy()]
        pixels = controls.transpose(1, 0, 2, 3).reshape(2, -1)
        np.testing.assert_allclose(pixels.mean(axis=1), 0.0, atol=2e-3)  # float16 storage
        np.testing.assert_allclose(pixels.std(axis=1), 1.0, atol=2e-3)
        # every crop of the batch, perturbed ones included, used this batch's statistics
        for i in np.flatnonzero((obs["batch"] == batch).to_numpy()):
            raw = truth[obs["cell_id"].iloc[i]]
            expected = (raw - attrs["zscore_mean"][b][:, None, None]) / attrs["zscore_std"][b][:, None, None]
            np.testing.assert_allclose(images[i], expected, atol=5e-3 * np.abs(expected).max() + 1e-3)
    table = read_table(root / "zscore.tsv")
    assert table[["batch", "channel", "n_control_cells"]].values.tolist() == [
        ["B1", "DNA", 3], ["B1", "actin", 3], ["B2", "DNA", 2], ["B2", "actin", 2]]
    np.testing.assert_allclose(table["mean"].to_numpy().reshape(2, 2), attrs["zscore_mean"])


def test_merge_keeps_every_cell_once_in_image_order(wells):
    root, paths, truth = wells
    _merge(root, paths)
    obs, images = read_obs(root / "cells.h5"), read_crops(root / "cells.h5")
    attrs = read_attrs(root / "cells.h5")
    assert obs["cell_id"].tolist() == [f"B1A01-{k}" for k in range(5)] + ["B1A02-0", "B1A02-1"] + \
        [f"B2A01-{k}" for k in range(4)]
    assert images.shape == (11, 2, S, S)
    # undo the z-score of each row and find the crop of the cell named in that obs row
    batch = np.searchsorted(attrs["zscore_batches"], obs["batch"])
    raw = images * attrs["zscore_std"][batch][:, :, None, None] + attrs["zscore_mean"][batch][:, :, None, None]
    for i, cell_id in enumerate(obs["cell_id"]):
        np.testing.assert_allclose(raw[i], truth[cell_id], atol=3e-3)
    assert attrs["genes"] == ["G1", "G2", "G3", "nontargeting"]
    assert [attrs["genes"][g] for g in obs["gene_id"]] == obs["gene"].tolist()
    assert obs["area"].tolist()[:3] == [0.0, 1.0, 2.0]
    assert (attrs["controls"], attrs["crop_size"], attrs["batch_key"], attrs["seed"]) == ("nontargeting", S,
                                                                                       "plate", 3)
    assert attrs["channels"] == CHANNELS
    summary = read_table(root / "summary.tsv")
    # n_cells, n_kept, n_dropped_edge, n_dropped_blank (0: these files predate the attr), n_padded
    assert summary.values.tolist() == [["B1", "A01", 6, 5, 1, 0, 0], ["B1", "A02", 3, 2, 1, 0, 0],
                                       ["B2", "A01", 5, 4, 1, 0, 0], ["B2", "A02", 1, 0, 1, 0, 0]]


def test_missing_well_file_is_detected(wells):
    root, paths, _ = wells
    with pytest.raises(ValueError, match="do not cover the wells"):
        _merge(root, paths[:-1])


def test_batch_whose_controls_were_all_dropped(tmp_path):
    spec = [("B1", "A01", [_cell("B1", "A01", 0, "nontargeting"), _cell("B1", "A01", 1, "G1")]),
            ("B2", "A01", [_cell("B2", "A01", 0, "G1")])]
    paths, _ = _write_wells(tmp_path, spec)
    with pytest.raises(InputError, match=r"\['B2'\].*no control crops left"):
        _merge(tmp_path, paths)
