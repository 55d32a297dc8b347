"""Time the Snakemake driver's dry run against pyarrow listing the same distinct tiles.

    python benchmarks/bench_driver.py SCREEN RUNDIR [--snakemake .venv/bin/snakemake]

SCREEN is a folder from ``benchmarks/make_empty_screen.py`` (cells.parquet, tiles/,
config.yaml); RUNDIR a run directory (``/work/runs/mkrun NAME``: the workflow's files as
symlinks). Prints, measured in the same run: seconds and peak resident memory (GB) of
(1) pyarrow reading plate/well/tile and grouping them into distinct tiles, in a fresh
interpreter, and (2) ``snakemake -n --configfile SCREEN/config.yaml`` in RUNDIR, both
under ``/usr/bin/time -v``; then the ratio of (2) to (1). Issue 15's target: ratio <= 10
and driver peak <= 1.5 GB on the 25 M-row / 86,400-tile screen.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

LIST_TILES = """
import pyarrow.parquet as pq
t = pq.read_table({path!r}, columns=["plate", "well", "tile"])
tiles = t.group_by(["plate", "well", "tile"]).aggregate([])
print("distinct tiles:", tiles.num_rows)
"""


def timed(cmd: list[str], cwd=None) -> tuple[float, float, str]:
    """(wall s, peak RSS GB, stdout+stderr tail) of ``cmd`` under /usr/bin/time -v."""
    start = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    text = out.stdout + out.stderr
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({out.returncode}):\n{text[-3000:]}")
    return wall, int(peak.group(1)) / 1e6 if peak else float("nan"), text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("screen", type=Path)
    ap.add_argument("rundir", type=Path)
    ap.add_argument("--snakemake", default=str(Path(sys.executable).with_name("snakemake")))
    a = ap.parse_args()
    screen = a.screen.resolve()
    t_list, m_list, text = timed([sys.executable, "-c", LIST_TILES.format(path=str(screen / "cells.parquet"))])
    print(f"pyarrow distinct tiles: {t_list:.1f} s, peak {m_list:.2f} GB ({text.splitlines()[0]})")
    t_dry, m_dry, text = timed([a.snakemake, "-n", "--quiet", "rules", "--configfile",
                                str(screen / "config.yaml")], cwd=a.rundir)
    jobs = re.search(r"^total\s+(\d+)", text, re.M)
    print(f"snakemake -n: {t_dry:.1f} s, peak {m_dry:.2f} GB, {jobs.group(1) if jobs else '?'} jobs")
    print(f"ratio dry run / pyarrow listing: {t_dry / t_list:.1f} (target <= 10); "
          f"driver peak {m_dry:.2f} GB (target <= 1.5)")


if __name__ == "__main__":
    main()
