"""`snakemake all_preprocess` on real-world tile layouts: one LZW-compressed (C, Y, X) file per
tile, one LZW file per channel named as Cell Painting's Phenix names them, and (when
../shared/data/real is present) the real Cell Painting field with CellProfiler's centres."""

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml
from scipy.ndimage import gaussian_filter

from conftest import REPO
from test_workflow import _run

CHANNELS = ["DNA", "ER", "Mito"]
TOKENS = {"DNA": "5", "ER": "2", "Mito": "4"}
SIZE, CROP, SHIFT = 128, 32, 6  # tile side, crop side; Mito's spot sits SHIFT pixels right of the nucleus
CENTRES = [(30, 30), (30, 90), (64, 50), (96, 30), (96, 96), (60, 100)]


def _tile(rng) -> np.ndarray:
    """(3, SIZE, SIZE) uint16: DNA spots on the cell centres, ER texture, Mito spots right of them."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    vignetting = 1.0 - 0.3 * ((yy - 64) ** 2 + (xx - 64) ** 2) / 64 ** 2
    dna, mito = np.zeros((SIZE, SIZE)), np.zeros((SIZE, SIZE))
    for y, x in CENTRES:
        dna[y, x] = mito[y, x + SHIFT] = 4000.0
    er = gaussian_filter(rng.gamma(2.0, 50.0, (SIZE, SIZE)), 2)
    planes = [gaussian_filter(dna, 2) * 50, er, gaussian_filter(mito, 2) * 50]
    return np.stack([(p * vignetting + 100 + rng.normal(0, 3, p.shape)) for p in planes]).clip(0).astype(np.uint16)


def _screen(root, layout: str) -> dict:
    """2 plates x 2 wells x 2 tiles with 6 cells each (2 controls per tile), and the user config."""
    rng = np.random.default_rng(3)
    wells, tiles = (("r01c01", "r02c03"), ("f01p01", "f02p01")) if layout == "cellpainting" else \
        (("A01", "B02"), ("000", "001"))
    genes = iter(["G1", "G2", "G3", "G4", "G5", "G6", "G7", "G8"] * 8)
    rows = []
    for plate in ("P1", "P2"):
        for well in wells:
            for tile in tiles:
                image = _tile(rng)
                if layout == "cellpainting":
                    for name, plane in zip(CHANNELS, image):
                        path = root / "images" / plate / f"{well}{tile}-ch{TOKENS[name]}sk1fk1fl1.tiff"
                        path.parent.mkdir(parents=True, exist_ok=True)
                        tifffile.imwrite(path, plane, compression="lzw", predictor=True)
                else:
                    path = root / "tiles" / plate / well / f"{tile}.tif"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tifffile.imwrite(path, image, compression="lzw", photometric="minisblack")
                for k, (y, x) in enumerate(CENTRES):
                    rows.append({"plate": plate, "well": well, "tile": tile, "y": y + 0.2, "x": x - 0.3,
                                 "gene": "nontargeting" if k < 2 else next(genes)})
    pd.DataFrame(rows).to_csv(root / "cells.csv", index=False)
    (root / "complexes.tsv").write_text("C1\tG1 G2 G3 G4\nC2\tG5 G6 G7 G8\n")
    tiles_pattern = (str(root / "images/{plate}/{well}{tile}-ch{channel}sk1fk1fl1.tiff") if layout == "cellpainting"
                     else str(root / "tiles/{plate}/{well}/{tile}.tif"))
    config = {"input": {"tiles": tiles_pattern, "cells": str(root / "cells.csv"),
                        "ground_truth": str(root / "complexes.tsv")},
              "channels": CHANNELS,
              # a tiny screen: small crops, every tile sampled, small complexes
              "preprocess": {"crop": {"size": CROP}, "flatfield": {"n_tiles": 4}, "rescale": {"n_tiles": 4}},
              "evaluation": {"ground_truth": {"min_genes": 2}}}
    if layout == "cellpainting":
        config["input"]["channel_tokens"] = TOKENS
    return config


def _all_preprocess(work, config):
    (work / "screen.yaml").write_text(yaml.safe_dump(config))
    _run(["all_preprocess", "--cores", "2", "--directory", str(work), "--snakefile", str(REPO / "Snakefile"),
          "--configfile", str(work / "screen.yaml")])
    return work / "results" / "preprocess"


@pytest.mark.integration
@pytest.mark.parametrize("layout", ["lzw", "cellpainting"])
def test_all_preprocess_reads_compressed_and_per_channel_tiles(tmp_path, layout):
    from opsembed.io.h5 import read_attrs, read_crops, read_obs

    out = _all_preprocess(tmp_path, _screen(tmp_path, layout))
    obs, attrs, crops = read_obs(out / "cells.h5"), read_attrs(out / "cells.h5"), read_crops(out / "cells.h5")
    summary = pd.read_csv(out / "summary.tsv", sep="\t", dtype={"plate": str, "well": str})
    assert attrs["channels"] == CHANNELS and crops.shape == (48, 3, CROP, CROP)
    assert summary["n_kept"].sum() == 48 and summary["n_dropped_blank"].sum() == 0
    assert np.isfinite(crops).all()
    if layout == "lzw":
        assert sorted(obs["tile"].unique()) == ["000", "001"]  # the ids as written
    # each file token reached its channel: DNA peaks at the crop centre, Mito SHIFT pixels right
    mean = crops.mean(axis=0)
    assert np.unravel_index(np.argmax(mean[0]), mean[0].shape) == (CROP // 2, CROP // 2)
    assert np.unravel_index(np.argmax(mean[2]), mean[2].shape) == (CROP // 2, CROP // 2 + SHIFT)
    assert mean[1].max() < 0.5 * mean[0].max()
    with np.load(out / "flatfield" / "P1.npz") as model:
        assert np.isfinite(model["flatfield"]).all() and len(model["tiles"]) == 4
        if layout == "cellpainting":  # the sample names tiles, not channel files
            assert all(t.endswith("-ch{channel}sk1fk1fl1.tiff") for t in model["tiles"])


@pytest.mark.integration
@pytest.mark.real
def test_all_preprocess_on_the_real_cell_painting_field(real_data, tmp_path):
    """The real Phenix field (1080 x 1080, LZW, one file per channel) with CellProfiler's
    nucleus centres, read through input.columns; one tile, so no flatfield fit."""
    folder = real_data / "cellpainting_br00143976"
    profiles = pd.read_parquet(folder / "BR00143976_shrunken.parquet",
                               columns=["Nuclei_AreaShape_Center_X", "Nuclei_AreaShape_Center_Y"])
    cells = profiles.assign(plate=folder.name, well="r03c03", tile="f03p01",
                            gene=["nontargeting", "G1", "G2", "G3", "G4"])
    cells.to_parquet(tmp_path / "cells.parquet")
    (tmp_path / "complexes.tsv").write_text("C1\tG1 G2\nC2\tG3 G4\n")
    config = {"input": {"tiles": str(real_data / "{plate}/{well}{tile}-ch{channel}sk1fk1fl1.tiff"),
                        "cells": str(tmp_path / "cells.parquet"), "ground_truth": str(tmp_path / "complexes.tsv"),
                        "columns": {"Nuclei_AreaShape_Center_X": "x", "Nuclei_AreaShape_Center_Y": "y"},
                        "channel_tokens": {"DNA": 5, "ER": 2, "AGP": 3, "Mito": 4, "RNA": 6}},
              "channels": ["DNA", "ER", "AGP", "Mito", "RNA"],
              "preprocess": {"flatfield": {"enabled": False}},
              "evaluation": {"ground_truth": {"min_genes": 2}}}
    from opsembed.io.h5 import read_attrs, read_crops, read_obs

    out = _all_preprocess(tmp_path, config)
    obs, crops = read_obs(out / "cells.h5"), read_crops(out / "cells.h5")
    assert read_attrs(out / "cells.h5")["channels"] == config["channels"]
    assert len(obs) == 5 and crops.shape == (5, 5, 96, 96) and np.isfinite(crops).all()
    # CellProfiler's nucleus centres: DNA is brighter at the crop centre than at its border
    dna = crops[:, 0].mean(axis=0)
    border = np.concatenate([dna[0], dna[-1], dna[:, 0], dna[:, -1]]).mean()
    assert dna[44:52, 44:52].mean() > border + 0.5


@pytest.mark.parametrize("override, message", [
    ({"input": {"tiles": "{plate}/{well}/{tile}_{foo}.tif"}},
     r"unknown field \{foo\}; the allowed fields are \{plate\}, \{well\}, \{tile\}, \{channel\}"),
    ({"input": {"channel_tokens": {"DNA": "5"}}}, r"input.channel_tokens is set but input.tiles .* has no \{channel\}"),
    ({"preprocess": {"flatfield": {"n_tiles": 1}}}, r"preprocess/flatfield/n_tiles: 1 is less than the minimum of 2"),
])
def test_bad_tile_settings_stop_the_run_at_start_naming_the_key(tmp_path, override, message):
    """Case 12 ({foo} was a bare KeyError) and case 13 (n_tiles 1 crashed BaSiC), at parse time."""
    import re

    config = _screen(tmp_path, "lzw")
    for key, value in override.items():
        config[key] = {**config.get(key, {}), **value}
    if "tiles" in override.get("input", {}):
        config["input"]["tiles"] = str(tmp_path / config["input"]["tiles"])
    (tmp_path / "screen.yaml").write_text(yaml.safe_dump(config))
    proc = _run(["-n", "all_preprocess", "--directory", str(tmp_path), "--snakefile", str(REPO / "Snakefile"),
                 "--configfile", str(tmp_path / "screen.yaml")], check=False)
    assert proc.returncode != 0
    assert re.search(message, proc.stdout + proc.stderr), (proc.stdout + proc.stderr)[-3000:]
