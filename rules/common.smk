# Config validation, the screen's plate/well/tile listing, input functions and the
# method registry. Rules live in the other files; this one holds no rules.

import os
from pathlib import Path

from snakemake.utils import min_version

from opsembed.io.config import DEMO_DIR, DEMO_INPUT, is_demo, validate_config
from opsembed.io.errors import InputError

min_version("8.20")


##### config #####

# numbers written as text (1e-4) made numbers, the schema's defaults filled in, the
# cross-key rules checked: the same steps as opsembed.io.config.load_config
validate_config(config)

IS_DEMO = is_demo(config)
if IS_DEMO and config["input"]["tiles"] != DEMO_INPUT["tiles"]:
    raise InputError(
        f"config input.cells is the demo's ({DEMO_INPUT['cells']}) but input.tiles is not "
        f"({config['input']['tiles']!r}). Point both at your own screen, or neither."
    )

wildcard_constraints:
    plate="[^/]+",
    well="[^/]+",
    method="[A-Za-z0-9_]+",


##### GPUs #####


def _visible_gpus():
    """NVIDIA GPUs this machine shows (`nvidia-smi -L`); 0 without the tool or a driver."""
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines()) if out.returncode == 0 else 0


GPU_JOB = 1 if _visible_gpus() else 0
"""`resources: gpu` of the rules whose networks run on CUDA when present: 1 where this
machine has a GPU (the default profile's `gpu=1` then runs one such job at a time), 0 on
a CPU-only machine, so that those jobs run side by side on its cores. The SLURM profile
asks for a GPU for each of them whatever the submitting machine has."""


##### the screen: one row per tile that holds cells #####


def cell_groups(columns, optional=()):
    """Distinct rows of the cell table's `columns` plus those of `optional` that it has
    (contract names, str), read at parse time; the demo's design (plate, well, tile) before
    the demo's table exists. Lists what rules fan out over: tiles, wells, OOD folds."""
    if IS_DEMO:
        from opsembed.simulate.design import screen_layout

        table = screen_layout(config["simulate"])
    else:
        from opsembed.io.cells import check_path_names, separator_hint
        from opsembed.io.errors import InputError
        from opsembed.io.presets import missing_hint, resolve_columns
        from opsembed.io.tables import group_counts, table_columns

        path = config["input"]["cells"]
        preset = config["input"]["preset"]
        header = table_columns(path)
        rename = resolve_columns(preset, config["input"]["columns"], header)  # explicit wins
        source = {dst: src for src, dst in rename.items()}
        present = set(header)
        missing = [c for c in columns if source.get(c, c) not in present]
        if missing:
            raise InputError(f"{path}: missing column(s) {missing}; map other spellings with "
                             f"input.columns.{separator_hint(header)}{missing_hint(preset, missing)}")
        # once each: a column both required and optional (e.g. plate, an OOD level's) would be
        # read twice from a Parquet file
        read = list(dict.fromkeys(source.get(c, c) for c in list(columns) + list(optional)
                                  if source.get(c, c) in present))
        # distinct rows only (pyarrow groups a Parquet table before any Python object is
        # built): nothing per cell lives in the driver
        table = group_counts(path, read, text=read).rename(columns=rename)  # ids: as written
        # they name files: caught here, before any path is built
        check_path_names(table, path, rows=table["first_row"], counts=table["n"])
    keep = list(columns) + [c for c in optional if c in table.columns and c not in columns]
    return table[keep].astype(str).drop_duplicates().reset_index(drop=True)


def _ground_truths():
    from opsembed.io.ground_truth import ground_truth_files

    return ground_truth_files(config["input"]["ground_truth"])


GROUND_TRUTHS = _ground_truths()
"""{name: complex file} of input.ground_truth (one file, a list or a mapping), in order; the
first is the primary ground truth (results/evaluation/ground_truth.tsv, figures, report
montages), each further one is curated to results/evaluation/ground_truths/{name}.tsv and
scored beside it (opsembed.evaluate.benchmark.evaluate_ground_truths)."""
EXTRA_GROUND_TRUTHS = list(GROUND_TRUTHS)[1:]


TILES = cell_groups(["plate", "well", "tile"])
PLATES = sorted(TILES["plate"].unique())
WELLS = TILES[["plate", "well"]].drop_duplicates().sort_values(["plate", "well"])


def _tile_tokens():
    """input.tiles checked (known fields only) and each channel's {channel} token, at parse time."""
    from opsembed.io.tiles import check_pattern, resolve_tokens

    check_pattern(config["input"]["tiles"])
    return resolve_tokens(config["channels"], config["input"].get("channel_tokens"), config["input"]["tiles"])


TILE_TOKENS = _tile_tokens()


def _tile_files(rows):
    """Every file of the tiles in `rows` (one per channel for a {channel} pattern)."""
    from opsembed.io.tiles import tile_files

    pattern = config["input"]["tiles"]
    return [f for r in rows.itertuples() for f in tile_files(pattern, r.plate, r.well, r.tile, TILE_TOKENS)]


def plate_tile_refs(wildcards):
    """The tiles of one plate as references ({channel} left in; see opsembed.io.tiles)."""
    from opsembed.io.tiles import tile_path

    rows = TILES[TILES["plate"] == wildcards.plate]
    return [tile_path(config["input"]["tiles"], r.plate, r.well, r.tile) for r in rows.itertuples()]


def all_tiles(wildcards=None):
    """Every tile file of the screen."""
    return _tile_files(TILES)


def plate_tiles(wildcards):
    """The tile files of one plate."""
    return _tile_files(TILES[TILES["plate"] == wildcards.plate])


def plate_sampled_tiles(block):
    """Input function: the files of the tiles of one plate that preprocess.<block> samples
    (opsembed.preprocess.flatfield.sample_paths with its n_tiles and the config's seed:
    the draw the job makes), or the one tile whose header a disabled flatfield reads: the
    files the job reads, no more (the plate's other tiles are inputs of validate_tiles, which
    every later job waits on). Listing only the sample keeps the driver light."""
    from opsembed.io.tiles import channel_files
    from opsembed.preprocess.flatfield import sample_paths

    cfg = config["preprocess"][block]

    def files(wildcards):
        refs = plate_tile_refs(wildcards)
        chosen = sample_paths(refs, int(cfg["n_tiles"]), config["seed"]) if cfg.get("enabled", True) \
            else sorted(map(str, refs))[:1]
        return [f for ref in chosen for f in channel_files(ref, TILE_TOKENS)]

    return files


def well_tiles(wildcards):
    """The tile files of one well."""
    return _tile_files(TILES[(TILES["plate"] == wildcards.plate) & (TILES["well"] == wildcards.well)])


def flatfield_models(wildcards=None):
    """One flatfield model per plate, in PLATES order."""
    return expand("results/preprocess/flatfield/{plate}.npz", plate=PLATES)


def flatfield_figures(wildcards=None):
    return expand("results/preprocess/qc/flatfield_{plate}.png", plate=PLATES)


def plate_tile_tables(wildcards=None):
    return expand("results/preprocess/tiles/{plate}.tsv", plate=PLATES)


def plate_samples(wildcards=None):
    """One percentile pixel sample per plate, in PLATES order."""
    return expand("results/preprocess/percentiles/{plate}.npz", plate=PLATES)


def well_moments(wildcards=None):
    """The control moments of each well, in WELLS order."""
    return [f"results/preprocess/moments/{r.plate}/{r.well}.npz" for r in WELLS.itertuples()]


def well_cells(wildcards=None):
    """The z-scored crops of each well (the sources of cells.h5's images), in WELLS order."""
    return [f"results/preprocess/cells/{r.plate}/{r.well}.h5" for r in WELLS.itertuples()]


def plate_flatfield(wildcards):
    return f"results/preprocess/flatfield/{wildcards.plate}.npz"


##### params: the keys a job reads #####


def config_keys(block, keys=None, omit=()):
    """The keys of the config block `block` (a dict) that a job reads, as its params: those
    of `keys` (None: all) less those of `omit`. Snakemake reruns a job when a param changes,
    so a job gets no key it does not read. The library fills any key left out with the
    schema's default (opsembed.io.schema.block_config)."""
    return {k: v for k, v in block.items() if (keys is None or k in keys) and k not in omit}


##### embedding methods #####
# A method's rule file (rules/methods/NAME.smk) calls register_method(); nothing else
# in the workflow names it.

METHODS = {}


def register_method(block, outputs, skip_reason=None, training=None):
    """Register config block `methods.<block>`, producing embedding methods `outputs`.

    skip_reason: why the method cannot run with this config (then it is skipped, with a
    message), or None. training: {output method: {"losses": tsv, "samples": png}} for
    learned methods, shown in the report.
    """
    if not config["methods"][block]["enabled"]:
        return
    if skip_reason:
        logger.info(f"opsembed: skipping method '{block}': {skip_reason}")
        return
    for name in outputs:
        METHODS[name] = {"block": block, "training": training or {}}


def method_names():
    return list(METHODS)


def embedding_files(wildcards=None):
    return expand("results/embeddings/{method}.tsv", method=method_names())


def training_outputs(wildcards=None):
    return sorted({p for m in METHODS.values() for run in m["training"].values() for p in run.values()})


def training_runs():
    """{method: {"losses": tsv, "samples": png}} for the report."""
    return {name: run for m in METHODS.values() for name, run in m["training"].items()}


BENCHMARKS = {}


def register_benchmark(name, files):
    """Register a further benchmark's result files ({role: path}) for all_evaluate and the
    report, which shows the benchmarks it knows by name (e.g. "ood")."""
    BENCHMARKS[name] = dict(files)


def benchmark_outputs(wildcards=None):
    return sorted(p for files in BENCHMARKS.values() for p in files.values())


def embedding_if_registered(method):
    """Input function: the embedding file of `method` when it runs in this config, else
    nothing (for methods that build on another's embedding; order of includes is irrelevant)."""

    def files(wildcards):
        return f"results/embeddings/{method}.tsv" if method in METHODS else []

    return files


def fold_generator(wildcards):
    """OOD benchmark input function: the fold's generator model when the predictor is
    trained through one (opsembed.io.folds.INTERVENTIONAL), else nothing."""
    from opsembed.io.folds import INTERVENTIONAL

    if wildcards.predictor in INTERVENTIONAL:
        return {"generator": f"results/ood/{wildcards.fold}/{wildcards.predictor}_generator/model.pt"}
    return {}


def method_metrics(wildcards=None):
    return expand("results/evaluation/{method}/metrics.tsv", method=method_names())


def method_ksweeps(wildcards=None):
    return expand("results/evaluation/{method}/ksweep.tsv", method=method_names())


def method_umaps(wildcards=None):
    return expand("results/evaluation/{method}/umap.png", method=method_names())


def export_outputs(wildcards=None):
    """The files for the field's tools (rules/export.smk): genes.h5ad, the engineered
    per-cell profiles when that method runs, each OOD predictor's IID-fold cell features
    when the OOD benchmark runs."""
    files = ["results/embeddings/genes.h5ad"]
    if "engineered" in METHODS:
        files.append("results/features/engineered.parquet")
    if config["ood"]["enabled"]:
        files += expand("results/features/ood_iid_{predictor}.parquet", predictor=config["ood"]["predictors"])
    return files


def tiles_pattern(wildcards):
    """input.tiles as a param (a function, so Snakemake leaves its {wildcards} alone)."""
    return config["input"]["tiles"]


def demo_tiles_pattern(wildcards):
    return DEMO_INPUT["tiles"]
