"""opsembed.io: atomic writes, the cell table, tiles, complexes, embeddings, cells.h5."""

import numpy as np
import pandas as pd
import pytest
import tifffile

from opsembed.io.atomic import atomic_path
from opsembed.io.cells import feature_columns, read_cells
from opsembed.io.embeddings import read_embeddings, write_embeddings
from opsembed.io.errors import InputError
from opsembed.io.ground_truth import read_complexes
from opsembed.io.h5 import iter_crop_blocks, read_attrs, read_crops, read_obs, write_cells_h5
from opsembed.io.tables import table_columns
from opsembed.io.tiles import read_tile, tile_shape


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "sub" / "out.tsv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("crash mid-write")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".tsv" and tmp != target
        tmp.write_text("done")
    assert target.read_text() == "done"


def _cells(path, **overrides):
    df = pd.DataFrame({"plate": ["P1", "P1", "P2"], "well": ["A1"] * 3, "tile": [0, 1, 0],
                       "y": [10.0, 20.5, 30.0], "x": [5.0, 6.0, 7.0],
                       "gene": ["TP53", "nontargeting", "MCM2"], "area": [100, 120, 90]})
    for key, value in overrides.items():
        df[key] = value
    df.to_csv(path, index=False)
    return path


def test_read_cells_fills_optional_columns_and_keeps_features(tmp_path):
    cells = read_cells(_cells(tmp_path / "c.csv"))
    assert list(cells.columns[:8]) == ["plate", "well", "tile", "y", "x", "gene", "sgRNA", "cell_id"]
    assert cells["tile"].tolist() == ["0", "1", "0"]
    assert cells["sgRNA"].tolist() == cells["gene"].tolist()
    assert cells["cell_id"].is_unique
    assert feature_columns(cells) == ["area"]


def test_read_cells_renames_funk_columns(tmp_path):
    df = pd.read_csv(_cells(tmp_path / "c.csv")).rename(
        columns={"y": "i_nucleus", "x": "j_nucleus", "gene": "gene_symbol_0"})
    df.to_parquet(tmp_path / "c.parquet")
    cells = read_cells(tmp_path / "c.parquet",
                       {"i_nucleus": "y", "j_nucleus": "x", "gene_symbol_0": "gene"})
    assert cells["y"].tolist() == [10.0, 20.5, 30.0]


def test_read_cells_names_missing_column(tmp_path):
    path = tmp_path / "c.csv"
    pd.read_csv(_cells(path)).drop(columns="gene").to_csv(path, index=False)
    with pytest.raises(InputError, match=r"c\.csv: missing required column\(s\) \['gene'\]"):
        read_cells(path)


def test_read_cells_names_row_with_nan_coordinate(tmp_path):
    path = _cells(tmp_path / "c.csv", x=[1.0, np.nan, 3.0])
    with pytest.raises(InputError, match=r"c\.csv: row 2 has a non-numeric or NaN 'x'"):
        read_cells(path)


def test_read_cells_rejects_duplicate_cell_ids(tmp_path):
    path = _cells(tmp_path / "c.csv", cell_id=["a", "b", "a"])
    with pytest.raises(InputError, match="cell_id 'a' appears twice"):
        read_cells(path)


def test_read_tile_shapes_and_errors(tmp_path):
    tifffile.imwrite(tmp_path / "two_d.tif", np.arange(12, dtype=np.uint8).reshape(3, 4))
    tifffile.imwrite(tmp_path / "three.tif", np.ones((3, 4, 5), dtype=np.uint16), photometric="minisblack")
    (tmp_path / "bad.tif").write_bytes(b"not a tiff at all")
    two_d = read_tile(tmp_path / "two_d.tif")
    assert two_d.shape == (1, 3, 4) and two_d.dtype == np.float32 and two_d[0, 2, 3] == 11
    assert tile_shape(tmp_path / "three.tif") == (3, 4, 5)
    with pytest.raises(InputError, match="three.tif: tile has 3 channel"):
        read_tile(tmp_path / "three.tif", n_channels=4)
    with pytest.raises(InputError, match="bad.tif: unreadable TIFF"):
        tile_shape(tmp_path / "bad.tif")
    with pytest.raises(InputError, match="missing.tif: tile not found"):
        read_tile(tmp_path / "missing.tif")


def test_read_complexes_accepts_both_layouts(tmp_path):
    (tmp_path / "wide.tsv").write_text("MCM complex\tMCM2 MCM3 MCM4\nArp2/3\tACTR2 ACTR3\n")
    (tmp_path / "long.tsv").write_text(
        "complex\tgene\nMCM complex\tMCM2\nMCM complex\tMCM3\nMCM complex\tMCM4\nArp2/3\tACTR2\nArp2/3\tACTR3\n")
    wide, long = read_complexes(tmp_path / "wide.tsv"), read_complexes(tmp_path / "long.tsv")
    pd.testing.assert_frame_equal(wide, long)
    assert wide.groupby("complex").size().to_dict() == {"Arp2/3": 2, "MCM complex": 3}
    (tmp_path / "bad.tsv").write_text("MCM complex\tMCM2\tMCM3\n")
    with pytest.raises(InputError, match="bad.tsv: line 1 has 3 tab-separated fields"):
        read_complexes(tmp_path / "bad.tsv")


def test_embeddings_round_trip_and_errors(tmp_path):
    values = np.arange(6, dtype=float).reshape(3, 2)
    write_embeddings(tmp_path / "m.tsv", ["A", "B", "C"], values)
    emb = read_embeddings(tmp_path / "m.tsv")
    assert emb.index.tolist() == ["A", "B", "C"]
    np.testing.assert_array_equal(emb.to_numpy(), values)
    (tmp_path / "nan.tsv").write_text("gene\td0\td1\nA\t1\t2\nB\tnan\t3\n")
    with pytest.raises(InputError, match=r"nan.tsv: gene 'B', column 'd0' is NaN"):
        read_embeddings(tmp_path / "nan.tsv")
    (tmp_path / "dup.tsv").write_text("gene\td0\nA\t1\nA\t2\n")
    with pytest.raises(InputError, match="dup.tsv: gene 'A' has more than one row"):
        read_embeddings(tmp_path / "dup.tsv")


def test_cells_h5_round_trip_in_blocks(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(5, 2, 8, 8)).astype(np.float16)
    obs = pd.DataFrame({"cell_id": list("abcde"), "gene": ["G1", "G2", "G1", "nt", "G2"],
                        "y": np.arange(5.0)})
    attrs = {"channels": ["DNA", "actin"], "crop_size": 8, "zscore_mean": np.zeros((1, 2))}
    path = tmp_path / "cells.h5"
    write_cells_h5(path, obs, [images[:3], images[3:]], attrs)
    pd.testing.assert_frame_equal(read_obs(path), obs)
    got = read_attrs(path)
    assert got["channels"] == ["DNA", "actin"] and got["crop_size"] == 8
    np.testing.assert_array_equal(read_crops(path), images.astype(np.float32))
    np.testing.assert_array_equal(read_crops(path, [4, 0]), images[[4, 0]].astype(np.float32))
    starts = [start for start, _ in iter_crop_blocks(path, block_size=2)]
    assert starts == [0, 2, 4]
    with pytest.raises(ValueError, match="2 crops for 5 obs rows"):
        write_cells_h5(tmp_path / "short.h5", obs, [images[:2]], attrs)
    assert not (tmp_path / "short.h5").exists()


@pytest.mark.parametrize("name", ["cells.csv", "cells.tsv", "cells.tsv.gz", "cells.parquet"])
def test_table_columns_reads_the_header_only(tmp_path, name):
    df = pd.DataFrame({"plate": ["P1", "P2"], "series": ["S1", "S1"], "y": [1.0, 2.0]})
    if name.endswith(".parquet"):
        df.to_parquet(tmp_path / name)
    else:
        df.to_csv(tmp_path / name, sep="," if name.endswith(".csv") else "\t", index=False)
    assert table_columns(tmp_path / name) == ["plate", "series", "y"]
    with pytest.raises(InputError, match="cells.xlsx: unknown table type"):
        (tmp_path / "cells.xlsx").write_text("x")
        table_columns(tmp_path / "cells.xlsx")
