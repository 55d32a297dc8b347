"""The one reader of torch files (checkpoints and model files): ``torch.load(weights_only=True)``.

A weights-only load runs no code from the file. A file that is truncated, corrupt, not a
torch file, or refused by the weights-only unpickler (it names a Python object that such
a file may not hold) gives an InputError naming the file and saying what to do.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import torch

from .errors import InputError

MODEL_REMEDY = "Delete it and rerun the training rule that writes it"
"""What to do about an unreadable model file (training rewrites it, resuming from its checkpoint)."""


def load_torch_file(path: str | os.PathLike, map_location="cpu", remedy: str = MODEL_REMEDY) -> dict | None:
    """The dict saved at ``path`` (tensors on ``map_location``), or None when there is no file.

    Raises InputError naming ``path``, why it cannot be loaded (or that it holds no dict, as
    every opsembed torch file does), and ``remedy`` (one sentence).
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except MemoryError:
        raise
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror or e}).") from None
    except Exception as e:  # torch raises RuntimeError, UnpicklingError, EOFError, KeyError, ... here
        raise InputError(f"{path}: cannot be loaded: {_reason(e)}. {remedy}.") from None
    if not isinstance(obj, dict):
        raise InputError(f"{path}: holds a {type(obj).__name__}, not the dict an opsembed file holds. "
                         f"{remedy}.")
    return obj


def _reason(error: Exception) -> str:
    """A short cause for a failed weights-only load (never torch's advice to load unsafely)."""
    if isinstance(error, pickle.UnpicklingError):
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        if found:
            return (f"it refers to the Python object {found.group(1)}, which a weights file may not "
                    "hold (it was tampered with or not written by opsembed), so it was not loaded")
        return "it is corrupt or not a torch weights file"
    if isinstance(error, (EOFError, RuntimeError)):
        return "it is truncated or corrupt (an interrupted copy or a full disk)"
    return "it is corrupt or not a torch weights file"
