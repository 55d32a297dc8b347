"""The SLURM profile sends every rule that asks for a GPU to the GPU partition."""

import re

import yaml

from conftest import REPO


def _rules_asking_for_a_gpu():
    rules = {}
    for path in (REPO / "rules").rglob("*.smk"):
        for block in re.split(r"\n(?=rule )", path.read_text()):
            name = re.match(r"rule (\w+):", block)
            if name:
                rules[name.group(1)] = re.search(r"^\s+gpu=GPU_JOB,", block, re.M) is not None
    return {name for name, gpu in rules.items() if gpu}, set(rules)


def test_every_gpu_rule_goes_to_the_gpu_partition():
    gpu_rules, all_rules = _rules_asking_for_a_gpu()
    assert {"train_grape", "train_ist", "train_predictor"} <= gpu_rules  # the parser finds them
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())["set-resources"]
    assert set(profile) <= all_rules, f"the profile names unknown rules {set(profile) - all_rules}"
    for rule in gpu_rules:
        assert profile.get(rule, {}).get("slurm_partition") == "gpu", f"{rule} asks for a GPU"
        assert profile[rule].get("gpu") == 1
    for rule in set(profile) - gpu_rules:
        assert profile[rule].get("slurm_partition", "cpu") != "gpu", f"{rule} needs no GPU"
