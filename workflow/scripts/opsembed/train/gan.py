"""Pieces shared by the adversarial trainers (GRAPE, IMPA, StarGAN over OEs, IST): the
non-saturating losses with R1, the optimiser step, the sample grid, per-gene averages."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..io.errors import InputError
from .data import CellImages, step_generator
from .device import autocast
from .monitor import sample_grid

GENERATOR_SIDE = ["style", "generator", "style_encoder"]
"""Networks updated by the generator step (and averaged by the EMA)."""


def r1_penalty(d_real: torch.Tensor, x_real: torch.Tensor) -> torch.Tensor:
    """0.5 * batch mean of ||d sum(D(x)) / dx||^2, for logits ``d_real`` (B,) of reals
    ``x_real`` (B, C, S, S) that require grad; the graph is kept for backward."""
    (grad,) = torch.autograd.grad(d_real.sum(), x_real, create_graph=True)
    return 0.5 * grad.float().pow(2).flatten(1).sum(1).mean()


def discriminator_loss(critic: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], real: torch.Tensor,
                       real_labels: torch.Tensor, fake: torch.Tensor, fake_labels: torch.Tensor,
                       r1_gamma: float) -> dict[str, torch.Tensor]:
    """The non-saturating D loss with R1 on reals, for a conditional ``critic(x, labels)``
    returning logits (B,): reals (B, C, S, S) through the heads ``real_labels`` (B,), fakes
    (no gradient to their maker) through the heads ``fake_labels`` (B,).

    Returns ``d_real`` = mean softplus(-D(real)), ``d_fake`` = mean softplus(D(fake)),
    ``r1`` (0.5 E ||grad_x D(real)||^2, 0 when r1_gamma is 0) and ``d_total`` =
    d_real + d_fake + r1_gamma * r1 (float32 scalars).
    """
    x_real = real.detach().requires_grad_(r1_gamma > 0)
    out_real = critic(x_real, real_labels)
    d_real = F.softplus(-out_real.float()).mean()
    d_fake = F.softplus(critic(fake.detach(), fake_labels).float()).mean()
    r1 = r1_penalty(out_real, x_real) if r1_gamma > 0 else torch.zeros((), device=real.device)
    return {"d_real": d_real, "d_fake": d_fake, "r1": r1, "d_total": d_real + d_fake + r1_gamma * r1}


def translate(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Each image of x (B, C, S, S) shifted by its own whole-pixel offsets (dy, dx), each drawn
    uniformly from [-max_shift, max_shift] with ``gen``; edges are filled by reflection.
    Differentiable in x; x itself when max_shift is 0."""
    if max_shift <= 0:
        return x
    b, _, side, _ = x.shape
    padded = F.pad(x, (max_shift,) * 4, mode="reflect")                     # (B, C, S + 2t, S + 2t)
    start = torch.randint(0, 2 * max_shift + 1, (b, 2), generator=gen, device=gen.device).to(x.device)
    grid = torch.arange(side, device=x.device)
    rows = (start[:, 0, None] + grid)[:, None, :, None].expand(-1, x.shape[1], -1, padded.shape[-1])
    x = padded.gather(2, rows)                                              # (B, C, S, S + 2t)
    cols = (start[:, 1, None] + grid)[:, None, None, :].expand(-1, x.shape[1], side, -1)
    return x.gather(3, cols)                                                # (B, C, S, S)


def shifted_critic(critic: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], max_shift: int,
                   gen: torch.Generator) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``critic`` that sees its images through :func:`translate` (new offsets per call): the
    discriminator's translation augmentation, applied alike to reals and fakes; ``critic``
    itself when max_shift is 0."""
    if max_shift <= 0:
        return critic
    return lambda x, labels: critic(translate(x, max_shift, gen), labels)


def step_networks(trainer, step: int) -> dict:
    """``trainer.run`` for one step: the discriminator wrapped by :func:`shifted_critic` with the
    config's ``d_translate`` and offsets drawn from (trainer seed, stream 102, step); ``trainer.run``
    itself (no generator made) when d_translate is 0."""
    if trainer.cfg["d_translate"] <= 0:
        return trainer.run
    critic = shifted_critic(trainer.run["discriminator"], trainer.cfg["d_translate"],
                            step_generator(trainer.seed, 102, step, trainer.device))
    return {**trainer.run, "discriminator": critic}


def generator_adv_loss(logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating G loss: mean softplus(-D(fake)) of the critic's logits (B,) on fakes."""
    return F.softplus(-logits.float()).mean()


def gan_step(trainer, d_losses: Callable[[], dict], g_losses: Callable[[], dict]) -> torch.Tensor:
    """One StarGAN v2-style step of ``trainer`` (a ``Trainer`` with a ``discriminator`` and
    the GENERATOR_SIDE networks): D's losses ``d_losses()`` (key ``d_total`` optimised), then,
    with D frozen, the G side's ``g_losses()`` (key ``g_total``), each under the configured
    autocast. Returns the losses named ``trainer.loss_names`` (len(loss_names),) float32."""
    device, bf16 = trainer.device, trainer.cfg["bf16"]
    with autocast(device, bf16):
        d = d_losses()
    update(trainer.optimizers["discriminator"], d["d_total"])
    trainer.nets["discriminator"].requires_grad_(False)
    with autocast(device, bf16):
        g = g_losses()
    update([trainer.optimizers[k] for k in GENERATOR_SIDE], g["g_total"])
    trainer.nets["discriminator"].requires_grad_(True)
    losses = {**d, **g}
    return torch.stack([losses[n].detach().float() for n in trainer.loss_names])


def warmup_step(trainer, x: torch.Tensor, slot: str = "cycle") -> torch.Tensor:
    """One reconstruction step of ``trainer``'s generator and style encoder on images x
    (B, C, S, S): L1 |G(x, E(x)) - x| (mean), no adversary. Returns ``trainer.loss_names``
    (float32) with that loss in ``slot`` and in ``g_total``, 0 in every other place."""
    with autocast(trainer.device, trainer.cfg["bf16"]):
        run = trainer.run
        loss = (run["generator"](x, run["style_encoder"](x)) - x).float().abs().mean()
    update([trainer.optimizers["generator"], trainer.optimizers["style_encoder"]], loss)
    value = loss.detach().float()
    return torch.stack([value if n in (slot, "g_total") else torch.zeros((), device=value.device)
                        for n in trainer.loss_names])


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


@torch.no_grad()
def styled_columns(generator: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor,
                   styles: torch.Tensor) -> torch.Tensor:
    """``generator(x, s)`` for every row s of ``styles`` (k, D), each broadcast over the batch
    x (B, C, S, S): (B, k, C, S, S), column j restyled with styles[j]."""
    return torch.stack([generator(x, s.expand(len(x), -1)) for s in styles], dim=1)


def mosaic(x: torch.Tensor, out: torch.Tensor, labels: list[str]) -> tuple[np.ndarray, list[str]]:
    """(uint8 RGB sample grid of inputs x (B, C, S, S) and their versions out (B, k, C, S, S),
    the column labels ["input"] + ``labels``) (see ``monitor.sample_grid``)."""
    return sample_grid(x.float().cpu().numpy(), out.float().cpu().numpy()), ["input"] + list(labels)


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
