"""Build an empty-file screen for timing the Snakemake driver at genome scale.

    python benchmarks/make_empty_screen.py OUT [--plates 12 --wells 6 --tiles 1200 --cells 25000000]

Writes OUT/cells.parquet (``--cells`` rows: plate, well, tile, y, x, gene, sgRNA,
cell_id, spread evenly over the tiles), one empty file per tile at
OUT/tiles/{plate}/{well}/{tile}.tif (0 bytes: only the dry run's listing and existence
checks see them), OUT/complexes.tsv (the demo's, when given with --ground-truth) and
OUT/config.yaml pointing input.* there. The default is the issue-15 screen: 12 plates x
6 wells x 1,200 tiles = 86,400 tiles and 25 M cells. Then, in a run directory
(/work/runs/mkrun), time the dry run:

    /usr/bin/time -v snakemake -n --configfile OUT/config.yaml

The table is written in row groups of 1 M rows, so building it needs about 1 GB.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

GENES = 5000
"""Distinct gene labels of the synthetic table (plus the control label)."""

CHUNK = 1_000_000


def build(out: Path, plates: int, wells: int, tiles: int, cells: int, ground_truth: Path | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    n_tiles = plates * wells * tiles
    plate_names = np.array([f"P{p + 1:02d}" for p in range(plates)])
    well_names = np.array([f"{'ABCDEFGH'[w // 12]}{w % 12 + 1:02d}" for w in range(wells)])
    tile_names = np.array([f"{t:04d}" for t in range(tiles)])
    for p in plate_names:
        for w in well_names:
            d = out / "tiles" / p / w
            d.mkdir(parents=True, exist_ok=True)
            for t in tile_names:
                (d / f"{t}.tif").touch()
    genes = np.array(["nontargeting"] + [f"G{g:05d}" for g in range(GENES)])
    rng = np.random.default_rng(0)
    schema = pa.schema([("plate", pa.string()), ("well", pa.string()), ("tile", pa.string()),
                        ("y", pa.float32()), ("x", pa.float32()), ("gene", pa.string()),
                        ("sgRNA", pa.string()), ("cell_id", pa.string())])
    with pq.ParquetWriter(out / "cells.parquet", schema) as writer:
        for start in range(0, cells, CHUNK):
            i = np.arange(start, min(cells, start + CHUNK))
            t = i * n_tiles // cells  # cells spread evenly, tile by tile
            g = genes[rng.integers(0, len(genes), len(i))]
            table = pa.table({
                "plate": plate_names[t // (wells * tiles)], "well": well_names[(t // tiles) % wells],
                "tile": tile_names[t % tiles],
                "y": rng.uniform(0, 512, len(i)).astype(np.float32),
                "x": rng.uniform(0, 512, len(i)).astype(np.float32),
                "gene": g, "sgRNA": np.char.add(g, "_1"),
                "cell_id": np.char.add("c", i.astype(str)),
            }, schema=schema)
            writer.write_table(table)
    if ground_truth is not None:
        shutil.copy(ground_truth, out / "complexes.tsv")
    (out / "config.yaml").write_text(
        "input:\n"
        f"  tiles: {out}/tiles/{{plate}}/{{well}}/{{tile}}.tif\n"
        f"  cells: {out}/cells.parquet\n"
        f"  ground_truth: {out}/complexes.tsv\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--plates", type=int, default=12)
    ap.add_argument("--wells", type=int, default=6)
    ap.add_argument("--tiles", type=int, default=1200, help="tiles per well")
    ap.add_argument("--cells", type=int, default=25_000_000)
    ap.add_argument("--ground-truth", type=Path, default=None, help="complexes table to copy (e.g. the demo's)")
    a = ap.parse_args()
    build(a.out.resolve(), a.plates, a.wells, a.tiles, a.cells, a.ground_truth)


if __name__ == "__main__":
    main()
