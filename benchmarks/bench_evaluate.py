"""Wall time of the gene-embedding benchmark (opsembed.evaluate), default config.

Random Gaussian embeddings of the GRAPE size (106 genes in 14 complexes, d = 500) and
a half-size screen (50 genes in 7 complexes). For each: the batched k-means alone
(k = n complexes plus the k sweep 2..30, 100 runs each), then one whole
``evaluate_embeddings`` call (mAP with a 10,000-sample null, k-means, recall, UMAP,
files and figures), at 1 and 2 torch threads. The first UMAP of a process compiles
numba code; it is timed separately as a warm-up.

    python benchmarks/bench_evaluate.py [--threads 1 2] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from opsembed.evaluate.benchmark import evaluate_embeddings  # noqa: E402
from opsembed.evaluate.clustering import k_sweep  # noqa: E402
from opsembed.evaluate.umap_plot import umap_coordinates  # noqa: E402
from opsembed.io.config import load_config  # noqa: E402

SCREENS = {
    "106 genes x 500": [10, 10, 9, 9, 8, 8, 7, 7, 7, 7, 6, 6, 6, 6],
    "50 genes x 500": [9, 8, 7, 7, 7, 6, 6],
}


def _screen(sizes, d=500, seed=0):
    genes = [f"G{i:03d}" for i in range(sum(sizes))]
    labels = np.repeat([f"C{c:02d}" for c in range(len(sizes))], sizes)
    emb = pd.DataFrame(np.random.default_rng(seed).normal(size=(len(genes), d)), index=genes)
    return emb, pd.DataFrame({"gene": genes, "complex": labels})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    cfg = load_config()["evaluation"]
    km = cfg["kmeans"]

    t = time.perf_counter()
    umap_coordinates(np.random.default_rng(0).normal(size=(30, 8)), 15, 0.1, 0)
    warmup = time.perf_counter() - t
    print(f"UMAP first call (numba compilation): {warmup:.2f} s")
    results = {"umap_warmup_s": warmup, "torch_default_threads": torch.get_num_threads(), "runs": []}

    for name, sizes in SCREENS.items():
        emb, curated = _screen(sizes)
        truth = pd.factorize(curated["complex"], sort=True)[0]
        n = len(emb)
        ks = sorted(set(range(km["k_min"], min(km["k_max"], n - 1) + 1)) | {len(sizes)})
        for threads in args.threads:
            torch.set_num_threads(threads)
            kmeans_s, total_s = [], []
            for _ in range(args.repeats):
                t = time.perf_counter()
                k_sweep(emb.to_numpy(), truth, ks, km["n_runs"], km["max_iter"], km["seed"])
                kmeans_s.append(time.perf_counter() - t)
                with tempfile.TemporaryDirectory() as out:
                    t = time.perf_counter()
                    evaluate_embeddings(emb, curated, cfg, "random", out, threads=threads)
                    total_s.append(time.perf_counter() - t)
            row = {"screen": name, "threads": threads, "kmeans_runs": len(ks) * km["n_runs"],
                   "kmeans_s": min(kmeans_s), "evaluate_s": min(total_s)}
            results["runs"].append(row)
            print(f"{name}, {threads} thread(s): {row['kmeans_runs']} k-means runs "
                  f"{row['kmeans_s']:.2f} s; whole evaluation {row['evaluate_s']:.2f} s "
                  f"(best of {args.repeats})")
    print(json.dumps(results, indent=1))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
