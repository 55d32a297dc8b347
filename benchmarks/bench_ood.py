"""The demo's OOD benchmark (IST paper, Table 1) at three batch-effect settings, several seeds.

    python benchmarks/bench_ood.py RUNROOT [--seeds 3] [--settings technical biology both]
        [--predictors naive dr mixstyle ist] [--levels plate] [--snakemake PATH] [--cores 2]
        [--out benchmarks/results/ood_bench.tsv] [--config extra.yaml]

Per setting, a run directory RUNROOT/<setting> (``/work/runs/mkrun``-style: the workflow's
files as symlinks to this checkout, made here if absent) runs the default demo's OOD
benchmark (``results/evaluation/ood.tsv``) with ``ood.seeds`` training seeds of every fold x
predictor and only the simulator's batch effects changed:

- ``technical``: ``simulate.technical_scale: 1``, ``batch_scale: 0`` (plates differ only
  in imaging: blur, stain response, bleed-through, background, read noise, well gains);
- ``biology``: ``technical_scale: 0``, ``batch_scale: 6`` (the demo of before: the plates
  shift the very phenotype parameters the knockouts change);
- ``both``: ``technical_scale: 1``, ``batch_scale: 6``.

Nothing else is tuned: the classes are chosen by phenotypic activity as in the demo, the
networks and steps are the schema's defaults (``--config`` adds a YAML of your own on top,
e.g. to try IST settings; it is applied to every setting). Writes one table (``--out``):
per setting and method, macro-F1 IID and per level (mean and SD over seeds), and per
setting the IST - naive difference on held-out plates (mean, SD over seeds, seeds where
IST is ahead), and prints it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

from opsembed.evaluate.ood_eval import method_gap  # noqa: E402

SETTINGS = {"technical": {"technical_scale": 1.0, "batch_scale": 0.0},
            "biology": {"technical_scale": 0.0, "batch_scale": 6.0},
            "both": {"technical_scale": 1.0, "batch_scale": 6.0}}
LINKS = ("Snakefile", "rules", "workflow", "config", "envs", "profiles")


def run_dir(root: Path, name: str) -> Path:
    """RUNROOT/name with the workflow's files linked from this checkout (results/ its own)."""
    work = root / name
    work.mkdir(parents=True, exist_ok=True)
    for item in LINKS:
        link = work / item
        if not link.exists():
            link.symlink_to(REPO / item)
    return work


def merged(base: dict, over: dict) -> dict:
    """``base`` updated by ``over``, nested dicts merged key by key."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def run_setting(work: Path, setting: dict, args, extra: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the OOD benchmark in ``work``; (ood.tsv, ood_folds.tsv)."""
    cfg = {"simulate": dict(setting), "ood": {"seeds": args.seeds, "predictors": args.predictors}}
    if args.levels:
        cfg["ood"]["levels"] = [lv for lv in yaml.safe_load((REPO / "config" / "schema" / "config.schema.yaml")
                                                            .read_text())["properties"]["ood"]["properties"]
                                ["levels"]["default"] if lv["name"] in args.levels]
    cfg = merged(cfg, extra)
    (work / "bench.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [args.snakemake, "--cores", str(args.cores), "--configfile", "bench.yaml", "--",
           "results/evaluation/ood.tsv"]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{work}: {' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    ev = work / "results" / "evaluation"
    return pd.read_csv(ev / "ood.tsv", sep="\t"), pd.read_csv(ev / "ood_folds.tsv", sep="\t", keep_default_na=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runroot", type=Path)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--predictors", nargs="+", default=["naive", "dr", "mixstyle", "ist"])
    ap.add_argument("--levels", nargs="*", default=None, help="OOD levels to keep (default: the demo's)")
    ap.add_argument("--config", type=Path, default=None, help="a YAML applied on top in every setting")
    ap.add_argument("--snakemake", default=str(Path(sys.executable).with_name("snakemake")))
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "ood_bench.tsv")
    args = ap.parse_args()
    extra = yaml.safe_load(args.config.read_text()) if args.config else {}
    rows = []
    for name in args.settings:
        table, folds = run_setting(run_dir(args.runroot.resolve(), name), SETTINGS[name], args, extra)
        gap = method_gap(folds, "ist", "naive", "plate") if "ist" in args.predictors else None
        for rec in table.to_dict("records"):
            rows.append({"setting": name, **SETTINGS[name], **{k: v for k, v in rec.items()
                                                              if k.startswith(("method", "macro_f1_", "sd_macro_f1_",
                                                                               "n_seeds"))}})
        if gap is not None:
            rows.append({"setting": name, **SETTINGS[name], "method": "ist - naive (held-out plate)",
                         "macro_f1_plate": gap["mean"], "sd_macro_f1_plate": gap["sd"], "n_seeds": gap["n_seeds"],
                         "ist_ahead_seeds": gap["wins"]})
        print(f"{name}: done", flush=True)
    out = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(args.out, sep="\t", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(out.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
