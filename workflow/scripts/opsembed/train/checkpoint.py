"""Atomic training checkpoints that load with ``torch.load(weights_only=True)``.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts (no pickled
objects), so loading it cannot run code. RNG states are stored as uint8 tensors.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..io.atomic import atomic_path


def save_checkpoint(state: dict, path: str | os.PathLike) -> None:
    """Write ``state`` to ``path`` atomically (a crash mid-write keeps the previous file)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict | None:
    """The dict saved at ``path`` (tensors on ``map_location``), or None when there is none."""
    if not Path(path).exists():
        return None
    return torch.load(path, map_location=map_location, weights_only=True)


def rng_state() -> dict:
    """torch's global RNG states: ``cpu`` (uint8 tensor) and ``cuda`` (list, one per GPU)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(state: dict) -> None:
    """Restore what ``rng_state`` returned (CUDA states only when the GPU count matches)."""
    torch.set_rng_state(state["cpu"].cpu())
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
