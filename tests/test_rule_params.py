"""Rules pass a job only the config keys it reads: Snakemake reruns a job when one of its
params changes, so a key that a job does not read must not be among them."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

_DUMP = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings
snakefile, workdir, out = sys.argv[1:]
with SnakemakeApi(OutputSettings()) as api:
    wf = api.workflow(snakefile=Path(snakefile), workdir=Path(workdir), config_settings=ConfigSettings(),
                      resource_settings=ResourceSettings(cores=1))
    w = wf._workflow
    rules = ["train_grape", "extract_grape", "train_impa", "extract_impa", "train_ist", "train_stargan_oe",
             "train_predictor", "ood_fold_eval", "embed_predictor", "phenotypic_activity", "ist_restyle"]
    params = {r: {k: v for k, v in w.get_rule(r).params.items() if isinstance(v, (dict, int, str))} for r in rules}
    Path(out).write_text(json.dumps({"params": params, "config": w.config}))
"""


@pytest.fixture(scope="module")
def parsed(tmp_path_factory):
    """{"params": {rule: {name: value}}, "config": the workflow's config}, default config."""
    workdir = tmp_path_factory.mktemp("wf")
    out = workdir / "params.json"
    env = dict(os.environ, PYTHONPATH=str(REPO / "workflow" / "scripts"))
    proc = subprocess.run([sys.executable, "-c", _DUMP, str(REPO / "Snakefile"), str(workdir), str(out)],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text())


def test_extraction_and_training_get_disjoint_extra_keys(parsed):
    p, cfg = parsed["params"], parsed["config"]
    assert set(p["extract_grape"]["cfg"]) == {"device", "n_cells_p3"}
    assert set(p["extract_impa"]["cfg"]) == {"device", "n_cells"}
    grape = set(cfg["methods"]["grape"]) - {"enabled", "n_cells_p3", "n_cells_generative"}
    assert set(p["train_grape"]["cfg"]) == grape
    assert set(p["train_impa"]["cfg"]) == set(cfg["methods"]["impa"]) - {"enabled", "n_cells", "n_cells_generative"}
    assert p["train_grape"]["cfg"] == {k: cfg["methods"]["grape"][k] for k in grape}


def test_fold_jobs_get_the_fold_keys_and_their_own_block_only(parsed):
    from opsembed.evaluate.ood import METRIC_KEYS
    from opsembed.io.folds import FOLD_KEYS

    p, ood = parsed["params"], parsed["config"]["ood"]
    for rule in ("train_ist", "train_stargan_oe", "train_predictor"):
        assert set(p[rule]["ood"]) == set(FOLD_KEYS), rule          # no metric key, no other block
    assert set(p["ood_fold_eval"]["ood"]) == set(FOLD_KEYS + METRIC_KEYS)
    assert p["train_ist"]["cfg"] == {k: v for k, v in ood["ist"].items() if k != "n_restyle_cells"}
    assert set(p["ist_restyle"]["cfg"]) == {"device", "data_in_memory", "memory_fraction", "batch_size",
                                            "n_restyle_cells"}
    assert "n_cells_p3" not in p["train_stargan_oe"]["cfg"]
    assert set(p["train_predictor"]["cfg"]) == set(ood["predictor"]) - {"eval_batch_size", "test_time_styles"}
    assert set(p["ood_fold_eval"]["cfg"]) == {"device", "data_in_memory", "memory_fraction", "eval_batch_size",
                                              "test_time_styles"}
    assert set(p["embed_predictor"]["cfg"]) == {"device", "data_in_memory", "memory_fraction", "eval_batch_size"}
    from opsembed.io.folds import CLASS_KEYS
    assert set(p["phenotypic_activity"]["ood"]) == set(CLASS_KEYS)             # the classes file carries them on


def test_the_library_fills_what_a_rule_leaves_out(parsed):
    from opsembed.io.folds import ood_config
    from opsembed.train.predictor_trainer import predictor_config

    p, ood = parsed["params"], parsed["config"]["ood"]
    assert predictor_config(p["ood_fold_eval"]["cfg"])["test_time_styles"] == ood["predictor"]["test_time_styles"]
    folds = ood_config(p["train_ist"]["ood"])
    assert {k: folds[k] for k in p["train_ist"]["ood"]} == p["train_ist"]["ood"]
