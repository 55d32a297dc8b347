"""Where a finished run's time went: job time per rule from its benchmark files, and how busy
the cores were, from the Snakemake log.

    python benchmarks/demo_time.py RUN_DIR [--log RUN_DIR/log] [--cores 2]

RUN_DIR is the working directory of a finished run (it holds results/benchmarks/). Prints
the job seconds per rule (sum and count, largest first), their total, the shortest wall
time the cores could need for that total (total / cores), and, given the run's Snakemake
log (its stdout and stderr), the wall time and the jobs running per minute, which shows
where cores stood idle (e.g. a 2-thread job that cannot start beside a 1-thread one on 2
cores).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from collections import Counter
from pathlib import Path

import pandas as pd


def job_seconds(run_dir: Path) -> pd.DataFrame:
    """One row per benchmark file: rule (the first folder or file stem below
    results/benchmarks), job (the path), s (wall seconds of the job)."""
    root = run_dir / "results" / "benchmarks"
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        rel = path.relative_to(root)
        rule = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        rows.append({"rule": rule, "job": str(rel), "s": float(pd.read_csv(path, sep="\t")["s"].iloc[-1])})
    if not rows:
        raise SystemExit(f"{root}: no benchmark files; give the directory of a finished run")
    return pd.DataFrame(rows)


def busy_cores(log_path: Path) -> tuple[float, list[tuple[int, float, list]]]:
    """(wall seconds from the first job's start to the last job's end, per minute: (minute,
    mean cores busy (job count, threads not weighed), the 3 most frequent rules))."""
    stamp, rule, start, jobs = None, None, {}, []
    for line in log_path.read_text(errors="replace").splitlines():
        if m := re.match(r"\[(\w+ \w+ +\d+ [\d:]+ \d+)\]", line):
            stamp = dt.datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
        elif m := re.match(r"(?:local)?rule (\w+):", line):
            rule = m.group(1)
        elif m := re.match(r"\s+jobid: (\d+)", line):
            start[m.group(1)] = (stamp, rule)
        elif (m := re.match(r"Finished job(?:id)?:? (\d+)", line)) and m.group(1) in start:
            begun, name = start.pop(m.group(1))
            jobs.append((begun, stamp, name))
    if not jobs:
        raise SystemExit(f"{log_path}: no finished jobs found in this Snakemake log")
    t0 = min(j[0] for j in jobs)
    spans = [((a - t0).total_seconds(), (b - t0).total_seconds(), r) for a, b, r in jobs]
    wall = max(s[1] for s in spans)
    minutes = []
    for m0 in range(0, int(wall) + 1, 60):
        overlap = sum(min(b, m0 + 60) - max(a, m0) for a, b, _ in spans if b > m0 and a < m0 + 60)
        rules = Counter(r for a, b, r in spans if a < m0 + 60 and b > m0).most_common(3)
        minutes.append((m0 // 60, overlap / 60, rules))
    return wall, minutes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--log", type=Path, default=None, help="the run's Snakemake log (default RUN_DIR/log)")
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    jobs = job_seconds(args.run_dir)
    per_rule = jobs.groupby("rule")["s"].agg(["sum", "count"]).sort_values("sum", ascending=False)
    print(per_rule.round(1).to_string())
    total = jobs["s"].sum()
    print(f"\n{len(jobs)} jobs, {total:.0f} s of job time; on {args.cores} cores at least "
          f"{total / args.cores / 60:.1f} min of wall time")
    log = args.log or args.run_dir / "log"
    if log.exists():
        wall, minutes = busy_cores(log)
        print(f"wall time (first job start to last job end): {wall / 60:.1f} min\n\nminute  busy  rules")
        for minute, busy, rules in minutes:
            print(f"{minute:6d}  {busy:4.2f}  " + ", ".join(f"{r} x{n}" for r, n in rules))


if __name__ == "__main__":
    main()
