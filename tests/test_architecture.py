"""The library's layers point one way (ARCHITECTURE.md): a module imports only from its own
subpackage or from a lower layer; io <- preprocess, simulate, models <- train <- evaluate <- report."""

import ast
import pathlib

import pytest

from conftest import REPO

PACKAGE = REPO / "workflow" / "scripts" / "opsembed"
LAYERS = {"io": 0, "preprocess": 1, "simulate": 1, "models": 1, "train": 2, "evaluate": 3, "report": 4,
          "cli": 5}
"""Rank of each subpackage (and of the top-level ``cli`` module); equal ranks may not import each other."""


def _module_name(path: pathlib.Path, root: pathlib.Path) -> list[str]:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imports(path: pathlib.Path, root: pathlib.Path):
    """(line, absolute dotted name) of every import in the file, lazy ones inside functions too."""
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            yield node.lineno, target


def layer_violations(root: pathlib.Path) -> list[str]:
    """``file:line imports target`` for every import of a higher layer or of a sibling of the
    same rank, in the package at ``root`` (a folder named like the package)."""
    top = root.name
    out = []
    for path in sorted(root.rglob("*.py")):
        name = _module_name(path, root)
        if len(name) < 2:
            continue                                    # the package's own __init__
        mine = name[1]
        for line, target in _imports(path, root):
            parts = target.split(".")
            if parts[0] != top or len(parts) < 2 or parts[1] == mine:
                continue                                # third-party, the package root, or its own layer
            if parts[1] not in LAYERS or mine not in LAYERS:
                out.append(f"{path.relative_to(root)}:{line} imports {target} (layer unknown: add it to LAYERS)")
            elif LAYERS[parts[1]] >= LAYERS[mine]:
                out.append(f"{path.relative_to(root)}:{line} imports {target}")
    return out


def test_no_module_imports_a_higher_layer():
    assert layer_violations(PACKAGE) == []


@pytest.mark.parametrize("source, bad", [
    ("from ..evaluate.ood import x\n", True),                 # train -> evaluate: upward
    ("def f():\n    from ..evaluate import ood\n", True),     # a lazy import counts too
    ("from ..models.grape import x\n", False),               # train -> models: downward
    ("import opsembed.report.html\n", True),                 # absolute spelling
    ("from ..simulate import design\n", False),
    ("from .loop import Trainer\n", False),                  # own layer
])
def test_the_check_catches_an_upward_import(tmp_path, source, bad):
    root = tmp_path / "opsembed"
    (root / "train").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "train" / "__init__.py").write_text("")
    (root / "train" / "mod.py").write_text(source)
    found = layer_violations(root)
    assert bool(found) == bad, found
    if bad:
        assert found[0].startswith("train/mod.py:")


def test_siblings_of_one_rank_do_not_import_each_other(tmp_path):
    root = tmp_path / "opsembed"
    (root / "models").mkdir(parents=True)
    (root / "models" / "m.py").write_text("from ..preprocess.qc import plot\n")
    assert layer_violations(root) == ["models/m.py:1 imports opsembed.preprocess.qc"]
