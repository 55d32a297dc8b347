"""Reading the model files that training writes (``torch.load(weights_only=True)``).

A model file is a plain dict: ``method`` (which trainer wrote it), ``config`` (the keys
that shape the networks), ``genes``, ``controls``, ``channels``, ``state`` (the weights)
and what its method adds. The loaders next to each model (``load_grape``, ``load_impa``,
``load_restyler``, ``Predictor``) build the networks from it for inference.
"""

from __future__ import annotations

import os

import torch

from ..io.errors import InputError
from ..io.torchfile import load_torch_file


def read_model_file(path: str | os.PathLike, methods: str | tuple[str, ...], device: torch.device) -> dict:
    """The payload of the model file ``path`` (tensors on ``device``), checked to hold a
    model of ``methods`` (one name or several). InputError naming the file when it is
    missing, unreadable or of another method."""
    methods = (methods,) if isinstance(methods, str) else tuple(methods)
    payload = load_torch_file(path, map_location=device)
    wanted = " or ".join(repr(m) for m in methods)
    if payload is None:
        raise InputError(f"{path}: model file not found; rerun the rule that trains the {wanted} model.")
    found = payload.get("method") if isinstance(payload, dict) else None
    if found not in methods:
        raise InputError(f"{path}: holds a {found!r} model, expected a {wanted} model; "
                         "rerun its training rule.")
    return payload
