"""Input validation and the whole preprocessing chain on a tiny hand-made screen."""

import logging

import numpy as np
import pandas as pd
import pytest
import tifffile

from opsembed.io.errors import InputError
from opsembed.io.h5 import read_attrs, read_crops, read_obs
from opsembed.io.tables import read_table
from opsembed.preprocess.crops import run_crop_well
from opsembed.preprocess.flatfield import run_fit_flatfield
from opsembed.preprocess.merge import merge_cells
from opsembed.preprocess.rescale import run_rescale_percentiles
from opsembed.preprocess.validate import run_validate_inputs, validate_inputs

CHANNELS = ["DNA", "actin"]
SIZE = 48  # tile side in pixels
CROP = 16
PATTERN_TAIL = "tiles/{plate}/{well}/{tile}.tif"


@pytest.fixture
def screen(tmp_path):
    """2 plates x 1 well x 2 tiles of (2, 48, 48) uint16; 4 cells per tile, 1 control per tile.

    The cell at (3, 3) of each tile has a crop leaving the tile; the others fit.
    """
    rng = np.random.default_rng(1)
    rows = []
    for plate in ("P1", "P2"):
        for tile in ("t0", "t1"):
            path = tmp_path / "tiles" / plate / "A01" / f"{tile}.tif"
            path.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(path, rng.integers(100, 1000, (2, SIZE, SIZE), dtype=np.uint16))
            for k, (y, x, gene) in enumerate([(10, 10, "nontargeting"), (24, 30, "GENE1"),
                                              (35.4, 20.6, "GENE2"), (3, 3, "GENE3")]):
                rows.append({"plate": plate, "well": "A01", "tile": tile, "y": y, "x": x, "gene": gene,
                             "cell_id": f"{plate}-{tile}-{k}"})
    cells = tmp_path / "cells.csv"
    pd.DataFrame(rows).to_csv(cells, index=False)
    truth = tmp_path / "complexes.tsv"
    truth.write_text("C1\tGENE1 GENE2 GENE3\n")
    return tmp_path


def _validate(root, **kw):
    args = dict(columns={}, channels=CHANNELS, controls="nontargeting", batch_key="plate",
                tiles_pattern=str(root / PATTERN_TAIL), crop_size=CROP)
    args.update(kw)
    return validate_inputs(root / "cells.csv", root / "complexes.tsv", **args)


def test_valid_screen_gets_batch_column(screen):
    cells = _validate(screen)
    assert len(cells) == 16
    assert cells["batch"].tolist() == cells["plate"].tolist()


def test_batch_key_may_be_another_column(screen):
    cells = _validate(screen, batch_key="tile")  # a tile is named within its plate and well
    assert set(cells["batch"]) == {"P1/A01/t0", "P1/A01/t1", "P2/A01/t0", "P2/A01/t1"}
    df = pd.read_csv(screen / "cells.csv")
    df["imaging"] = "01"  # the user's own id: read as written, one batch across both plates
    df.to_csv(screen / "cells.csv", index=False)
    assert set(_validate(screen, batch_key="imaging")["batch"]) == {"01"}


def test_unknown_batch_key_names_key_and_columns(screen):
    with pytest.raises(InputError, match=r"'lane'.*Available columns: \['plate', 'well'"):
        _validate(screen, batch_key="lane")


def test_missing_tile(screen):
    (screen / "tiles/P2/A01/t1.tif").unlink()
    with pytest.raises(InputError, match=r"P2/A01/t1.tif: tile not found"):
        _validate(screen)


def test_unreadable_tiff(screen):
    (screen / "tiles/P1/A01/t1.tif").write_bytes(b"this is not a tiff" * 10)
    with pytest.raises(InputError, match=r"P1/A01/t1.tif: unreadable TIFF"):
        _validate(screen)


def test_wrong_channel_count(screen):
    with pytest.raises(InputError, match=r"t0.tif: tile has 2 channel\(s\) but config `channels` lists 3"):
        _validate(screen, channels=["DNA", "actin", "tubulin"])


def test_tiles_of_different_shape(screen):
    tifffile.imwrite(screen / "tiles/P2/A01/t0.tif", np.zeros((2, SIZE, SIZE + 8), np.uint16))
    with pytest.raises(InputError, match=r"P2/A01/t0.tif: tile shape .* differs"):
        _validate(screen)


def test_coordinate_outside_tile_names_row_cell_and_tile(screen):
    df = pd.read_csv(screen / "cells.csv")
    df.loc[5, "y"] = SIZE - 0.5  # centre pixel would be row 48 of a 48-row tile
    df.to_csv(screen / "cells.csv", index=False)
    with pytest.raises(InputError, match=r"row 6 \(cell_id 'P1-t1-1'\).*P1/A01/t1.tif of 48x48"):
        _validate(screen)


def test_coordinate_on_last_pixel_is_inside(screen):
    df = pd.read_csv(screen / "cells.csv")
    df.loc[5, ["y", "x"]] = [SIZE - 0.51, -0.5]
    df.to_csv(screen / "cells.csv", index=False)
    assert len(_validate(screen)) == 16


def test_batch_without_controls(screen):
    df = pd.read_csv(screen / "cells.csv")
    df.loc[(df["plate"] == "P2") & (df["gene"] == "nontargeting"), "gene"] = "GENE1"
    df.to_csv(screen / "cells.csv", index=False)
    with pytest.raises(InputError, match=r"\['P2'\].*no control cells"):
        _validate(screen)


def test_genes_missing_from_ground_truth_only_warn(screen, caplog):
    (screen / "complexes.tsv").write_text("C1\tGENE1 OTHER\n")
    with caplog.at_level(logging.WARNING):
        cells = _validate(screen)
    assert len(cells) == 16
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2 of 3 genes are absent" in warnings[0].getMessage()
    assert "GENE2, GENE3" in warnings[0].getMessage()
    assert "nontargeting" not in warnings[0].getMessage()


def test_crop_larger_than_tile(screen):
    with pytest.raises(InputError, match="exceeds the tile size 48x48"):
        _validate(screen, crop_size=56)


def test_chain_on_tiny_screen(screen):
    """validate -> flatfield -> percentiles -> crops -> cells.h5, with the cells accounted for."""
    res = screen / "results"
    pattern = str(screen / PATTERN_TAIL)
    run_validate_inputs(screen / "cells.csv", screen / "complexes.tsv", res / "cells.parquet", {},
                        CHANNELS, "nontargeting", "plate", pattern, CROP)
    for plate in ("P1", "P2"):
        tiles = [screen / f"tiles/{plate}/A01/{t}.tif" for t in ("t0", "t1")]
        run_fit_flatfield(tiles, res / f"ff/{plate}.npz", res / f"ff/{plate}.png",
                          {"enabled": False, "n_tiles": 2, "get_darkfield": False, "offset": 0.0}, CHANNELS, 0, plate)
    run_rescale_percentiles(res / "cells.parquet", [res / "ff/P1.npz", res / "ff/P2.npz"],
                            res / "percentiles.tsv", res / "percentiles.png",
                            {"low": 0.0, "high": 100.0, "scope": "plate", "n_tiles": 2},
                            CHANNELS, ["P1", "P2"], 0, pattern)
    table = read_table(res / "percentiles.tsv")
    # identity flatfield and all pixels sampled: percentiles 0/100 are the tiles' min/max
    p1 = np.stack([tifffile.imread(screen / f"tiles/P1/A01/{t}.tif") for t in ("t0", "t1")])
    row = table[(table["plate"] == "P1") & (table["channel"] == "actin")].iloc[0]
    assert (row["low"], row["high"]) == (p1[:, 1].min(), p1[:, 1].max())
    for plate in ("P1", "P2"):
        run_crop_well(res / "cells.parquet", res / f"ff/{plate}.npz", res / "percentiles.tsv",
                      res / f"crops/{plate}/A01.h5", {"size": CROP, "edge": "drop"}, CHANNELS,
                      pattern, plate, "A01")
    attrs = read_attrs(res / "crops/P1/A01.h5")
    assert (attrs["n_cells"], attrs["n_kept"], attrs["n_dropped_edge"], attrs["n_padded"]) == (8, 6, 2, 0)
    crops = read_crops(res / "crops/P1/A01.h5")
    assert crops.shape == (6, 2, CROP, CROP) and crops.min() >= 0 and crops.max() <= 1
    merge_cells([res / "crops/P1/A01.h5", res / "crops/P2/A01.h5"], res / "cells.parquet",
                res / "cells.h5", res / "zscore.tsv", res / "summary.tsv", "nontargeting", "plate",
                CHANNELS, 7, CROP)
    obs = read_obs(res / "cells.h5")
    assert sorted(obs["cell_id"]) == sorted(f"{p}-{t}-{k}" for p in ("P1", "P2") for t in ("t0", "t1")
                                            for k in range(3))
    assert read_attrs(res / "cells.h5")["genes"] == ["GENE1", "GENE2", "nontargeting"]
    summary = read_table(res / "summary.tsv")
    assert summary[["n_cells", "n_kept", "n_dropped_edge"]].to_numpy().tolist() == [[8, 6, 2], [8, 6, 2]]
