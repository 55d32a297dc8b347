"""The default config is neutral: a user's file that sets only `input:` and `channels:` runs
with exactly the defaults config/README.md documents (the schema's), while the simulated
demo keeps every value it had (config/demo.yaml); the workflow and load_config agree."""

import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

from conftest import REPO
from opsembed.io.config import load_config

SCHEMA = str(REPO / "config" / "schema" / "config.schema.yaml")
SNAPSHOT = REPO / "tests" / "fixtures" / "demo_config.yaml"

_DUMP = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings
snakefile, workdir, out, *configfiles = sys.argv[1:]
with SnakemakeApi(OutputSettings()) as api:
    wf = api.workflow(snakefile=Path(snakefile), workdir=Path(workdir),
                      config_settings=ConfigSettings(configfiles=[Path(c) for c in configfiles]),
                      resource_settings=ResourceSettings(cores=1))
    Path(out).write_text(json.dumps(wf._workflow.config))
"""


def workflow_config(workdir, *configfiles):
    """The config the workflow's rules see (Snakefile parsed, validation run) when started
    in `workdir` with `--configfile *configfiles`."""
    out = workdir / "effective_config.json"
    env = dict(os.environ, PYTHONPATH=str(REPO / "workflow" / "scripts"))
    proc = subprocess.run([sys.executable, "-c", _DUMP, str(REPO / "Snakefile"), str(workdir), str(out),
                           *map(str, configfiles)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return json.loads(out.read_text())


def schema_defaults():
    cfg = {}
    validate(cfg, SCHEMA, set_default=True)
    return json.loads(json.dumps(cfg))


def leaves(cfg, prefix=""):
    """{dotted key: value} of every non-mapping value (an empty mapping is a leaf)."""
    out = {}
    for key, value in cfg.items():
        if isinstance(value, dict) and value:
            out.update(leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


FREE_TEXT = {  # README cells that describe a default in words: the words, and the value they mean
    "ood.levels": ("well (1 fold), plate, series",
                   [{"name": "well", "columns": ["plate", "well"], "max_folds": 1},
                    {"name": "plate", "columns": ["plate"], "max_folds": None},
                    {"name": "series", "columns": ["series"], "max_folds": None}]),
    "ood.predictors": ("all five", ["naive", "dr", "mixstyle", "stargan", "ist"]),
}
LABELS = {"IMPA": "methods.impa.", "OOD": "ood.stargan.", "predictor": "ood.predictor."}
"""`a`; IMPA `b`; OOD `c`: the key prefix each label's value applies to."""


def readme_defaults():
    """{key: default} from the key tables of config/README.md (after `## Keys`)."""
    text = (REPO / "config" / "README.md").read_text().split("\n## Keys\n", 1)[1]
    out = {}
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        name, default = (cell.strip() for cell in line.split("|")[1:3])
        spans = re.findall(r"`([^`]+)`", name)
        parent = spans[0].rpartition(".")[0]
        keys = [spans[0]] + [s if "." in s or not parent else f"{parent}.{s}" for s in spans[1:]]
        if keys[0] in FREE_TEXT:
            words, value = FREE_TEXT[keys[0]]
            assert default == words, f"config/README.md: {keys[0]} now reads {default!r}; update FREE_TEXT"
            out[keys[0]] = value
            continue
        listed = re.fullmatch(r"`([^`]*)`(?:, `([^`]*)`)+", default)
        if listed and len(re.findall(r"`([^`]*)`", default)) == len(keys):  # `2`, `30`: one per key
            out.update(zip(keys, (yaml.safe_load(v) for v in re.findall(r"`([^`]*)`", default))))
            continue
        match = re.fullmatch(r"`([^`]*)`((?:; \w+ `[^`]*`)*)", default)
        assert match, f"config/README.md: cannot read the default {default!r} of {keys}"
        labelled = dict(re.findall(r"; (\w+) `([^`]*)`", match.group(2)))
        for key in keys:
            value = match.group(1)
            for label, v in labelled.items():
                if key.startswith(LABELS[label]):
                    value = v
            out[key] = yaml.safe_load(value)
    return out


def test_readme_documents_the_schema_defaults():
    documented, defaults = readme_defaults(), leaves(schema_defaults())
    assert set(documented) <= set(defaults), sorted(set(documented) - set(defaults))
    wrong = {k: (documented[k], defaults[k]) for k in documented if documented[k] != defaults[k]}
    assert not wrong, f"config/README.md default != schema default: {wrong}"
    assert len(documented) > 150  # the tables were read (not skipped by a format change)


@pytest.fixture
def user_screen(tmp_path):
    """A small screen of the user's own (other genes, plates, wells) and a config that
    overrides only input: and channels:, as README.md says."""
    rows = [(p, w, t, 50.0, 60.0, g) for p in ("PA", "PB") for w in ("B02", "C03")
            for t in ("t0", "t1") for g in ("GENE1", "GENE2", "GENE3", "nontargeting")]
    pd.DataFrame(rows, columns=["plate", "well", "tile", "y", "x", "gene"]).to_csv(tmp_path / "cells.csv", index=False)
    for p, w, t, *_ in rows:
        (tmp_path / "tiles" / p / w).mkdir(parents=True, exist_ok=True)
        (tmp_path / "tiles" / p / w / f"{t}.tif").touch()  # neither parsing nor a dry run opens them
    (tmp_path / "complexes.tsv").write_text("complex\tgene\nC1\tGENE1\nC1\tGENE2\n")
    user = {"input": {"tiles": str(tmp_path / "tiles" / "{plate}" / "{well}" / "{tile}.tif"),
                      "cells": str(tmp_path / "cells.csv"), "ground_truth": str(tmp_path / "complexes.tsv")},
            "channels": ["DAPI", "GFP"]}
    path = tmp_path / "my_screen.yaml"
    path.write_text(yaml.safe_dump(user))
    return path, user


def test_a_user_config_gets_exactly_the_documented_defaults(user_screen):
    """Case 3: before, the demo's ood.genes, flatfield.offset 100 and crop.edge pad leaked in."""
    path, user = user_screen
    work = path.parent
    effective = leaves(workflow_config(work, path))
    documented, defaults = readme_defaults(), leaves(schema_defaults())
    mine = leaves({"input": user["input"]}) | {"channels": user["channels"]}
    assert set(effective) == set(defaults)
    for key, value in effective.items():
        if key in mine:
            assert value == mine[key], key
        else:
            assert value == defaults[key], f"{key}: {value!r}, but the schema's default is {defaults[key]!r}"
            if key in documented:
                assert value == documented[key], f"{key}: {value!r}, but config/README.md says {documented[key]!r}"
    undocumented = sorted(k for k in effective if k not in documented and not k.startswith("simulate.")
                          and k not in mine)
    assert not undocumented, f"config/README.md does not state the default of {undocumented}"
    # the whole DAG builds for it, and load_config (the CLI's) sees the same config
    env = dict(os.environ, PYTHONPATH=str(REPO / "workflow" / "scripts"))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--directory", str(work),
                           "--snakefile", str(REPO / "Snakefile"), "--configfile", str(path)],
                          capture_output=True, text=True, env=env, cwd=work)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert "fit_flatfield" in proc.stdout and "simulate_demo" not in proc.stdout
    assert leaves(load_config(path)) == effective


def test_the_demo_keeps_every_value_it_had(tmp_path):
    """The demo's effective config equals the snapshot taken before the split, with or
    without config.yaml given again as a --configfile; keys added since are at their defaults."""
    snapshot = leaves(yaml.safe_load(SNAPSHOT.read_text()))
    defaults = leaves(schema_defaults())
    for configfiles in ([], [REPO / "config" / "config.yaml"]):
        effective = leaves(workflow_config(tmp_path, *configfiles))
        changed = {k: (v, effective.get(k, "<absent>")) for k, v in snapshot.items() if effective.get(k, "<absent>") != v}
        # intended (issue 13): the demo scores a second, coarser ground truth beside its complexes
        assert changed.pop("input.ground_truth", (None, None))[1] == [snapshot["input.ground_truth"],
                                                                     "resources/demo/processes.tsv"]
        # intended (issues 14, 16): the demo holds out plates only, to stay within 30 minutes
        assert changed.pop("ood.levels", (None, None))[1] == [{"name": "plate", "columns": ["plate"],
                                                               "max_folds": None}]
        assert not changed, f"the demo's config changed (was, is): {changed}"
        added = {k: v for k, v in effective.items() if k not in snapshot and v != defaults[k]}
        assert not added, f"new keys off their defaults in the demo: {added}"
        assert leaves(load_config(configfiles or None)) == effective


def test_demo_overlay_holds_only_the_demo_settings_and_yours_win(tmp_path):
    demo = leaves(yaml.safe_load((REPO / "config" / "demo.yaml").read_text()))
    assert {k for k in demo if not k.startswith("simulate.")} == {
        "input.ground_truth", "preprocess.flatfield.offset", "preprocess.crop.edge", "ood.levels"}
    # config.yaml is the schema's defaults written out
    neutral = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(neutral, SCHEMA, set_default=True)
    assert leaves(json.loads(json.dumps(neutral))) == leaves(schema_defaults())
    # a demo run's own file beats demo.yaml, in the workflow and in load_config alike
    mine = tmp_path / "mine.yaml"
    mine.write_text("preprocess:\n  flatfield:\n    offset: 7\nood:\n  genes: null\n")
    effective = workflow_config(tmp_path, mine)
    assert effective["preprocess"]["flatfield"]["offset"] == 7 and effective["ood"]["genes"] is None
    assert effective["preprocess"]["crop"]["edge"] == "pad"  # still the demo's
    assert load_config(mine) == effective
