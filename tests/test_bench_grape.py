"""benchmarks/bench_grape.py runs on a CPU at a small shape and reports its speed."""

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_grape.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_grape", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_benchmark_runs_on_cpu(tmp_path, one_thread):
    bench = _bench()
    assert bench.PAPER["n_down"] == 3 and bench.PAPER["image_size"] == 96   # the paper's 12 x 12 bottleneck
    out = tmp_path / "bench.json"
    result = bench.main(["--tiny", "--device", "cpu", "--steps", "2", "--warmup", "1", "--genes", "3",
                         "--cells-per-gene", "2", "--batch", "4", "--out", str(out)])
    assert result["device"] == "cpu" and result["it_per_s"] > 0 and result["peak_gpu_gib"] is None
    assert result["shape"] == [4, 4, 32, 32] and out.exists()
