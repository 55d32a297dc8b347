"""Atomic training checkpoints that load with ``torch.load(weights_only=True)``.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts (no pickled
objects), so loading it cannot run code. RNG states are stored as uint8 tensors. A
checkpoint that cannot be loaded, or lacks what resuming needs, is an InputError naming
it and saying to delete it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..io.atomic import atomic_path
from ..io.errors import InputError
from ..io.torchfile import load_torch_file


def save_checkpoint(state: dict, path: str | os.PathLike) -> None:
    """Write ``state`` to ``path`` atomically (a crash mid-write keeps the previous file)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, map_location="cpu", required=()) -> dict | None:
    """The dict saved at ``path`` (tensors on ``map_location``), or None when there is none.

    Raises InputError naming ``path`` and saying to delete it when it cannot be loaded,
    lacks a key of ``required``, or holds a NaN/inf tensor.
    """
    path = Path(path)
    remedy = f"Delete it (or the folder {path.parent}) and rerun to train from scratch"
    state = load_torch_file(path, map_location, remedy)
    if state is None:
        return None
    missing = [k for k in required if k not in state]
    if missing:
        raise InputError(f"{path}: not a training checkpoint (missing {', '.join(missing)}). {remedy}.")
    bad = nonfinite_summary(state)
    if bad:
        raise InputError(f"{path}: holds NaN or infinite values ({bad}), so training cannot "
                         f"resume from it. {remedy}.")
    return state


def nonfinite_tensors(obj, prefix: str = "") -> list[str]:
    """Dotted names of the floating-point tensors in ``obj`` (nested dicts, lists, tuples)
    that hold a NaN or infinity; [] when all are finite. Draws no random numbers."""
    if isinstance(obj, torch.Tensor):
        return [prefix] if obj.is_floating_point() and not bool(torch.isfinite(obj).all()) else []
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return []
    return [name for k, v in items for name in nonfinite_tensors(v, f"{prefix}.{k}" if prefix else str(k))]


def nonfinite_summary(obj, shown: int = 3) -> str:
    """The first ``shown`` names of ``nonfinite_tensors(obj)`` and how many more; "" when all are finite."""
    names = nonfinite_tensors(obj)
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def rng_state() -> dict:
    """torch's global RNG states: ``cpu`` (uint8 tensor) and ``cuda`` (list, one per GPU)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(state: dict) -> None:
    """Restore what ``rng_state`` returned (CUDA states only when the GPU count matches)."""
    torch.set_rng_state(state["cpu"].cpu())
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
