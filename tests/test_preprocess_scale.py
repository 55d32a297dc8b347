"""Issue 15: preprocessing without a whole-screen job.

The per-well control moments replayed by one combine step, the per-well z-scoring and the
virtual cells.h5 give exactly (bit for bit) the crops and obs of the former single-pass
merge; the per-plate percentile samples equal the one-job ones; the parse-time listing
groups before building Python objects; a failed per-well job leaves the other wells valid.
"""

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from opsembed.io.h5 import (iter_crop_blocks, missing_sources, read_attrs, read_crops, read_obs,
                            write_cells_h5)
from opsembed.io.tables import group_counts, read_table_where, write_table
from opsembed.preprocess.merge import BLOCK, merge_cells, well_cells_path
from opsembed.preprocess.zscore import ChannelMoments, zscore
from opsembed.train.data import read_resized

CHANNELS = ["DNA", "actin"]
S = 4


def _old_merge(crop_paths, h5_path, controls="nontargeting"):
    """The single-pass merge that issue 15 replaced: moments over every well's 128-row blocks
    in well order, then every crop z-scored into one file (the reference layout)."""
    obs = pd.concat([read_obs(p) for p in crop_paths if read_attrs(p)["n_kept"] > 0], ignore_index=True)
    batches = sorted(obs["batch"].astype(str).unique())
    moments = {}
    for path in crop_paths:
        if read_attrs(path)["n_kept"] == 0:
            continue
        o = read_obs(path)
        ctl, lab = o["gene"].eq(controls).to_numpy(), o["batch"].astype(str).to_numpy()
        for start, block in iter_crop_blocks(path, BLOCK):
            m, lb = ctl[start:start + len(block)], lab[start:start + len(block)]
            for b in np.unique(lb[m]):
                moments.setdefault(b, ChannelMoments(len(CHANNELS))).add(block[m & (lb == b)])
    mean = np.stack([moments[b].mean for b in batches])
    std = np.stack([moments[b].std for b in batches])
    genes = sorted(obs["gene"].astype(str).unique())
    obs["gene_id"] = np.searchsorted(genes, obs["gene"].astype(str).to_numpy()).astype(np.int64)
    index = np.searchsorted(batches, obs["batch"].astype(str).to_numpy())

    def blocks():
        offset = 0
        for path in crop_paths:
            for start, block in iter_crop_blocks(path, BLOCK):
                yield zscore(block, index[offset + start: offset + start + len(block)], mean, std)
            offset += read_attrs(path)["n_kept"]

    write_cells_h5(h5_path, obs, blocks(), {"genes": genes})
    return mean, std


@pytest.fixture
def screen(tmp_path):
    """Four well crop files (one empty), 300 cells in a well so that blocks of 128 rows
    split it, two batches, and values far from 0 so that the order of float sums matters."""
    rng = np.random.default_rng(5)
    spec = [("B1", "A01", 300), ("B1", "A02", 7), ("B2", "A01", 140), ("B2", "A02", 0)]
    paths, rows = [], []
    for plate, well, n in spec:
        genes = rng.choice(["nontargeting", "G1", "G2", "G3"], size=n)
        obs = pd.DataFrame({"plate": plate, "well": well, "tile": "t", "y": 10.0, "x": 20.0, "gene": genes,
                            "sgRNA": np.char.add(genes.astype(str), "_1"),
                            "cell_id": [f"{plate}{well}-{k}" for k in range(n)], "batch": plate,
                            "area": rng.uniform(0, 9, n)})
        crops = rng.uniform(0.3, 0.9, (n, 2, S, S)).astype(np.float32)
        path = tmp_path / "crops" / plate / f"{well}.h5"
        dropped = obs.iloc[:0] if n else pd.DataFrame({"plate": [plate], "well": [well], "tile": ["t"],
                                                       "y": [0.0], "x": [0.0], "gene": ["G1"], "sgRNA": ["G1_1"],
                                                       "cell_id": [f"{plate}{well}-edge"], "batch": [plate],
                                                       "area": [1.0]})
        write_cells_h5(path, obs, [crops], {"plate": plate, "well": well, "n_cells": n + len(dropped),
                                            "n_kept": n, "n_dropped_edge": len(dropped), "n_dropped_blank": 0, "n_padded": 0,
                                            "crop_size": S, "edge": "drop", "channels": CHANNELS})
        paths.append(path)
        rows += [obs, dropped]
    write_table(pd.concat(rows, ignore_index=True), tmp_path / "cells.parquet")
    return tmp_path, paths


def test_virtual_cells_h5_equals_the_single_file_layout(screen):
    root, paths = screen
    mean, std = _old_merge(paths, root / "old.h5")
    merge_cells(paths, root / "cells.parquet", root / "cells.h5", root / "zscore.tsv", root / "summary.tsv",
                "nontargeting", "plate", CHANNELS, 0, S)
    new, old = root / "cells.h5", root / "old.h5"
    with h5py.File(new) as f:
        assert f["images"].is_virtual and f["images"].shape == (447, 2, S, S)
        assert sorted({s.file_name for s in f["images"].virtual_sources()}) == [
            "cells/B1/A01.h5", "cells/B1/A02.h5", "cells/B2/A01.h5"]  # relative; the empty well has none
    np.testing.assert_array_equal(read_crops(new), read_crops(old))  # bit for bit
    pd.testing.assert_frame_equal(pd.read_hdf(new, "obs"), pd.read_hdf(old, "obs"))
    attrs = read_attrs(new)
    np.testing.assert_array_equal(attrs["zscore_mean"], mean)
    assert attrs["genes"] == read_attrs(old)["genes"] == ["G1", "G2", "G3", "nontargeting"]
    # crop by crop through read_direct (training's streaming reader), in a scrambled order
    rows = np.array([446, 0, 300, 128, 127, 306, 307])
    np.testing.assert_array_equal(read_crops(new, rows), read_crops(old, rows))
    np.testing.assert_array_equal(read_resized(str(new), rows, S).numpy(), read_resized(str(old), rows, S).numpy())
    # the results folder moves as a whole: the sources are found beside the file
    os.rename(root, root.with_name(root.name + "-moved"))
    moved = root.with_name(root.name + "-moved")
    np.testing.assert_array_equal(read_crops(moved / "cells.h5", rows), read_crops(moved / "old.h5", rows))
    assert missing_sources(moved / "cells.h5") == []
    os.remove(moved / "cells" / "B1" / "A02.h5")
    assert missing_sources(moved / "cells.h5") == ["cells/B1/A02.h5"]
    with h5py.File(moved / "cells.h5") as f:  # through HDF5 itself a lost source reads as NaN, not as data
        assert np.isnan(f["images"][300]).all() and not np.isnan(f["images"][0]).any()
    from opsembed.io.errors import InputError

    with pytest.raises(InputError, match=r"cells.h5: its images read from .*cells/B1/A02.h5, which cannot be opened"):
        read_crops(moved / "cells.h5", [0, 300])  # the library's reader names the file


def test_group_counts_lists_distinct_rows_in_file_order(tmp_path):
    df = pd.DataFrame({"plate": ["P2", "P1", "P2", "P1", "P3"], "well": ["01", "01", "01", "02", "01"],
                       "y": [1.0, 2.0, 3.0, 4.0, 5.0]})
    for name in ("t.csv", "t.parquet"):
        write_table(df, tmp_path / name)
        out = group_counts(tmp_path / name, ["plate", "well"])
        assert out.values.tolist() == [["P2", "01", 2, 0], ["P1", "01", 1, 1], ["P1", "02", 1, 3],
                                       ["P3", "01", 1, 4]], name
        where = read_table_where(tmp_path / name, ["well", "y"], "plate", "P1")
        assert where.index.tolist() == [1, 3] and where["y"].tolist() == [2.0, 4.0], name


def test_plate_samples_equal_the_one_job_samples(tmp_path):
    """sample_percentiles per plate replays the generator of the plates before it: the
    combined table equals run_rescale_percentiles' (tiles larger than PIXELS_PER_TILE)."""
    import tifffile

    from opsembed.preprocess.flatfield import save_model
    from opsembed.preprocess.rescale import combine_percentiles, run_plate_sample, run_rescale_percentiles

    rng = np.random.default_rng(1)
    rows = []
    for p, n_tiles in (("P1", 3), ("P2", 2), ("P3", 3)):
        for t in range(n_tiles):
            path = tmp_path / "tiles" / p / "A01" / f"{t}.tif"
            path.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(path, rng.integers(0, 4000, (2, 300, 300), dtype=np.uint16))
            rows.append((p, "A01", str(t), 5.0, 5.0, "G1"))
        save_model(tmp_path / f"{p}.npz", np.ones((2, 300, 300), np.float32), np.zeros((2, 300, 300), np.float32),
                   CHANNELS, [])
    write_table(pd.DataFrame(rows, columns=["plate", "well", "tile", "y", "x", "gene"]), tmp_path / "cells.parquet")
    cfg = {"n_tiles": 2, "low": 0.1, "high": 99.9, "scope": "plate"}
    pattern = str(tmp_path / "tiles/{plate}/{well}/{tile}.tif")
    plates = ["P1", "P2", "P3"]
    run_rescale_percentiles(tmp_path / "cells.parquet", [tmp_path / f"{p}.npz" for p in plates], tmp_path / "one.tsv",
                            None, cfg, CHANNELS, plates, 7, pattern, {})
    for p in plates:
        run_plate_sample(tmp_path / "cells.parquet", tmp_path / f"{p}.npz", tmp_path / f"s_{p}.npz", p, plates, cfg,
                         CHANNELS, 7, pattern, {})
    combine_percentiles([tmp_path / f"s_{p}.npz" for p in plates], plates, tmp_path / "split.tsv", None, cfg, CHANNELS)
    assert (tmp_path / "one.tsv").read_text() == (tmp_path / "split.tsv").read_text()


# ---- a crash in one per-well job (Snakemake end to end) ----

REPO = Path(__file__).resolve().parents[1]


def _tiny_screen(root):
    """2 plates x 2 wells x 2 tiles of (2, 32, 32) uint16; a control and 4 genes per tile."""
    import tifffile

    rng = np.random.default_rng(0)
    rows = []
    for plate in ("P1", "P2"):
        for well in ("01", "02"):
            for tile in ("0", "1"):
                path = root / "tiles" / plate / well / f"{tile}.tif"
                path.parent.mkdir(parents=True, exist_ok=True)
                tifffile.imwrite(path, rng.integers(100, 1000, (2, 32, 32), dtype=np.uint16))
                for k, gene in enumerate(("nontargeting", "G1", "G2", "G3", "G4")):
                    rows.append((plate, well, tile, 6.0 + 5 * k, 16.0, gene, f"{plate}{well}{tile}{k}"))
    pd.DataFrame(rows, columns=["plate", "well", "tile", "y", "x", "gene", "cell_id"]).to_csv(
        root / "cells.csv", index=False)
    (root / "complexes.tsv").write_text("C1\tG1 G2\nC2\tG3 G4\n")
    config = {"input": {"tiles": str(root / "tiles/{plate}/{well}/{tile}.tif"), "cells": str(root / "cells.csv"),
                        "ground_truth": str(root / "complexes.tsv")},
              "channels": CHANNELS, "evaluation": {"ground_truth": {"min_genes": 2}},
              "preprocess": {"crop": {"size": 8}, "flatfield": {"n_tiles": 2}, "rescale": {"n_tiles": 2}}}
    import yaml

    (root / "screen.yaml").write_text(yaml.safe_dump(config))


def _run(root, *args):
    """Snakemake on the tiny screen: (return code, the set of (rule, plate/well) jobs it ran)."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "workflow" / "scripts"))
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args, "--cores", "1", "--keep-going",
                           "--directory", str(root), "--snakefile", str(REPO / "Snakefile"), "--configfile",
                           str(REPO / "config" / "config.yaml"), str(root / "screen.yaml")],
                          capture_output=True, text=True, env=env, timeout=600)
    jobs, rule = set(), None
    for line in (proc.stdout + proc.stderr).splitlines():
        line = line.strip()
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            rule = line.split()[1].rstrip(":")
            jobs.add((rule, None))
        elif line.startswith("wildcards:") and rule:
            w = dict(kv.split("=") for kv in line[len("wildcards:"):].replace(" ", "").split(","))
            jobs.discard((rule, None))
            jobs.add((rule, "/".join(w[k] for k in ("plate", "well") if k in w)))
    return proc.returncode, jobs, proc.stderr


def _spoil(path):
    """Overwrite ``path`` with bytes no reader accepts, keeping its mtime (Snakemake sees no
    change); returns a function that puts the original back, mtime included."""
    original, stat = path.read_bytes(), path.stat()
    path.write_bytes(b"not a tile nor an HDF5 file" * 100)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    def restore():
        path.write_bytes(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return restore


@pytest.mark.integration
def test_a_failed_well_job_leaves_the_other_wells_and_only_it_reruns(tmp_path):
    root = tmp_path
    _tiny_screen(root)
    pre = root / "results" / "preprocess"
    rc, _, err = _run(root, "results/preprocess/percentiles.tsv")
    assert rc == 0, err[-3000:]
    # crop stage: a tile of P1/02 unreadable when crop_well reads it
    restore = _spoil(root / "tiles" / "P1" / "02" / "1.tif")
    rc, jobs, err = _run(root, "results/preprocess/cells.h5")
    assert rc != 0 and "Error in rule crop_well" in err
    assert {w for r, w in jobs if r == "crop_well"} == {"P1/01", "P1/02", "P2/01", "P2/02"}
    assert not (pre / "moments/P1/02.npz").exists() and not (pre / "crops/P1/02.h5").exists()
    for well in ("P1/01", "P2/01", "P2/02"):  # the others: complete and readable
        assert read_attrs(pre / f"crops/{well}.h5")["n_kept"] == 10
        assert np.load(pre / f"moments/{well}.npz")["n_crops"].sum() == 2
    restore()
    rc, jobs, err = _run(root, "results/preprocess/zscore.npz")
    assert rc == 0, err[-3000:]
    assert {w for r, w in jobs if r == "crop_well"} == {"P1/02"}  # only the failed well is redone
    # z-score stage: P2/01's crop file unreadable when zscore_well reads it
    restore = _spoil(pre / "crops" / "P2" / "01.h5")
    rc, jobs, err = _run(root, "results/preprocess/cells.h5")
    assert rc != 0 and "Error in rule zscore_well" in err
    assert not (pre / "cells/P2/01.h5").exists() and not (pre / "cells.h5").exists()
    assert not list((pre / "cells" / "P2").glob(".01.tmp-*"))  # no partial file left
    for well in ("P1/01", "P1/02", "P2/02"):
        assert np.isfinite(read_crops(pre / f"cells/{well}.h5")).all()
    restore()
    rc, jobs, err = _run(root, "results/preprocess/cells.h5")
    assert rc == 0, err[-3000:]
    assert {(r, w) for r, w in jobs if r not in ("all",)} == {("zscore_well", "P2/01"), ("merge_cells", None)}
    images = read_crops(pre / "cells.h5")
    assert images.shape == (40, 2, 8, 8) and np.isfinite(images).all()
    assert read_obs(pre / "cells.h5")["plate"].tolist() == ["P1"] * 20 + ["P2"] * 20
    # fit_flatfield and sample_percentiles list only their sampled tiles as inputs: a tile
    # changed outside the sample still reruns the plate's jobs (through validate_tiles)
    import tifffile

    from opsembed.preprocess.flatfield import sample_paths

    refs = [str(root / "tiles" / "P1" / w / f"{t}.tif") for w in ("01", "02") for t in ("0", "1")]
    outside = sorted(set(refs) - set(sample_paths(refs, 2, 0)))[0]
    tifffile.imwrite(outside, np.full((2, 32, 32), 500, np.uint16))  # new content (a touch alone is not a change)
    rc, jobs, err = _run(root, "results/preprocess/cells.h5", "-n")
    assert rc == 0, err[-3000:]
    assert {("validate_tiles", "P1"), ("fit_flatfield", "P1"), ("crop_well", "P1/01"),
            ("crop_well", "P1/02"), ("merge_cells", None)} <= jobs


def test_training_refuses_a_cells_h5_whose_well_file_is_gone(screen):
    import torch

    from opsembed.io.errors import InputError
    from opsembed.train.data import CellImages

    root, paths = screen
    merge_cells(paths, root / "cells.parquet", root / "cells.h5", root / "zscore.tsv", root / "summary.tsv",
                "nontargeting", "plate", CHANNELS, 0, S)
    assert CellImages(root / "cells.h5", S, torch.device("cpu"), False, 0.5).n == 447
    os.remove(well_cells_path(root / "cells.h5", "B2", "A01"))
    with pytest.raises(InputError, match=r"cells.h5: its images read from 1 well file\(s\) that are missing "
                                         r"\(cells/B2/A01.h5"):
        CellImages(root / "cells.h5", S, torch.device("cpu"), False, 0.5)


def test_moments_streamed_by_crop_well_equal_those_read_from_its_file(tmp_path):
    """crop_well takes the control moments on the way (no read back); they equal, bit for
    bit, the moments of the written file, over several 128-row blocks and two batches."""
    from opsembed.preprocess.merge import ControlBlocks, well_moments

    rng = np.random.default_rng(3)
    n = 300
    genes = rng.choice(["nontargeting", "G1"], size=n)
    batches = rng.choice(["b1", "b2"], size=n)
    obs = pd.DataFrame({"gene": genes, "batch": batches, "cell_id": [str(i) for i in range(n)]})
    crops = rng.uniform(0, 1, (n, 2, S, S)).astype(np.float32)
    path = tmp_path / "w.h5"
    write_cells_h5(path, obs, [crops], {"n_kept": n, "crop_size": S, "channels": CHANNELS})
    streamed = ControlBlocks(genes == "nontargeting", batches)
    for start in (0, 7, 130, 131, 250):  # blocks of uneven sizes, as tiles give them
        stop = {0: 7, 7: 130, 130: 131, 131: 250, 250: n}[start]
        streamed.add(crops[start:stop].astype(np.float16))
    got, want = well_moments(path, "nontargeting", streamed), well_moments(path, "nontargeting")
    assert got.keys() == want.keys()
    for key in got:
        np.testing.assert_array_equal(got[key], want[key])
    assert got["batch"].tolist()[:2] == ["b1", "b2"] and len(got["batch"]) == 6  # 3 blocks x 2 batches


def test_tiles_are_checked_per_plate_with_the_file_rows_in_messages(tmp_path):
    """validate_tiles reads one plate's rows and names a bad cell by its row in the table;
    check_tiles names two plates' tiles of different shapes."""
    import tifffile

    from opsembed.io.errors import InputError
    from opsembed.preprocess.validate import run_check_tiles, run_validate_tiles

    rows = []
    for plate, size in (("P1", 40), ("P2", 48)):
        for tile in ("0", "1"):
            path = tmp_path / "tiles" / plate / "A" / f"{tile}.tif"
            path.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(path, np.ones((2, size, size), np.uint16))
            rows += [(plate, "A", tile, 10.0, 10.0, f"{plate}{tile}a"), (plate, "A", tile, 20.0, 20.0, f"{plate}{tile}b")]
    table = pd.DataFrame(rows, columns=["plate", "well", "tile", "y", "x", "cell_id"])
    table.loc[6, "y"] = 47.6  # P2's tile 1, row 7 of the file: outside a 48-pixel tile
    write_table(table, tmp_path / "cells.parquet")
    pattern = str(tmp_path / "tiles/{plate}/{well}/{tile}.tif")
    run_validate_tiles(tmp_path / "cells.parquet", tmp_path / "P1.tsv", "P1", CHANNELS, pattern, 8)
    with pytest.raises(InputError, match=r"cells.parquet: row 7 \(cell_id 'P21a'\) has \(y, x\) = \(47.6, 10.0\)"):
        run_validate_tiles(tmp_path / "cells.parquet", tmp_path / "P2.tsv", "P2", CHANNELS, pattern, 8)
    table.loc[6, "y"] = 10.0
    write_table(table, tmp_path / "cells.parquet")
    run_validate_tiles(tmp_path / "cells.parquet", tmp_path / "P2.tsv", "P2", CHANNELS, pattern, 8)
    assert pd.read_csv(tmp_path / "P2.tsv", sep="\t")[["n_tiles", "n_channels", "height"]].values.tolist() == [[2, 2, 48]]
    with pytest.raises(InputError, match=r"P2/A/0.tif: tile shape \(C, Y, X\) = \(2, 48, 48\) differs from "
                                         r"\(2, 40, 40\) of .*P1/A/0.tif"):
        run_check_tiles([tmp_path / "P1.tsv", tmp_path / "P2.tsv"], tmp_path / "tiles.tsv")


def test_parse_time_names_check_reports_the_file_row_of_a_distinct_row(tmp_path):
    from opsembed.io.cells import check_path_names
    from opsembed.io.errors import InputError

    df = pd.DataFrame({"plate": ["P1"] * 5 + ["bad/name"] * 3, "well": "A", "tile": "0"})
    write_table(df, tmp_path / "c.parquet")
    distinct = group_counts(tmp_path / "c.parquet", ["plate", "well", "tile"])
    with pytest.raises(InputError, match=r"c.parquet: row 6: plate is 'bad/name'.*\(3 such row\(s\)\)"):
        check_path_names(distinct, tmp_path / "c.parquet", rows=distinct["first_row"], counts=distinct["n"])
