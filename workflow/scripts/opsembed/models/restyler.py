"""Interventional generators for inference: a trained IST or StarGAN-over-OEs model file as
a function re-imaging cells into other observational environments (OEs)."""

from __future__ import annotations

import os

import torch

from ..io.errors import InputError
from .files import read_model_file
from .grape import LEGACY_KEYS, build_grape
from .ist import build_ist, restyle


class Restyler:
    """A trained interventional generator: ``(content (B, C, S, S), style cells (B, C, S, S),
    style OE ids (B,)) -> re-imaged content (B, C, S, S)``.

    IST uses the style images (v from E); StarGAN uses only the OE ids (F(M_oe)).
    Attributes: ``kind`` ("ist" or "stargan"), ``image_size``, ``oes``, ``train_oes``.
    """

    def __init__(self, payload: dict, device: torch.device):
        self.kind, self.oes, self.train_oes = payload["method"], payload["oes"], payload["train_oes"]
        self.image_size = int(payload["config"]["image_size"])
        n_ch, n_oes = len(payload["channels"]), len(payload["oes"])
        if self.kind == "ist":
            self.nets = build_ist(n_ch, len(payload["genes"]), n_oes, payload["config"])
        else:
            self.nets = build_grape(n_oes, n_ch, {**LEGACY_KEYS, **payload["config"]})
        self.nets.load_state_dict(payload["state"])
        self.nets.to(device).eval().requires_grad_(False)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, style: torch.Tensor, style_oe: torch.Tensor) -> torch.Tensor:
        if self.kind == "ist":
            return restyle(self.nets["encoder"], self.nets["generator"], x, style)
        return self.nets["generator"](x, self.nets["style"](style_oe))


def load_restyler(path: str | os.PathLike, device: torch.device, fold: str | None = None) -> Restyler:
    """The IST or StarGAN model file at ``path`` as a Restyler; checks its fold when given."""
    payload = read_model_file(path, ("ist", "stargan"), device)
    if fold is not None and payload["fold"] != fold:
        raise InputError(f"{path}: trained for fold {payload['fold']!r}, not {fold!r}.")
    return Restyler(payload, device)
