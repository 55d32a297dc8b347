"""Where and how tensors are computed: device choice, bf16 autocast, memory layout."""

from __future__ import annotations

import contextlib

import torch

from ..io.errors import InputError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cpu``/``cuda``/``cuda:N`` as given.

    Raises InputError when CUDA is asked for but absent.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r} was requested but torch sees no CUDA GPU; "
                         "set the method's `device: auto` or `cpu`.")
    return device


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on CUDA when ``bf16``; a no-op context on CPU."""
    if bf16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(channels_last: bool) -> torch.memory_format:
    """channels_last when asked (faster convs: tensor cores on CUDA, oneDNN on CPU), else contiguous."""
    return torch.channels_last if channels_last else torch.contiguous_format


def adam(params, lr: float, betas, weight_decay: float, device: torch.device) -> torch.optim.Adam:
    """Adam (L2 weight decay, as in StarGAN v2), the fused CUDA kernel on GPU."""
    return torch.optim.Adam(params, lr=float(lr), betas=tuple(float(b) for b in betas),
                            weight_decay=float(weight_decay),
                            fused=device.type == "cuda")
