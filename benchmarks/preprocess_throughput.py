"""Preprocessing throughput and peak memory, from the rules' own benchmark files.

Run after the preprocessing stage (e.g. `snakemake --cores all all_preprocess`):

    python benchmarks/preprocess_throughput.py [RESULTS_DIR]

Prints, per preprocessing rule: jobs, summed wall seconds, the threads it was given,
cells per second per core (cells in cells.h5 / (seconds x threads)), and the peak
resident memory of its largest job (max_rss, MB).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

RULES = {  # rule -> threads declared in rules/preprocess.smk
    "validate_inputs": 1,
    "validate_tiles": 1,
    "check_tiles": 1,
    "fit_flatfield": 1,
    "sample_percentiles": 1,
    "rescale_percentiles": 1,
    "crop_well": 1,
    "combine_moments": 1,
    "zscore_well": 1,
    "merge_cells": 1,
}


def main(results: Path) -> pd.DataFrame:
    n_cells = int(pd.read_csv(results / "preprocess" / "summary.tsv", sep="\t")["n_kept"].sum())
    rows = []
    for rule, threads in RULES.items():
        files = [results / "benchmarks" / f"{rule}.tsv"] + sorted((results / "benchmarks" / rule).rglob("*.tsv"))
        tables = [pd.read_csv(f, sep="\t") for f in files if f.exists()]
        if not tables:
            continue
        bench = pd.concat(tables)
        seconds = float(bench["s"].sum())
        rows.append({"rule": rule, "jobs": len(bench), "seconds": round(seconds, 2), "threads": threads,
                     "cells_per_s_per_core": round(n_cells / (seconds * threads), 1),
                     "peak_rss_mb": float(pd.to_numeric(bench["max_rss"], errors="coerce").max())})
    table = pd.DataFrame(rows)
    total = table["seconds"].mul(table["threads"]).sum()
    print(f"cells in cells.h5: {n_cells}")
    print(table.to_string(index=False))
    print(f"whole chain: {n_cells / total:.1f} cells/s per core "
          f"({table['seconds'].sum():.1f} s of jobs), peak RSS {table['peak_rss_mb'].max():.0f} MB")
    return table


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("results"))
