"""Scale benchmark of the preprocessing stage (issue 15), through Snakemake's own jobs.

    python benchmarks/bench_scale.py OUT [--cells 1000000] [--channels 4] [--plates 4 --wells 8]
                                         [--demo resources/demo] [--cores 2] [--keep]

1. Builds a synthetic screen in OUT/screen: ``--cells`` cells on tiles that are *hard
   links* of the demo's rendered tiles (resources/demo/tiles, 4 x 512 x 512 uint16; with
   ``--channels`` < 4 the first channels are written once as new base tiles), each copy
   holding the cells the demo put on its original (y, x, gene), so every crop shows a real
   rendered cell. Only the ~54 base tiles take disk space; the crops do not: about
   ``cells x channels x 96 x 96 x 2`` bytes for the z-scored per-well files, plus the
   temporary crop files of the wells not yet z-scored (1 M cells x 4 channels = 74 GB).
2. Times ``snakemake -n`` for results/preprocess/cells.h5 (driver seconds and peak memory),
   then runs it with ``--cores`` and reads every job's benchmark file: per stage the number
   of jobs, wall and CPU seconds, cells per CPU second, and the largest peak memory.
3. Measures the raw limit of crop_well in the same run, on the tiles of the largest well:
   ``tifffile.imread`` each tile, cut the same windows with numpy and write the same number
   of float16 crops with h5py in the same chunk layout, nothing else (no correction,
   rescaling, tables or logs); and reports crop_well's rate over that limit (both per CPU
   second, because this machine is shared; wall seconds are printed too).
4. Reads random training batches (256 crops, sorted, ``train.data.read_resized``) through
   the virtual cells.h5 and through one single-file copy of the same rows (the first
   ``--reader-cells`` rows, so that the copy fits on disk), warm, alternating, and reports
   the ratio of the rates.
5. Projects the cluster wall time for a 25 M-cell screen of 12 plates x 6 wells on 200
   cores: each stage's mean job in CPU seconds (one dedicated core per job), less the
   start-up of the smallest job, scaled by the cells (or plates, or wells) one job of that
   screen holds (``SCALE``), plus the start-up; jobs run 200 at a time, stages one after
   the other, no queueing or file-system contention.

Prints a Markdown table and writes OUT/bench_scale.json. Deletes OUT/screen and the run's
results afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

STAGES = ["validate_inputs", "validate_tiles", "check_tiles", "fit_flatfield", "sample_percentiles",
          "rescale_percentiles", "crop_well", "combine_moments", "zscore_well", "merge_cells"]
SCALE = {"validate_inputs": "cells", "validate_tiles": "cells", "check_tiles": "plates",
         "fit_flatfield": "fixed", "sample_percentiles": "fixed", "rescale_percentiles": "plates",
         "crop_well": "cells", "combine_moments": "wells", "zscore_well": "cells", "merge_cells": "cells"}
"""What one job's time grows with: its cells (per-well, per-plate or whole-table jobs),
the number of plates or wells it combines, or nothing (a fixed number of sampled tiles)."""

TARGET = {"cells": 25_000_000, "plates": 12, "wells": 72, "cores": 200}


def build_screen(out: Path, demo: Path, n_cells: int, n_channels: int, plates: int, wells: int) -> dict:
    """The synthetic screen (see the module docstring); returns its config overrides."""
    import tifffile

    cells = pd.read_csv(demo / "cells.csv", dtype=str)
    cells[["y", "x"]] = cells[["y", "x"]].astype(float)
    base = sorted(cells.groupby(["plate", "well", "tile"]).groups)
    base_dir = out / "base"
    base_dir.mkdir(parents=True, exist_ok=True)
    base_files = []
    for k, (p, w, t) in enumerate(base):
        src = demo / "tiles" / p / w / f"{t}.tif"
        dst = base_dir / f"{k}.tif"
        if n_channels == 4:
            shutil.copyfile(src, dst)
        else:
            tifffile.imwrite(dst, tifffile.imread(src)[:n_channels])
        base_files.append(dst)
    per_tile = [cells[(cells["plate"] == p) & (cells["well"] == w) & (cells["tile"] == t)] for p, w, t in base]
    n_wells = plates * wells
    rows, n, tile_index = [], 0, 0
    tiles_per_well = math.ceil(n_cells / np.mean([len(c) for c in per_tile]) / n_wells)
    for pi in range(plates):
        for wi in range(wells):
            plate, well = f"P{pi + 1:02d}", f"W{wi + 1:02d}"
            (out / "tiles" / plate / well).mkdir(parents=True, exist_ok=True)
            for ti in range(tiles_per_well):
                if n >= n_cells:
                    break
                k = tile_index % len(base)
                tile_index += 1
                os.link(base_files[k], out / "tiles" / plate / well / f"{ti}.tif")
                src = per_tile[k].iloc[: n_cells - n]
                rows.append(pd.DataFrame({"plate": plate, "well": well, "tile": str(ti), "y": src["y"].to_numpy(),
                                          "x": src["x"].to_numpy(), "gene": src["gene"].to_numpy(),
                                          "sgRNA": src["sgRNA"].to_numpy(),
                                          "cell_id": [f"{plate}{well}t{ti}c{j}" for j in range(len(src))]}))
                n += len(src)
    table = pd.concat(rows, ignore_index=True)
    table.to_parquet(out / "cells.parquet", index=False)
    shutil.copyfile(demo / "complexes.tsv", out / "complexes.tsv")
    return {"input": {"tiles": str(out / "tiles/{plate}/{well}/{tile}.tif"), "cells": str(out / "cells.parquet"),
                      "ground_truth": str(out / "complexes.tsv")},
            "channels": ["DNA", "gH2AX", "tubulin", "actin"][:n_channels],
            "preprocess": {"flatfield": {"offset": 100}, "crop": {"edge": "pad"}},
            "evaluation": {"ground_truth": {"min_genes": 2}},
            "_screen": {"cells": len(table), "tiles": tile_index, "plates": plates, "wells": n_wells,
                        "channels": n_channels}}


def timed(cmd, cwd) -> tuple[float, float, str, int]:
    """(wall s, peak RSS GB, output, return code) under /usr/bin/time -v."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=cwd, capture_output=True, text=True)
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    return time.perf_counter() - start, int(peak.group(1)) / 1e6 if peak else float("nan"), \
        proc.stdout + proc.stderr, proc.returncode


def stage_table(run: Path, screen: dict) -> pd.DataFrame:
    """Per stage: jobs, total/max wall s, total CPU s, cells per CPU s, max peak memory (MB)."""
    rows = []
    for stage in STAGES:
        files = [run / "results/benchmarks" / f"{stage}.tsv"] if (run / "results/benchmarks" / f"{stage}.tsv").exists() \
            else sorted((run / "results/benchmarks" / stage).rglob("*.tsv"))
        if not files:
            continue
        b = pd.concat([pd.read_csv(f, sep="\t") for f in files], ignore_index=True)
        cpu = pd.to_numeric(b["cpu_time"], errors="coerce")
        rows.append({"stage": stage, "jobs": len(b), "wall_s_sum": b["s"].sum(), "wall_s_max": b["s"].max(),
                     "cpu_s_sum": cpu.sum(), "cpu_s_min": cpu.min(), "cells_per_cpu_s": screen["cells"] / cpu.sum() if cpu.sum() else np.nan,
                     "cells_per_wall_s_per_job": screen["cells"] / b["s"].sum(),
                     "peak_mb_max": b["max_rss"].max()})
    return pd.DataFrame(rows)


def raw_limit(run: Path, config: dict, size: int = 96) -> dict:
    """tifffile read + numpy windows + h5py float16 write of the largest well's cells."""
    import h5py
    import tifffile

    from opsembed.io.tiles import tile_path
    from opsembed.preprocess.crops import centre_index

    cells = pd.read_parquet(config["input"]["cells"], columns=["plate", "well", "tile", "y", "x"])
    plate, well = cells.groupby(["plate", "well"]).size().idxmax()
    cells = cells[(cells["plate"] == plate) & (cells["well"] == well)]
    n_channels = len(config["channels"])
    out = run / "raw_limit.h5"
    wall, cpu = time.perf_counter(), time.process_time()
    with h5py.File(out, "w") as f:
        dset = f.create_dataset("images", shape=(len(cells), n_channels, size, size), dtype=np.float16,
                                chunks=(1, n_channels, size, size))
        start = 0
        for tile, group in cells.groupby("tile", sort=False):
            image = tifffile.imread(tile_path(config["input"]["tiles"], plate, well, tile))
            padded = np.pad(image, ((0, 0), (size, size), (size, size)))
            r0 = centre_index(group["y"]) - size // 2 + size
            c0 = centre_index(group["x"]) - size // 2 + size
            crops = np.stack([padded[:, r:r + size, c:c + size] for r, c in zip(r0, c0)]).astype(np.float16)
            dset[start:start + len(crops)] = crops
            start += len(crops)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    out.unlink()
    return {"well": f"{plate}/{well}", "cells": len(cells), "wall_s": wall, "cpu_s": cpu,
            "cells_per_cpu_s": len(cells) / cpu, "cells_per_wall_s": len(cells) / wall}


def reader_rates(h5: Path, n_rows: int, batches: int = 40, batch: int = 256) -> dict:
    """Crops per second of read_resized through the virtual file and a single-file copy of its first rows."""
    import h5py

    from opsembed.train.data import read_resized

    single = h5.with_name("single.h5")
    with h5py.File(h5) as src, h5py.File(single, "w") as dst:
        n_rows = min(n_rows, src["images"].shape[0])
        shape = (n_rows,) + src["images"].shape[1:]
        d = dst.create_dataset("images", shape=shape, dtype=np.float16, chunks=(1,) + shape[1:])
        for start in range(0, n_rows, 4096):
            d[start:start + 4096] = src["images"][start:min(n_rows, start + 4096)]
    rng = np.random.default_rng(0)
    draws = [rng.choice(n_rows, batch, replace=False) for _ in range(batches)]
    size = shape[-1]
    times = {"virtual": [], "single": []}
    for rep in range(3):  # the first pass warms the page cache for both
        for name, path in (("virtual", h5), ("single", single)) if rep % 2 == 0 else (("single", single), ("virtual", h5)):
            start = time.perf_counter()
            for rows in draws:
                read_resized(str(path), rows, size)
            if rep:
                times[name].append(time.perf_counter() - start)
    single.unlink()
    rate = {k: batches * batch / np.mean(v) for k, v in times.items()}
    return {"rows": n_rows, "crops_per_s_virtual": rate["virtual"], "crops_per_s_single": rate["single"],
            "ratio": rate["virtual"] / rate["single"]}


def project(stages: pd.DataFrame, screen: dict) -> tuple[pd.DataFrame, float]:
    """Cluster wall time of the 25 M-cell screen on 200 cores (see the module docstring)."""
    rows = []
    startup = float(stages["cpu_s_min"].min())  # a job that does almost nothing: start-up and imports
    for r in stages.itertuples():
        per_job = r.cpu_s_sum / r.jobs  # this run's mean job, in CPU seconds (a dedicated core per job)
        kind = SCALE[r.stage]
        if r.stage in ("crop_well", "zscore_well"):
            jobs, grow = TARGET["wells"], (TARGET["cells"] / TARGET["wells"]) / (screen["cells"] / screen["wells"])
        elif r.stage in ("validate_tiles", "fit_flatfield", "sample_percentiles"):
            jobs = TARGET["plates"]
            grow = (TARGET["cells"] / TARGET["plates"]) / (screen["cells"] / screen["plates"]) if kind == "cells" else 1
        else:
            jobs = 1
            grow = {"cells": TARGET["cells"] / screen["cells"], "plates": TARGET["plates"] / screen["plates"],
                    "wells": TARGET["wells"] / screen["wells"], "fixed": 1}[kind]
        job_s = startup + max(per_job - startup, 0.0) * grow
        rows.append({"stage": r.stage, "jobs_25M": jobs, "job_s_25M": job_s,
                     "stage_wall_s_25M": math.ceil(jobs / TARGET["cores"]) * job_s})
    table = pd.DataFrame(rows)
    return table, float(table["stage_wall_s_25M"].sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--cells", type=int, default=1_000_000)
    ap.add_argument("--channels", type=int, default=4, choices=[1, 2, 3, 4])
    ap.add_argument("--plates", type=int, default=4)
    ap.add_argument("--wells", type=int, default=8, help="wells per plate")
    ap.add_argument("--demo", type=Path, default=REPO / "resources" / "demo")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--reader-cells", type=int, default=100_000)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    out = a.out.resolve()
    screen_dir, run = out / "screen", out / "run"
    run.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "rules", "workflow", "config", "envs", "profiles"):
        if not (run / name).exists():
            (run / name).symlink_to(REPO / name)
    t0 = time.perf_counter()
    config = build_screen(screen_dir, a.demo.resolve(), a.cells, a.channels, a.plates, a.wells)
    screen = config.pop("_screen")
    import yaml

    (out / "screen.yaml").write_text(yaml.safe_dump(config))
    print(f"screen: {screen} built in {time.perf_counter() - t0:.0f} s", flush=True)
    smk = [str(Path(sys.executable).with_name("snakemake")), "results/preprocess/cells.h5", "--configfile",
           str(out / "screen.yaml")]
    dry_s, dry_gb, text, rc = timed(smk + ["-n", "--quiet", "rules"], run)
    if rc:
        sys.exit(text[-3000:])
    jobs = int(re.search(r"^total\s+(\d+)", text, re.M).group(1))
    print(f"driver: dry run {dry_s:.1f} s, peak {dry_gb:.2f} GB, {jobs} jobs", flush=True)
    run_s, run_gb, text, rc = timed(smk + ["--cores", str(a.cores), "--quiet", "rules"], run)
    if rc:
        sys.exit(text[-5000:])
    print(f"snakemake run: {run_s:.0f} s on {a.cores} cores (driver peak {run_gb:.2f} GB)", flush=True)
    stages = stage_table(run, screen)
    raw = raw_limit(run, config)
    crop = stages.set_index("stage").loc["crop_well"]
    reader = reader_rates(run / "results/preprocess/cells.h5", a.reader_cells)
    disk = sum(f.stat().st_size for f in (run / "results/preprocess/cells").rglob("*.h5")) / 1e9
    projection, total = project(stages, screen)
    result = {"screen": screen, "driver": {"dry_run_s": dry_s, "peak_gb": dry_gb, "jobs": jobs},
              "run": {"wall_s": run_s, "cores": a.cores}, "stages": stages.to_dict("records"), "raw_limit": raw,
              "crop_vs_raw_cpu": float(crop["cells_per_cpu_s"] / raw["cells_per_cpu_s"]),
              "reader": reader, "well_files_gb": disk,
              "projection_25M_200_cores": {"stages": projection.to_dict("records"), "total_s": total}}
    (out / "bench_scale.json").write_text(json.dumps(result, indent=1, default=float))
    pd.set_option("display.width", 200)
    print(stages.round(2).to_markdown(index=False))
    print(f"\nraw limit ({raw['well']}, {raw['cells']} cells): {raw['cells_per_cpu_s']:.0f} cells/CPU s "
          f"({raw['cells_per_wall_s']:.0f} cells/wall s); crop_well {crop['cells_per_cpu_s']:.0f} cells/CPU s: "
          f"ratio {result['crop_vs_raw_cpu']:.2f}")
    print(f"reader (first {reader['rows']} rows, 256-crop batches): virtual {reader['crops_per_s_virtual']:.0f} "
          f"crops/s, single file {reader['crops_per_s_single']:.0f} crops/s, ratio {reader['ratio']:.2f}")
    print(f"per-well files: {disk:.1f} GB")
    print(projection.round(1).to_markdown(index=False))
    print(f"projected 25 M cells on 200 cores: {total / 60:.0f} min")
    if not a.keep:
        shutil.rmtree(screen_dir)
        shutil.rmtree(run / "results")


if __name__ == "__main__":
    main()
