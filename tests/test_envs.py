"""The conda env files cannot be solved here (no conda channels), so check them against
pyproject.toml: every env parses, every pin is exact and satisfies pyproject's range,
the envs agree with each other, and every rule names one of them."""

import pathlib
import re
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement

from conftest import REPO

ENVS = sorted((REPO / "envs").glob("*.yaml"))
# conda-forge names that differ from the PyPI distribution names in pyproject.toml
CONDA_TO_PYPI = {"pytorch": "torch", "pytables": "tables", "matplotlib-base": "matplotlib"}
NOT_IN_PYPROJECT = {"python", "pip"}


def _pyproject_requirements() -> dict[str, Requirement]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    reqs = [Requirement(r) for r in data["project"]["dependencies"]]
    return {r.name.lower(): r for r in reqs}


def _env_pins(path: pathlib.Path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    pins = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for pip_dep in dep["pip"]:
                name, version = pip_dep.split("==")
                pins[name.lower()] = version
            continue
        name, _, version = dep.partition("=")
        name = CONDA_TO_PYPI.get(name, name)
        if name not in NOT_IN_PYPROJECT:
            pins[name.lower()] = version
    return pins


def test_env_files_exist_for_each_kind_of_work():
    assert {p.stem for p in ENVS} == {"preprocess", "train", "evaluate", "report"}


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.stem)
def test_env_pins_are_exact_and_agree_with_pyproject(path):
    env = yaml.safe_load(path.read_text())
    assert env["channels"][0] == "conda-forge"
    reqs = _pyproject_requirements()
    for name, version in _env_pins(path).items():
        assert re.fullmatch(r"\d+(\.\d+)*", version), f"{path.name}: {name} is not pinned exactly"
        assert name in reqs, f"{path.name}: {name} is not a dependency in pyproject.toml"
        assert reqs[name].specifier.contains(version), (
            f"{path.name}: {name}={version} is outside pyproject.toml's {reqs[name].specifier}"
        )


def test_envs_agree_with_each_other():
    seen: dict[str, tuple[str, str]] = {}
    for path in ENVS:
        for name, version in _env_pins(path).items():
            if name in seen:
                assert seen[name][0] == version, f"{name}: {seen[name][1]} and {path.name} differ"
            seen[name] = (version, path.name)


def test_every_rule_names_an_existing_env():
    texts = [p.read_text() for p in (REPO / "rules").rglob("*.smk")]
    named = set()
    for text in texts:
        named |= set(re.findall(r'conda:\s*\n\s*"(?:\.\./)+envs/(\w+)\.yaml"', text))
    assert named and named <= {p.stem for p in ENVS}
