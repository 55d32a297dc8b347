"""The preprocessing chain on real third-party images (skipped when ../shared/data/real is absent)."""

import numpy as np
import pandas as pd
import pytest
import tifffile
from scipy.ndimage import gaussian_filter

from opsembed.io.h5 import read_attrs, read_crops, read_obs
from opsembed.io.tables import write_table
from opsembed.preprocess.crops import run_crop_well
from opsembed.preprocess.flatfield import load_model, run_fit_flatfield
from opsembed.preprocess.rescale import run_rescale_percentiles

pytestmark = pytest.mark.real  # the conftest fixture real_data skips when the folder is absent


def test_bbbc016_flatfield_matches_the_smoothed_mean_image(real_data, tmp_path):
    """24 GFP tiles of one plate: BaSiC's flatfield follows the real illumination gradient."""
    paths = sorted((real_data / "illumination_bbbc016_gfp").glob("*.TIF"))
    assert len(paths) == 24
    cfg = {"enabled": True, "n_tiles": 24, "get_darkfield": True, "offset": 0.0}
    run_fit_flatfield(paths, tmp_path / "ff.npz", tmp_path / "ff.png", cfg, ["GFP"], 0, "BBBC016")
    flat, dark, _ = load_model(tmp_path / "ff.npz")
    assert flat.shape == (1, 512, 512) and flat.mean() == pytest.approx(1.0, abs=1e-4)
    mean_image = np.mean([tifffile.imread(p).astype(np.float32) for p in paths], axis=0)
    smooth = gaussian_filter(mean_image, 16)
    r = np.corrcoef(gaussian_filter(flat[0], 16).ravel(), smooth.ravel())[0, 1]
    assert r > 0.9
    # the gradient is strong: the flatfield spans well beyond +-10 % of its mean
    assert flat.min() < 0.8 and flat.max() > 1.2


def test_ht29_crops_are_centred_on_cellprofiler_nuclei(real_data, tmp_path):
    """One 3-channel field with CellProfiler's 289 nucleus centres, through flatfield (off),
    percentiles and crop_well: the mean DNA crop peaks at its centre."""
    ht29 = real_data / "examplehuman_ht29"
    image = np.stack([tifffile.imread(ht29 / f"AS_09125_050116030001_D03f00d{i}.tif") for i in range(3)])
    tile = tmp_path / "tiles" / "P1" / "D03" / "f00.tif"
    tile.parent.mkdir(parents=True)
    tifffile.imwrite(tile, image, photometric="minisblack")
    nuclei = pd.read_csv(ht29 / "Nuclei.csv")
    cells = pd.DataFrame({"plate": "P1", "well": "D03", "tile": "f00", "y": nuclei["AreaShape_Center_Y"],
                          "x": nuclei["AreaShape_Center_X"], "gene": "nontargeting", "sgRNA": "nontargeting",
                          "cell_id": nuclei["ObjectNumber"].astype(str), "batch": "P1"})
    write_table(cells, tmp_path / "cells.parquet")
    channels, size = ["DNA", "PH3", "cell"], 32
    pattern = str(tmp_path / "tiles/{plate}/{well}/{tile}.tif")
    run_fit_flatfield([tile], tmp_path / "ff.npz", tmp_path / "ff.png",
                      {"enabled": False, "n_tiles": 1, "get_darkfield": False, "offset": 0.0}, channels, 0, "P1")
    run_rescale_percentiles(tmp_path / "cells.parquet", [tmp_path / "ff.npz"], tmp_path / "pct.tsv", None,
                            {"low": 0.1, "high": 99.9, "scope": "plate", "n_tiles": 1}, channels, ["P1"], 0,
                            pattern)
    run_crop_well(tmp_path / "cells.parquet", tmp_path / "ff.npz", tmp_path / "pct.tsv", tmp_path / "D03.h5",
                  {"size": size, "edge": "drop"}, channels, pattern, "P1", "D03")
    attrs = read_attrs(tmp_path / "D03.h5")
    assert attrs["n_cells"] == 289 and attrs["n_kept"] + attrs["n_dropped_edge"] == 289
    assert attrs["n_kept"] > 250
    crops = read_crops(tmp_path / "D03.h5")
    assert len(read_obs(tmp_path / "D03.h5")) == len(crops) == attrs["n_kept"]
    mean_dna = crops[:, 0].mean(axis=0)
    peak = np.array(np.unravel_index(np.argmax(mean_dna), mean_dna.shape))
    assert np.abs(peak - size // 2).max() <= 2
    border = np.concatenate([mean_dna[0], mean_dna[-1], mean_dna[:, 0], mean_dna[:, -1]]).mean()
    assert mean_dna[size // 2, size // 2] > 2 * border
