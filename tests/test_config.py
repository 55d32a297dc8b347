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
    assert len(demo["ood"].pop("genes")) == 10  # one gene per demo complex
    assert empty["ood"].pop("genes") is None
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


@pytest.mark.parametrize("keys, module, name", [
    (("methods", "grape"), "opsembed.train.grape_trainer", "DEFAULTS"),
    (("methods", "impa"), "opsembed.train.impa_trainer", "DEFAULTS"),
    (("ood", "ist"), "opsembed.train.ist_trainer", "IST_DEFAULTS"),
    (("ood", "stargan"), "opsembed.train.ist_trainer", "STARGAN_DEFAULTS"),
    (("ood", "predictor"), "opsembed.train.predictor_trainer", "PREDICTOR_DEFAULTS"),
    (("ood",), "opsembed.evaluate.ood", "OOD_DEFAULTS"),
])
def test_library_defaults_match_the_schema(keys, module, name):
    """The library's defaults (used outside Snakemake) are the schema's, key for key."""
    import importlib

    cfg = {}
    validate(cfg, SCHEMA)
    for key in keys:
        cfg = cfg[key]
    defaults = getattr(importlib.import_module(module), name)
    assert {k: cfg[k] for k in defaults} == defaults
    if keys != ("ood",):  # the ood block also holds the trainers' blocks and the rule fan-out
        assert set(cfg) - {"enabled"} == set(defaults) - {"enabled"}
