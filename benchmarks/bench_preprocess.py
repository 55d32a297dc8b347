"""In-process timing of each preprocessing step on an existing screen (the demo by default).

Create the demo first (``snakemake --cores 1 simulate_demo``), then:

    python benchmarks/bench_preprocess.py [--config config/config.yaml] [--threads 1 2]

Runs validate -> fit_flatfield (per plate, at each thread count) -> rescale_percentiles ->
crop_well (per well) -> merge_cells into a temporary folder, with one warm interpreter
(no start-up or import cost), and prints seconds per step, BaSiC seconds per plate and
cells per second per core for crop + merge. Unlike benchmarks/preprocess_throughput.py
(which reads the rules' benchmark files), this isolates the library's own cost.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from opsembed.io.config import load_config  # noqa: E402
from opsembed.io.h5 import read_attrs  # noqa: E402
from opsembed.io.tables import read_table  # noqa: E402
from opsembed.io.tiles import tile_path  # noqa: E402
from opsembed.preprocess.crops import run_crop_well  # noqa: E402
from opsembed.preprocess.flatfield import run_fit_flatfield  # noqa: E402
from opsembed.preprocess.merge import merge_cells  # noqa: E402
from opsembed.preprocess.rescale import run_rescale_percentiles  # noqa: E402
from opsembed.preprocess.validate import run_validate_inputs  # noqa: E402


def main(config_path: str, thread_counts: list[int]) -> None:
    cfg = load_config(config_path)
    pre, pattern, channels = cfg["preprocess"], cfg["input"]["tiles"], cfg["channels"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        start = time.perf_counter()
        run_validate_inputs(cfg["input"]["cells"], cfg["input"]["ground_truth"], out / "cells.parquet",
                            cfg["input"]["columns"], channels, cfg["controls"], cfg["batch_key"], pattern,
                            pre["crop"]["size"])
        print(f"validate_inputs: {time.perf_counter() - start:.2f} s")
        cells = read_table(out / "cells.parquet")
        plates = sorted(cells["plate"].unique())
        for threads in thread_counts:
            for plate in plates:
                keys = cells.loc[cells["plate"] == plate, ["well", "tile"]].drop_duplicates()
                tiles = [tile_path(pattern, plate, w, t) for w, t in keys.itertuples(index=False)]
                start = time.perf_counter()
                run_fit_flatfield(tiles, out / f"ff/{plate}.npz", out / f"ff/{plate}.png", pre["flatfield"],
                                  channels, cfg["seed"], plate, threads)
                print(f"fit_flatfield {plate} ({min(len(tiles), pre['flatfield']['n_tiles'])} tiles, "
                      f"{threads} thread(s)): {time.perf_counter() - start:.2f} s")
        start = time.perf_counter()
        run_rescale_percentiles(out / "cells.parquet", [out / f"ff/{p}.npz" for p in plates], out / "pct.tsv",
                                out / "pct.png", pre["rescale"], channels, plates, cfg["seed"], pattern)
        print(f"rescale_percentiles: {time.perf_counter() - start:.2f} s")
        wells = cells[["plate", "well"]].drop_duplicates().itertuples(index=False)
        crop_files = []
        start = time.perf_counter()
        for plate, well in wells:
            crop_files.append(out / f"crops/{plate}/{well}.h5")
            run_crop_well(out / "cells.parquet", out / f"ff/{plate}.npz", out / "pct.tsv", crop_files[-1],
                          pre["crop"], channels, pattern, plate, well)
        crop_s = time.perf_counter() - start
        n_kept = sum(int(read_attrs(f)["n_kept"]) for f in crop_files)
        start = time.perf_counter()
        merge_cells(crop_files, out / "cells.parquet", out / "cells.h5", out / "zscore.tsv", out / "summary.tsv",
                    cfg["controls"], cfg["batch_key"], channels, cfg["seed"], pre["crop"]["size"])
        merge_s = time.perf_counter() - start
        print(f"crop_well: {len(crop_files)} wells, {len(cells)} cells, {n_kept} kept, {crop_s:.2f} s "
              f"({n_kept / crop_s:.0f} kept cells/s on 1 core)")
        print(f"merge_cells: {merge_s:.2f} s ({n_kept / merge_s:.0f} cells/s on 1 core); "
              f"crop + merge {n_kept / (crop_s + merge_s):.0f} cells/s per core")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    main(args.config, args.threads)
