"""IMPA (Palma et al.): StarGAN v2 translating control cells into perturbed cells.

Differences from GRAPE (same Generator, Discriminator and StyleEncoder):
- the style comes from a perturbation embedding P (G, p), frozen (e.g. gene2vec vectors)
  or trainable, concatenated with Gaussian noise n (B, noise_dim), through a 3-layer MLP;
- the noise makes the translation stochastic, and a diversity loss rewards different
  outputs for different noise draws;
- translation always starts from control cells.
The gene embedding IMPA yields is the style encoder's code averaged over a gene's cells.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from .blocks import MLP
from .files import read_model_file
from .grape import LEGACY_KEYS, stargan_networks

MODEL_KEYS = ("image_size", "dim_in", "max_conv_dim", "style_dim", "embed_dim", "embed_init_std",
              "mapping_hidden", "noise_dim", *LEGACY_KEYS)
"""Config keys that shape the IMPA networks (stored with the weights)."""


class PerturbationStyle(nn.Module):
    """Gene ids (B,) + noise (B, noise_dim) -> styles (B, D) via MLP([P_z, n]).

    ``table`` (G, p) given: P is that table, frozen (a buffer). ``table`` None: P is a
    trainable N(0, init_std^2) embedding of ``embed_dim`` columns.
    """

    def __init__(self, n_genes: int, style_dim: int, hidden: int, noise_dim: int,
                 table: np.ndarray | None, embed_dim: int, init_std: float):
        super().__init__()
        self.noise_dim = noise_dim
        self.init_std = init_std
        if table is None:
            self.embedding = nn.Embedding(n_genes, embed_dim)
            self.register_buffer("frozen", None)
            dim = embed_dim
        else:
            table = np.asarray(table, dtype=np.float32)
            if table.shape[0] != n_genes:
                raise ValueError(f"perturbation table has {table.shape[0]} rows for {n_genes} genes")
            self.embedding = None
            self.register_buffer("frozen", torch.from_numpy(table))
            dim = table.shape[1]
        self.mapping = MLP(dim + noise_dim, style_dim, hidden, n_layers=3)

    def reset_embedding(self) -> None:
        """Draw a trainable P afresh from N(0, init_std^2) (no-op when frozen)."""
        if self.embedding is not None:
            nn.init.normal_(self.embedding.weight, std=self.init_std)

    def table(self) -> torch.Tensor:
        """P: (G, p)."""
        return self.frozen if self.embedding is None else self.embedding.weight

    def forward(self, z: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.mapping(torch.cat([self.table()[z], noise], dim=1))


def build_impa(n_genes: int, in_channels: int, cfg: dict, table: np.ndarray | None = None) -> nn.ModuleDict:
    """All IMPA networks, He-initialised: ``style`` (PerturbationStyle), ``generator``,
    ``style_encoder``, ``discriminator``. ``table`` (G, p) freezes the perturbation embedding."""
    style = PerturbationStyle(n_genes, cfg["style_dim"], cfg["mapping_hidden"], cfg["noise_dim"], table,
                              cfg["embed_dim"], cfg["embed_init_std"])
    return stargan_networks(style, n_genes, in_channels, cfg)


def load_impa(model_path: str | os.PathLike, device: torch.device) -> tuple[dict, nn.ModuleDict]:
    """The payload of an IMPA model file (``read_model_file``) and its networks (the frozen
    perturbation table, when it was frozen, from the file), in eval mode on ``device``."""
    payload = read_model_file(model_path, "impa", device)
    payload["config"] = {**LEGACY_KEYS, **payload["config"]}
    table = payload["state"].get("style.frozen")
    nets = build_impa(len(payload["genes"]), len(payload["channels"]), payload["config"],
                      None if table is None else table.cpu().numpy()).to(device)
    nets.load_state_dict(payload["state"])
    return payload, nets.eval()

