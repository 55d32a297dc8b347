"""Training faults (issue 12, cases 14-16): NaN weights never reach a checkpoint or model file,
``iterations`` below a checkpoint's step is refused, corrupt or tampered torch files are refused
with a message naming the file and saying to delete it."""

import ast
import os
import pathlib

import pandas as pd
import pytest
import torch

from gan_cells import TINY, cells_h5  # noqa: F401  (fixture)
from opsembed.io.errors import InputError
from opsembed.io.torchfile import load_torch_file
from opsembed.train.checkpoint import load_checkpoint, nonfinite_tensors
from opsembed.train.data import CellImages
from opsembed.train.grape_trainer import GrapeTrainer, grape_config, train_grape
from opsembed.train.loop import run_training
from opsembed.train.monitor import NonFiniteLossError

CPU = torch.device("cpu")


def _train(tmp, cells, **cfg):
    """Train GRAPE into folder ``tmp``; returns the loss table."""
    train_grape(cells, {**TINY, **cfg}, 0, tmp / "model.pt", tmp / "losses.tsv", tmp / "samples.png",
                tmp / "ckpt")
    return pd.read_csv(tmp / "losses.tsv", sep="\t")


def _run(trainer, tmp):
    run_training(trainer, tmp / "ckpt", tmp / "model.pt", tmp / "losses.tsv", tmp / "samples.png")


def test_nonfinite_tensors_names_the_bad_entries():
    state = {"nets": {"a": torch.ones(2), "b": torch.tensor([1.0, float("inf")])},
             "opt": [{"exp_avg": torch.tensor([float("nan")])}], "rng": torch.zeros(3, dtype=torch.uint8),
             "step": 4, "name": "x"}
    assert nonfinite_tensors(state) == ["nets.b", "opt.0.exp_avg"]
    assert nonfinite_tensors({"a": torch.ones(2), "b": [1.0, "s"]}) == []


# --- case 14: the step's losses are finite but its update is not -------------------------------

class _NaNUpdateAt(GrapeTrainer):
    """Returns the (finite) losses of 0-based step ``at`` but leaves G's weights NaN after it."""

    at = 3

    def train_step(self, step, batch):
        losses = super().train_step(step, batch)
        if step == self.at:
            with torch.no_grad():
                next(self.nets["generator"].parameters()).fill_(float("nan"))
        return losses


def test_nan_update_is_not_checkpointed(tmp_path, cells_h5, one_thread):
    cfg = grape_config({**TINY, "iterations": 8, "checkpoint_every": 2, "log_every": 2})
    with pytest.raises(NonFiniteLossError) as err:
        _run(_NaNUpdateAt(CellImages(cells_h5, 16, CPU, "auto", 0.5), cfg, 0), tmp_path)
    message = str(err.value)
    assert "step 4" in message and "generator." in message                     # what went bad, when
    assert "checkpoint (step 2)" in message and str(tmp_path / "ckpt") in message
    assert "same settings" in message and "delete" in message.lower()          # the two ways on
    kept = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert kept["step"] == 2 and nonfinite_tensors(kept) == []                 # last good kept
    assert not (tmp_path / "model.pt").exists()
    with pytest.raises(InputError, match=rf"lr differ.*delete the checkpoint folder {tmp_path / 'ckpt'} "):
        _train(tmp_path, cells_h5, iterations=8, checkpoint_every=2, log_every=2, lr=1e-5)


class _NaNExport(GrapeTrainer):
    """Finite training, but exports NaN weights (as a NaN EMA shadow would)."""

    def model_payload(self, step):
        payload = super().model_payload(step)
        next(iter(payload["state"].values())).fill_(float("nan"))
        return payload


def test_model_file_is_never_written_with_nonfinite_weights(tmp_path, cells_h5, one_thread):
    cfg = grape_config({**TINY, "iterations": 2, "checkpoint_every": 2, "log_every": 2})
    with pytest.raises(NonFiniteLossError, match="model"):
        _run(_NaNExport(CellImages(cells_h5, 16, CPU, "auto", 0.5), cfg, 0), tmp_path)
    assert not (tmp_path / "model.pt").exists()


def test_nan_checkpoint_from_before_is_refused_on_resume(tmp_path, cells_h5, one_thread):
    _train(tmp_path, cells_h5, iterations=2, checkpoint_every=2)
    ckpt = tmp_path / "ckpt" / "last.pt"
    state = torch.load(ckpt, weights_only=True)
    name = next(k for k in state["nets"] if k.startswith("generator."))
    state["nets"][name].fill_(float("nan"))
    torch.save(state, ckpt)
    bad = rf"last\.pt: holds NaN or infinite values \(nets\.{name}\).*Delete it"
    with pytest.raises(InputError, match=bad):
        _train(tmp_path, cells_h5, iterations=4, checkpoint_every=2)


# --- case 15: iterations below the checkpoint's step ---------------------------------------------

def test_iterations_below_checkpoint_step_is_refused(tmp_path, cells_h5, one_thread):
    _train(tmp_path, cells_h5, iterations=4, checkpoint_every=2)
    before = (tmp_path / "model.pt").read_bytes()
    with pytest.raises(InputError) as err:
        _train(tmp_path, cells_h5, iterations=2, checkpoint_every=2)
    message = str(err.value)
    assert str(tmp_path / "ckpt" / "last.pt") in message and "step 4" in message
    assert "grape's `iterations`" in message and "2 steps" in message and "delete" in message.lower()
    assert (tmp_path / "model.pt").read_bytes() == before                      # nothing rewritten


def test_iterations_equal_to_checkpoint_step_rewrites_the_outputs(tmp_path, cells_h5, one_thread):
    first = _train(tmp_path, cells_h5, iterations=4, checkpoint_every=2)
    model = torch.load(tmp_path / "model.pt", weights_only=True)
    for name in ("model.pt", "losses.tsv", "samples.png"):
        (tmp_path / name).unlink()
    again = _train(tmp_path, cells_h5, iterations=4, checkpoint_every=2)
    pd.testing.assert_frame_equal(first, again, check_exact=True)
    rewritten = torch.load(tmp_path / "model.pt", weights_only=True)
    assert rewritten["step"] == 4
    assert all(torch.equal(rewritten["state"][k], v) for k, v in model["state"].items())


# --- case 16: corrupt or tampered torch files ----------------------------------------------------

def _corrupt(kind, good: bytes) -> bytes:
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "random":
        return os.urandom(2000)
    if kind == "empty":
        return b""
    raise ValueError(kind)


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "good.pt"
    torch.save({"step": 1, "w": torch.ones(100)}, path)
    return path.read_bytes()


def _tampered(path):
    """A torch file whose pickle names a global the weights-only loader refuses."""
    torch.save({"step": 1, "hook": os.system}, path)


@pytest.mark.parametrize("kind", ["truncated", "random", "empty", "tampered"])
def test_corrupt_checkpoint_is_refused_with_its_path(tmp_path, cells_h5, good_file, kind, one_thread):
    ckpt = tmp_path / "ckpt" / "last.pt"
    ckpt.parent.mkdir()
    if kind == "tampered":
        _tampered(ckpt)
    else:
        ckpt.write_bytes(_corrupt(kind, good_file))
    with pytest.raises(InputError) as err:
        _train(tmp_path, cells_h5, iterations=2)
    message = str(err.value)
    assert message.startswith(f"{ckpt}: cannot be loaded")
    assert "Delete it" in message and str(ckpt.parent) in message
    assert "weights_only" not in message and "False" not in message
    if kind == "tampered":
        assert "system" in message                                              # names the refused object
    assert not (tmp_path / "model.pt").exists()


def test_torch_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "last.pt"
    torch.save(torch.ones(3), path)
    with pytest.raises(InputError, match=r"last\.pt: holds a Tensor, not the dict.*Delete it"):
        load_checkpoint(path, required=("step", "nets"))
    torch.save({"step": 3}, path)
    with pytest.raises(InputError, match="missing nets"):
        load_checkpoint(path, required=("step", "nets"))


@pytest.mark.parametrize("kind", ["truncated", "random", "tampered"])
def test_corrupt_model_file_is_refused_with_its_path(tmp_path, good_file, kind):
    """Every model-file reader goes through load_torch_file (the library's one torch.load)."""
    model = tmp_path / "model.pt"
    if kind == "tampered":
        _tampered(model)
    else:
        model.write_bytes(_corrupt(kind, good_file))
    with pytest.raises(InputError) as err:
        load_torch_file(model, CPU)
    message = str(err.value)
    assert message.startswith(f"{model}: cannot be loaded")
    assert message.endswith("Delete it and rerun the training rule that writes it.")
    assert "weights_only" not in message and "False" not in message


def _calls_torch_load(source: str) -> bool:
    return any(isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
               and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"
               for node in ast.walk(ast.parse(source)))


def test_only_the_torch_file_reader_calls_torch_load():
    assert _calls_torch_load("import torch\nx = torch.load(p, weights_only=True)")
    assert not _calls_torch_load('"""torch.load(weights_only=True)"""\n# torch.load(p)')
    library = pathlib.Path(__file__).resolve().parents[1] / "workflow" / "scripts" / "opsembed"
    callers = sorted(p.relative_to(library).as_posix() for p in library.rglob("*.py")
                     if _calls_torch_load(p.read_text()))
    assert callers == ["io/torchfile.py"]
