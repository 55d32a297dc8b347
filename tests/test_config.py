"""Config validation: the shipped configs pass, defaults are filled in, and bad keys or
types fail with a message naming the key. config/README.md documents every key."""

import re

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import update_config, validate

from conftest import REPO

SCHEMA = str(REPO / "config" / "schema" / "config.schema.yaml")


def _load(name):
    return yaml.safe_load((REPO / "config" / name).read_text())


@pytest.mark.parametrize("name", ["config.yaml", "demo.yaml", "paper.yaml"])
def test_shipped_configs_validate(name):
    validate(_load(name), SCHEMA)


def test_defaults_fill_an_empty_config_like_config_yaml_and_the_demo_adds_its_own():
    empty = {}
    validate(empty, SCHEMA)
    neutral = _load("config.yaml")
    validate(neutral, SCHEMA)
    assert empty == neutral
    demo = _load("config.yaml")
    update_config(demo, _load("demo.yaml"))
    validate(demo, SCHEMA)
    # the demo differs from the defaults only where a default must suit real screens
    assert demo["preprocess"]["flatfield"].pop("offset") == 100  # the simulated camera's offset
    assert empty["preprocess"]["flatfield"].pop("offset") == 0
    assert demo["preprocess"]["crop"].pop("edge") == "pad"  # keeps the small demo's edge cells
    assert empty["preprocess"]["crop"].pop("edge") == "drop"
    # two ground truths side by side: the demo's complexes and the coarser pairs of them
    assert demo["input"].pop("ground_truth") == ["resources/demo/complexes.tsv", "resources/demo/processes.tsv"]
    assert empty["input"].pop("ground_truth") == "resources/demo/complexes.tsv"
    # no hand-written OOD gene list: the benchmark chooses its classes by phenotypic activity
    assert demo["ood"]["genes"] is None and demo["ood"]["max_genes"] == empty["ood"]["max_genes"]
    # the demo holds out plates only (its time budget); real screens get every level by default
    assert [lv["name"] for lv in demo["ood"].pop("levels")] == ["plate"]
    assert [lv["name"] for lv in empty["ood"].pop("levels")] == ["well", "plate", "series"]
    assert empty == demo


def test_unknown_key_names_the_key():
    cfg = _load("config.yaml")
    cfg["preprocess"]["crop"]["sise"] = 96
    with pytest.raises(WorkflowError, match="'sise' was unexpected"):
        validate(cfg, SCHEMA)


def test_wrong_type_names_the_key():
    cfg = _load("config.yaml")
    cfg["preprocess"]["crop"]["size"] = "big"
    with pytest.raises(WorkflowError, match=r"(?s)'big' is not of type 'integer'.*instance\['preprocess'\]\['crop'\]\['size'\]"):
        validate(cfg, SCHEMA)


def test_tiles_pattern_needs_all_wildcards():
    cfg = _load("config.yaml")
    cfg["input"]["tiles"] = "tiles/{plate}/{tile}.tif"
    with pytest.raises(WorkflowError, match="does not match"):
        validate(cfg, SCHEMA)


def _leaf_keys(schema, prefix=""):
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        if sub.get("type") == "object" and "properties" in sub:
            yield from _leaf_keys(sub, path + ".")
        else:
            yield path


def _documented_keys(text):
    """Keys named in the first cell of the README's key table: `a.b.c`, `d` means a.b.d;
    `a.b.c`, `x.y.c` names both keys."""
    keys = set()
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        spans = re.findall(r"`([^`]+)`", line.split("|")[1])
        parent = spans[0].rpartition(".")[0]
        keys.add(spans[0])
        keys.update(leaf if "." in leaf or not parent else f"{parent}.{leaf}" for leaf in spans[1:])
    return keys


def test_config_readme_documents_every_key():
    schema = yaml.safe_load(open(SCHEMA))
    documented = _documented_keys((REPO / "config" / "README.md").read_text())
    missing = sorted(set(_leaf_keys(schema)) - documented)
    assert not missing, f"config/README.md lacks {missing}"


# ---- cross-key rules (opsembed.io.config_rules), checked at start-up and by load_config ----

def _write(tmp_path, text):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, keys", [
    ("preprocess: {rescale: {low: 99.9, high: 0.1}}", ["preprocess.rescale.low", "preprocess.rescale.high"]),
    ("preprocess: {rescale: {low: 50, high: 50}}", ["preprocess.rescale.low", "preprocess.rescale.high"]),
    ("evaluation: {kmeans: {k_min: 12, k_max: 8}}", ["evaluation.kmeans.k_min", "evaluation.kmeans.k_max"]),
    ("evaluation: {ground_truth: {min_genes: 6, max_genes: 4}}",
     ["evaluation.ground_truth.min_genes", "evaluation.ground_truth.max_genes"]),
    ("methods: {grape: {attention: true, attention_heads: 3}}",
     ["methods.grape.attention_heads", "methods.grape.embed_dim"]),
    ("ood: {ist: {pretrain_iterations: 250, iterations: 250}}",
     ["ood.ist.pretrain_iterations", "ood.ist.iterations"]),
    ("ood: {ist: {image_size: 48}}", ["ood.ist.image_size", "ood.predictor.image_size"]),
    ("ood: {batch_level: wells}", ["ood.batch_level", "ood.levels"]),
])
def test_cross_key_rules_fail_at_load_naming_the_keys(tmp_path, text, keys):
    from opsembed.io.config import load_config
    from opsembed.io.errors import InputError

    path = _write(tmp_path, text)
    with pytest.raises(InputError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message
    for key in keys:
        assert key in message, message


def test_cross_key_rules_report_every_problem_at_once(tmp_path):
    from opsembed.io.config import load_config
    from opsembed.io.errors import InputError

    path = _write(tmp_path, "preprocess: {rescale: {low: 60, high: 40}}\nevaluation: {kmeans: {k_min: 9, k_max: 3}}\n")
    with pytest.raises(InputError, match=r"(?s)rescale\.low \(60\).*kmeans\.k_min \(9\)"):
        load_config(path)


def test_cross_key_rules_pass_when_they_hold_or_do_not_apply(tmp_path):
    from opsembed.io.config import load_config

    # equal bounds of a range that may be one value; attention off; IST not a predictor
    load_config(_write(tmp_path, "evaluation: {kmeans: {k_min: 5, k_max: 5}, ground_truth: {min_genes: 4, max_genes: 4}}\n"
                                 "methods: {grape: {attention_heads: 3}}\n"
                                 "ood: {predictors: [naive], ist: {image_size: 48}}\n"))
    for name in ("config.yaml", "demo.yaml", "paper.yaml"):
        load_config(REPO / "config" / name)


def _failed_dry_run(tmp_path, text: str) -> str:
    """The output of ``snakemake -n`` with the config ``text``, asserting that it failed."""
    from test_workflow import _run

    proc = _run(["-n", "--directory", str(tmp_path), "--snakefile", str(REPO / "Snakefile"),
                 "--configfile", str(_write(tmp_path, text))], check=False)
    assert proc.returncode != 0
    return proc.stdout + proc.stderr


def test_rescale_low_above_high_stops_the_workflow_at_start_up(tmp_path):
    """Case 9: before, the run went ahead and failed later as "channel is constant"."""
    out = _failed_dry_run(tmp_path, "preprocess:\n  rescale:\n    low: 99.9\n    high: 0.1\n")
    assert "preprocess.rescale.low (99.9) must be below preprocess.rescale.high (0.1)" in out, out[-3000:]
    assert "Building DAG" not in out or "simulate_demo" not in out


# ---- numbers written as text: PyYAML reads 1e-4 (no dot) as a string ----

NUMBERS_AS_TEXT = """\
methods:
  grape:
    lr: 1e-4
    iterations: 5e3
    betas: [0e0, 99e-2]
  random:
    dim: '64'
preprocess:
  flatfield:
    offset: 1E2
evaluation:
  recall:
    percentile: +2.5e0
input:
  columns: {nuc_y: y}
controls: 1e3
"""


def test_numbers_written_as_text_are_numbers_where_the_schema_wants_one(tmp_path):
    """Case 11: before, `lr: 1e-4` was rejected as "'1e-4' is not of type 'number'"."""
    from opsembed.io.config import load_config
    from test_config_defaults import workflow_config

    path = _write(tmp_path, NUMBERS_AS_TEXT)
    assert yaml.safe_load(path.read_text())["methods"]["grape"]["lr"] == "1e-4"  # the PyYAML behaviour
    for cfg in (load_config(path), workflow_config(tmp_path, path)):
        grape = cfg["methods"]["grape"]
        assert grape["lr"] == 1e-4 and isinstance(grape["lr"], float)
        assert grape["iterations"] == 5000 and type(grape["iterations"]) is int
        assert grape["betas"] == [0.0, 0.99]
        assert cfg["methods"]["random"]["dim"] == 64 and type(cfg["methods"]["random"]["dim"]) is int
        assert cfg["preprocess"]["flatfield"]["offset"] == 100.0
        assert cfg["evaluation"]["recall"]["percentile"] == 2.5
        assert cfg["controls"] == "1e3"  # a string key keeps its text


@pytest.mark.parametrize("text, match", [
    ("methods: {grape: {iterations: 25e-1}}", r"methods/grape/iterations: '25e-1' is not of type 'integer'"),
    ("methods: {grape: {lr: 1e-4x}}", r"methods/grape/lr: '1e-4x' is not of type 'number'"),
])
def test_text_that_is_not_the_wanted_number_is_still_rejected(tmp_path, text, match):
    from opsembed.io.config import load_config
    from opsembed.io.errors import InputError

    with pytest.raises(InputError, match=match):
        load_config(_write(tmp_path, text))


def test_demo_cells_with_other_tiles_is_an_input_error(tmp_path):
    out = _failed_dry_run(tmp_path, "input:\n  tiles: /data/{plate}/{well}/{tile}.tif\n")
    assert "InputError" in out and "Point both at your own screen, or neither" in out, out[-2000:]
