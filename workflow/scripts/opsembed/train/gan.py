"""Pieces shared by the StarGAN v2-style trainers (GRAPE, IMPA)."""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..io.errors import InputError
from .checkpoint import load_checkpoint
from .data import CellImages

GENERATOR_SIDE = ["style", "generator", "style_encoder"]
"""Networks updated by the generator step (and averaged by the EMA)."""


def r1_penalty(d_real: torch.Tensor, x_real: torch.Tensor) -> torch.Tensor:
    """0.5 * batch mean of ||d sum(D(x)) / dx||^2, for logits ``d_real`` (B,) of reals
    ``x_real`` (B, C, S, S) that require grad; the graph is kept for backward."""
    (grad,) = torch.autograd.grad(d_real.sum(), x_real, create_graph=True)
    return 0.5 * grad.float().pow(2).flatten(1).sum(1).mean()


def update(optimizers, loss: torch.Tensor) -> None:
    """Zero the optimisers' gradients, back-propagate ``loss``, step each optimiser."""
    optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    loss.backward()
    for opt in optimizers:
        opt.step()


def compiled_nets(nets: nn.ModuleDict, compile_: bool) -> dict:
    """Callables for the nets; ``torch.compile``d when asked, except D (R1 needs double backward)."""
    if not compile_:
        return dict(nets.items())
    return {k: (m if k == "discriminator" else torch.compile(m)) for k, m in nets.items()}


def sample_choice(images: CellImages, cfg: dict, seed: int) -> tuple[np.ndarray, list[int]]:
    """Fixed cells (controls when there are any) and target gene ids for the sample grid.

    ``n_sample_cells`` cells drawn with ``seed``; genes from ``sample_genes`` or else
    ``n_sample_genes`` non-control genes spread evenly over the vocabulary.
    """
    rng = np.random.default_rng(seed)
    control_id = images.genes.index(images.controls) if images.controls in images.genes else -1
    pool = images.cells_of(control_id) if control_id >= 0 else np.arange(images.n)
    pool = pool if len(pool) else np.arange(images.n)
    cells = np.sort(rng.choice(pool, size=min(cfg["n_sample_cells"], len(pool)), replace=False))
    if cfg["sample_genes"]:
        missing = [g for g in cfg["sample_genes"] if g not in images.genes]
        if missing:
            raise InputError(f"sample_genes {missing} are not in the cells file's gene list.")
        return cells, [images.genes.index(g) for g in cfg["sample_genes"]]
    others = images.genes_without_controls()
    k = min(cfg["n_sample_genes"], len(others))
    picks = np.linspace(0, len(others) - 1, k).round().astype(int) if k else []
    return cells, [others[i] for i in picks]


def load_model(path: str | os.PathLike, method: str, device: torch.device) -> dict:
    """A model file written by training (``weights_only`` load), checked to be ``method``."""
    payload = load_checkpoint(path, map_location=device)
    if payload is None:
        raise InputError(f"{path}: model file not found; rerun the {method} training rule.")
    if payload.get("method") != method:
        raise InputError(f"{path}: holds a {payload.get('method')!r} model, expected {method!r}.")
    return payload


def cells_per_gene(gene_col: np.ndarray, genes: list[str], controls: str, n: int,
                   seed: int) -> dict[int, np.ndarray]:
    """Up to ``n`` random rows (sorted) per non-control gene id; genes without cells are absent.

    ``gene_col`` is the obs ``gene`` column (str, one per cell); ``seed`` fixes the draw.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for g, name in enumerate(genes):
        rows = np.flatnonzero(gene_col == name)
        if name != controls and len(rows):
            out[g] = np.sort(rng.choice(rows, size=min(n, len(rows)), replace=False))
    return out


@torch.no_grad()
def mean_per_gene(code: Callable[[int, torch.Tensor], torch.Tensor],
                  images_of: Callable[[np.ndarray], torch.Tensor], cells: dict[int, np.ndarray],
                  batch_size: int = 256) -> dict[int, np.ndarray]:
    """For each gene id g of ``cells``: mean over its rows of ``code(g, crops)`` (n, D) -> float64 (D,).

    ``images_of(rows)`` returns the crops (n, C, S, S) of those rows on the model's device.
    """
    out = {}
    for g, rows in cells.items():
        total = 0.0
        for start in range(0, len(rows), batch_size):
            total = total + code(g, images_of(rows[start:start + batch_size])).double().sum(0)
        out[g] = (total / len(rows)).cpu().numpy()
    return out
