"""GRAPE training speed (iterations/s) and peak GPU memory, on synthetic crops.

The crops and gene labels are made on the device first, so the figure is the model's
step time (D step with R1, then the G step), not input I/O. Paper shape by default:
4 x 96 x 96 crops, batch 256, 107 genes, d = 500, StarGAN v2 widths (64 .. 512, style 64).

    python benchmarks/bench_grape.py                 # paper shape, CUDA if present
    python benchmarks/bench_grape.py --compile       # with torch.compile (G, E, F)
    python benchmarks/bench_grape.py --tiny          # seconds on a CPU

Prints one line per setting and a JSON summary (also written to --out when given).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from opsembed.train.data import CellImages, iterate_batches  # noqa: E402
from opsembed.train.device import resolve_device  # noqa: E402
from opsembed.train.grape_trainer import GrapeTrainer, grape_config  # noqa: E402

PAPER = {"image_size": 96, "dim_in": 64, "max_conv_dim": 512, "n_down": 3, "style_dim": 64, "embed_dim": 500,
         "mapping_hidden": 512, "batch_size": 256}
TINY = {"image_size": 32, "dim_in": 8, "max_conv_dim": 32, "style_dim": 8, "embed_dim": 500,
        "mapping_hidden": 64, "batch_size": 32}


def bench(cfg: dict, n_genes: int, channels: int, steps: int, warmup: int, cells_per_gene: int) -> dict:
    """Time ``steps`` training steps after ``warmup`` ones; returns it/s, peak memory, sizes."""
    device = resolve_device(cfg["device"])
    size = cfg["image_size"]
    gen = torch.Generator(device=device).manual_seed(0)
    images = torch.randn(n_genes * cells_per_gene, channels, size, size, generator=gen, device=device)
    gene_ids = np.repeat(np.arange(n_genes), cells_per_gene)
    genes = [f"G{i:03d}" for i in range(n_genes - 1)] + ["nontargeting"]
    data = CellImages.from_tensor(images.half(), gene_ids, genes, "nontargeting")
    del images
    trainer = GrapeTrainer(data, cfg, seed=0)
    n_params = {k: sum(p.numel() for p in m.parameters()) for k, m in trainer.nets.items()}
    batches = iterate_batches(data, trainer.samplers, 0, warmup + steps, cfg["num_workers"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for step, batch in batches:
        if step == warmup:
            _sync(device)
            t0 = time.perf_counter()
        losses = trainer.train_step(step, batch)
    _sync(device)
    seconds = time.perf_counter() - t0
    if not torch.isfinite(losses).all():
        raise FloatingPointError(f"non-finite losses in the benchmark: {losses.tolist()}")
    return {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(), "it_per_s": round(steps / seconds, 3),
            "s_per_it": round(seconds / steps, 4),
            "peak_gpu_gib": round(torch.cuda.max_memory_allocated(device) / 2 ** 30, 2)
            if device.type == "cuda" else None,
            "params_m": {k: round(v / 1e6, 3) for k, v in n_params.items()},
            "shape": [cfg["batch_size"], channels, size, size], "genes": n_genes,
            "bf16": cfg["bf16"] and device.type == "cuda", "compile": cfg["compile"],
            "attention": cfg["attention"]}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="small widths at 32 x 32, batch 32, CPU-friendly")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 50, tiny 10)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 10, tiny 2)")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--genes", type=int, default=107)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--cells-per-gene", type=int, default=64)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--attention", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON summary here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = TINY if args.tiny else PAPER
    cfg = grape_config({**shape, "device": "cpu" if args.tiny and args.device == "auto" else args.device,
                        "compile": args.compile, "bf16": not args.no_bf16, "attention": args.attention,
                        "batch_size": args.batch or shape["batch_size"]})
    steps = args.steps or (10 if args.tiny else 50)
    warmup = args.warmup if args.warmup is not None else (2 if args.tiny else 10)
    result = bench(cfg, args.genes, args.channels, steps, warmup, args.cells_per_gene)
    print(f"GRAPE {result['shape']} x {result['genes']} genes on {result['device']}: "
          f"{result['it_per_s']} it/s ({result['s_per_it']} s/it), "
          f"peak GPU memory {result['peak_gpu_gib']} GiB")
    print(json.dumps(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
