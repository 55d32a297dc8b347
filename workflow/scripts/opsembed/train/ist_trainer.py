"""Interventional generators of one OOD fold: IST, and StarGAN v2 over OEs (GRAPE's backbone).

IST (Pernice et al. 2023), trained on the fold's training cells only:

- steps 0 .. pretrain_iterations - 1: E learns the multi-task objective, cross-entropy of
  its gene head on gene-balanced batches plus cross-entropy of its OE head on
  OE-balanced batches (randomly flipped and rotated when ``augment``);
- at step pretrain_iterations E is frozen and D's trunk is copied from E's;
- later steps: content images x (balanced over genes) are paired at random with style
  images (balanced over OEs); D learns the non-saturating loss with R1; G learns the
  weighted sum of adversarial, Gram style, cycle, content and class-matching losses
  (see ``generator_losses``).

StarGAN v2 over OEs: GRAPE's networks and losses (``opsembed.train.grape_trainer``) with
OEs in place of genes: G(x, F(M_oe)) re-images x as if recorded in OE oe.

Both run in ``opsembed.train.loop.run_training`` (resumable checkpoints, loss TSV,
progress bar, NaN stop) and write a model file that ``load_restyler`` turns into a
function re-imaging cells into other OEs.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..io.errors import InputError
from ..models.grape import MODEL_KEYS as GRAPE_MODEL_KEYS
from ..models.grape import build_grape
from ..models.ist import MODEL_KEYS, build_ist, check_image_size, gram, init_critic_from_encoder, restyle, style_code
from .checkpoint import load_checkpoint
from .data import dihedral, step_generator
from .device import adam, autocast, resolve_device
from .ema import ParamEMA
from .fold_data import FOLD_RUNTIME_DEFAULTS, FoldData, load_fold
from .gan import r1_penalty, update
from .grape_trainer import DEFAULTS as GRAPE_DEFAULTS
from .grape_trainer import GrapeTrainer
from .loop import GanTrainer, merge_config, run_training
from .monitor import sample_grid

log = logging.getLogger(__name__)

IST_DEFAULTS = {
    "image_size": 32,           # training side length (crops are area-resized); multiple of 8
    "width": 8,                 # ResNet-18 base width w (64 in the paper's ResNet-18)
    "pretrain_iterations": 150, # E's multi-task pretraining steps (counted in iterations)
    "iterations": 250,          # total steps: pretraining, then style-transfer training
    "batch_size": 32,
    "encoder_lr": 1.0e-3,       # E (Adam, betas 0.9, 0.999)
    "augment": True,            # random flips / 90-degree rotations while pretraining E
    "lr": 5.0e-4,               # G and D (Adam, betas below)
    "betas": [0.0, 0.99],
    "weight_decay": 1.0e-4,
    "lambda_adv": 1.0,
    "lambda_style": 1.0,
    "lambda_cycle": 1.0,
    "lambda_content": 1.0,
    "lambda_class": 1.0,
    "r1_gamma": 1.0,
    "checkpoint_every": 250,
    "log_every": 25,
    "sample_every": 0,
    "n_sample_cells": 6,
    "n_sample_oes": 6,
    **FOLD_RUNTIME_DEFAULTS,
}
"""Every key of the ``ood.ist`` config block, with demo defaults."""

IST_LOSSES = ["gene_ce", "oe_ce", "d_real", "d_fake", "r1", "adv", "style", "cycle", "content", "class",
              "d_total", "g_total", "oe_match"]
"""Loss table columns; a phase's losses are 0 in the other phase. ``oe_match`` is a
diagnostic, not a loss: the share of restyled images that E's OE head assigns to the
style image's OE (near 1 when the transfer works)."""

STARGAN_DEFAULTS = {**GRAPE_DEFAULTS, "embed_dim": 16, "mapping_hidden": 32, "iterations": 150, "lr": 3.0e-4,
                    "ema": {"mode": "none", "every": 2500, "gamma": 0.5, "beta": 0.999},
                    "checkpoint_every": 250, "log_every": 25, "num_workers": 2}
"""Keys of the ``ood.stargan`` block: GRAPE's keys (``methods.grape``), demo defaults here."""
STARGAN_DEFAULTS.pop("enabled")


def ist_config(cfg: dict | None) -> dict:
    """IST_DEFAULTS updated by ``cfg``; InputError on unknown keys."""
    out = merge_config(IST_DEFAULTS, cfg, "ood.ist")
    check_image_size(out["image_size"])
    if not 0 <= out["pretrain_iterations"] < out["iterations"]:
        raise ValueError(f"ood.ist: pretrain_iterations ({out['pretrain_iterations']}) must be below "
                         f"iterations ({out['iterations']}), the total step count")
    return out


def stargan_config(cfg: dict | None) -> dict:
    """STARGAN_DEFAULTS updated by ``cfg``; InputError on unknown keys."""
    return merge_config(STARGAN_DEFAULTS, cfg, "ood.stargan")


def pretrain_loss(nets: nn.ModuleDict, x: torch.Tensor, gene: torch.Tensor, x_oe: torch.Tensor,
                  oe: torch.Tensor) -> dict[str, torch.Tensor]:
    """E's multi-task loss: CE of the gene head on (x, gene) + CE of the OE head on (x_oe, oe).

    x, x_oe (B, C, S, S); gene, oe (B,) int64. Returns ``gene_ce``, ``oe_ce``, ``total``.
    """
    enc = nets["encoder"]
    gene_ce = F.cross_entropy(enc(x)[0].float(), gene)
    oe_ce = F.cross_entropy(enc(x_oe)[1].float(), oe)
    return {"gene_ce": gene_ce, "oe_ce": oe_ce, "total": gene_ce + oe_ce}


def transfer(nets: nn.ModuleDict, x: torch.Tensor, style: torch.Tensor) -> tuple:
    """(E's maps of x, E's maps of style, x_hat = G(E(x), v(style))) with the graph kept,
    shared by the D step (which detaches x_hat) and the G step."""
    maps_x, maps_s = nets["encoder"].maps(x), nets["encoder"].maps(style)
    return maps_x, maps_s, nets["generator"](maps_x, style_code(maps_s))


def critic_losses(nets: nn.ModuleDict, style: torch.Tensor, style_oe: torch.Tensor, fake: torch.Tensor,
                  r1_gamma: float) -> dict[str, torch.Tensor]:
    """D's losses: real style images (B, C, S, S) through their OE heads ``style_oe`` (B,), the
    fakes restyled to those OEs (detached here) through the same heads, R1 on reals.

    Returns ``d_real``, ``d_fake``, ``r1`` and ``d_total`` = d_real + d_fake + r1_gamma * r1.
    """
    x_real = style.detach().requires_grad_(r1_gamma > 0)
    out_real = nets["critic"](x_real, style_oe)
    d_real = F.softplus(-out_real.float()).mean()
    d_fake = F.softplus(nets["critic"](fake.detach(), style_oe).float()).mean()
    r1 = r1_penalty(out_real, x_real) if r1_gamma > 0 else torch.zeros((), device=style.device)
    return {"d_real": d_real, "d_fake": d_fake, "r1": r1, "d_total": d_real + d_fake + r1_gamma * r1}


def generator_losses(nets: nn.ModuleDict, x: torch.Tensor, style_oe: torch.Tensor, transferred: tuple,
                     lam: dict) -> dict[str, torch.Tensor]:
    """G's losses for content x (B, C, S, S) restyled into style images of OEs ``style_oe`` (B,);
    ``transferred`` = ``transfer(nets, x, style)`` = (maps of x, maps of style, x_hat).

    - ``adv``: mean softplus(-D_{style_oe}(x_hat)) (non-saturating);
    - ``style``: sum over E's four maps of the mean squared difference between the Gram
      matrices of x_hat and of the style image;
    - ``cycle``: mean |x - G(E(x_hat), v(x))|;
    - ``content``: mean |x_hat - x| (pixels) + mean |IN(E_4(x_hat)) - IN(E_4(x))| on E's
      deepest map, instance-normalised (its statistics are style, its pattern content);
    - ``class``: cross-entropy of E's gene head on x_hat against the softmax of E's gene
      head on x (soft labels, detached);
    - ``g_total``: the sum weighted by lam["lambda_adv"], ["lambda_style"], ...;
    - ``oe_match`` (diagnostic, no gradient): share of x_hat that E's OE head assigns to
      ``style_oe``.
    Gradients reach only G's parameters when E and D have requires_grad False.
    """
    enc, gen = nets["encoder"], nets["generator"]
    maps_x, maps_s, fake = transferred
    maps_f = enc.maps(fake)
    adv = F.softplus(-nets["critic"](fake, style_oe).float()).mean()
    style_l = sum(((gram(a) - gram(b)) ** 2).mean() for a, b in zip(maps_f, maps_s))
    cycle = (gen(maps_f, style_code(maps_x)) - x).float().abs().mean()
    content = (fake - x).float().abs().mean() + \
        (F.instance_norm(maps_f[-1].float()) - F.instance_norm(maps_x[-1].float())).abs().mean()
    pooled_f = enc.trunk.pooled(maps_f)
    logits_f = enc.gene_head(pooled_f).float()
    target = enc.gene_head(enc.trunk.pooled(maps_x)).float().softmax(dim=1).detach()
    cls = -(target * logits_f.log_softmax(dim=1)).sum(dim=1).mean()
    losses = {"adv": adv, "style": style_l, "cycle": cycle, "content": content, "class": cls}
    losses["g_total"] = sum(lam[f"lambda_{k}"] * v for k, v in losses.items())
    with torch.no_grad():
        losses["oe_match"] = (enc.oe_head(pooled_f).argmax(dim=1) == style_oe).float().mean()
    return losses


class ISTTrainer(GanTrainer):
    """IST on one fold's training cells; ``cfg`` a full config (see ist_config)."""

    name = "ist"
    loss_names = IST_LOSSES
    model_keys = MODEL_KEYS

    def __init__(self, data: FoldData, cfg: dict, seed: int):
        self.data, self.images, self.cfg, self.seed = data, data.images, cfg, int(seed)
        self.device = self.images.device
        torch.manual_seed(self.seed)
        self.nets = build_ist(len(self.images.channels), len(self.images.genes), len(data.oes), cfg).to(self.device)
        self.optimizers = {
            "encoder": adam(self.nets["encoder"].parameters(), cfg["encoder_lr"], (0.9, 0.999),
                            cfg["weight_decay"], self.device),
            "generator": adam(self.nets["generator"].parameters(), cfg["lr"], cfg["betas"], cfg["weight_decay"],
                              self.device),
            "critic": adam(self.nets["critic"].parameters(), cfg["lr"], cfg["betas"], cfg["weight_decay"],
                           self.device)}
        self.ema = ParamEMA(self.nets, [], "none")
        self.samplers = {"x": data.gene_sampler(cfg["batch_size"], self.seed, stream=0),
                         "style": data.oe_sampler(cfg["batch_size"], self.seed, stream=1)}
        self.sample_cells, self.sample_styles = fold_sample_choice(data, cfg, self.seed)

    def train_step(self, step: int, batch: dict) -> torch.Tensor:
        x, lab_x = batch["x"]
        s, lab_s = batch["style"]
        out = dict.fromkeys(IST_LOSSES, torch.zeros((), device=self.device))
        bf16 = self.cfg["bf16"]
        if step < self.cfg["pretrain_iterations"]:
            if self.cfg["augment"]:
                x = dihedral(x, step_generator(self.seed, 300, step, self.device))
                s = dihedral(s, step_generator(self.seed, 301, step, self.device))
            with autocast(self.device, bf16):
                p = pretrain_loss(self.nets, x, lab_x[:, 0], s, lab_s[:, 1])
            update(self.optimizers["encoder"], p["total"])
            out.update(gene_ce=p["gene_ce"], oe_ce=p["oe_ce"])
        else:
            if step == self.cfg["pretrain_iterations"]:
                init_critic_from_encoder(self.nets)
            self.nets["encoder"].requires_grad_(False)
            oe = lab_s[:, 1]
            with autocast(self.device, bf16):
                transferred = transfer(self.nets, x, s)
                d = critic_losses(self.nets, s, oe, transferred[2], self.cfg["r1_gamma"])
            update(self.optimizers["critic"], d["d_total"])
            self.nets["critic"].requires_grad_(False)
            with autocast(self.device, bf16):
                g = generator_losses(self.nets, x, oe, transferred, self.cfg)
            update(self.optimizers["generator"], g["g_total"])
            self.nets["critic"].requires_grad_(True)
            out.update(d)
            out.update(g)
        return torch.stack([out[n].detach().float() for n in IST_LOSSES])

    @torch.no_grad()
    def sample_restyle(self) -> tuple[np.ndarray, list[str]]:
        x = self.images.get(self.sample_cells)
        styles = self.images.get(self.sample_styles)
        enc, gen = self.nets["encoder"], self.nets["generator"]
        out = torch.stack([restyle(enc, gen, x, s.expand(len(x), -1, -1, -1)) for s in styles], dim=1)
        mosaic = sample_grid(x.float().cpu().numpy(), out.float().cpu().numpy())
        return mosaic, ["input"] + [self.data.oes[self.data.oe_ids[r]] for r in self.sample_styles]

    def model_payload(self, step: int) -> dict:
        return _payload(self, step, {k: self.cfg[k] for k in MODEL_KEYS})


class StarGanOETrainer(GrapeTrainer):
    """StarGAN v2 with GRAPE's networks and losses, its domains being the fold's OEs.

    The GRAPE step is inherited: reals x of OE y through D_y, fakes G(x, F(M_z)) with
    targets z (y shuffled within the OE-balanced batch).
    """

    name = "stargan"

    def __init__(self, data: FoldData, cfg: dict, seed: int):
        self.data, self.images, self.cfg, self.seed = data, data.images, cfg, int(seed)
        self.device = self.images.device
        self.setup_networks(lambda: build_grape(len(data.oes), len(self.images.channels), cfg))
        self.samplers = {"x": data.oe_sampler(cfg["batch_size"], self.seed, stream=0, labels="oe")}
        self.sample_cells, styles = fold_sample_choice(
            data, {"n_sample_cells": cfg["n_sample_cells"], "n_sample_oes": cfg["n_sample_genes"]}, self.seed)
        self.sample_oes = [int(data.oe_ids[r]) for r in styles]

    @torch.no_grad()
    def sample_restyle(self) -> tuple[np.ndarray, list[str]]:
        x = self.images.get(self.sample_cells).contiguous(memory_format=self.fmt)
        styles = self.nets["style"](torch.as_tensor(self.sample_oes, device=self.device))   # (k, D)
        out = torch.stack([self.nets["generator"](x, s.expand(len(x), -1)) for s in styles], dim=1)
        mosaic = sample_grid(x.float().cpu().numpy(), out.float().cpu().numpy())
        return mosaic, ["input"] + [self.data.oes[i] for i in self.sample_oes]

    def model_payload(self, step: int) -> dict:
        return _payload(self, step, {k: self.cfg[k] for k in GRAPE_MODEL_KEYS})


def _payload(trainer, step: int, config: dict) -> dict:
    d = trainer.data
    return {"method": trainer.name, "step": step, "seed": trainer.seed, "config": config,
            "genes": trainer.images.genes, "controls": trainer.images.controls,
            "channels": trainer.images.channels, "oes": d.oes, "train_oes": d.train_oes,
            "fold": d.fold["fold_id"], "state": trainer.ema.exported_state(trainer.nets)}


def fold_sample_choice(data: FoldData, cfg: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed training cells for the grid rows and one style cell per column, from distinct
    training OEs (evenly spread over them)."""
    rng = np.random.default_rng(seed)
    train = data.fold["train_idx"]
    cells = np.sort(rng.choice(train, size=min(cfg["n_sample_cells"], len(train)), replace=False))
    oes = data.train_oes
    k = min(cfg["n_sample_oes"], len(oes))
    picks = [oes[i] for i in np.linspace(0, len(oes) - 1, k).round().astype(int)] if k else []
    in_train = np.zeros(data.images.n, dtype=bool)
    in_train[train] = True
    styles = np.array([rng.choice(np.flatnonzero(in_train & (data.oe_ids == o))) for o in picks], dtype=np.int64)
    return cells, styles


def train_ist(cells_path, ood_cfg: dict | None, cfg: dict | None, fold: str, seed: int, model_path,
              losses_path, samples_path, checkpoint_dir) -> None:
    """Train IST on fold ``fold`` of ``cells.h5`` (resuming from ``checkpoint_dir``); write the
    model file (weights_only-loadable), the loss TSV and the sample grid PNG (training cells
    re-imaged in the style of one cell from each of several training OEs)."""
    cfg = ist_config(cfg)
    device = resolve_device(cfg["device"])
    data = load_fold(cells_path, ood_cfg, fold, cfg["image_size"], device, cfg["data_in_memory"],
                     cfg["memory_fraction"])
    run_training(ISTTrainer(data, cfg, seed), checkpoint_dir, model_path, losses_path, samples_path)


def train_stargan(cells_path, ood_cfg: dict | None, cfg: dict | None, fold: str, seed: int, model_path,
                  losses_path, samples_path, checkpoint_dir) -> None:
    """Train StarGAN v2 over the OEs of fold ``fold`` (GRAPE's backbone); outputs as train_ist."""
    cfg = stargan_config(cfg)
    device = resolve_device(cfg["device"])
    data = load_fold(cells_path, ood_cfg, fold, cfg["image_size"], device, cfg["data_in_memory"],
                     cfg["memory_fraction"])
    run_training(StarGanOETrainer(data, cfg, seed), checkpoint_dir, model_path, losses_path, samples_path)


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
            self.nets = build_grape(n_oes, n_ch, payload["config"])
        self.nets.load_state_dict(payload["state"])
        self.nets.to(device).eval().requires_grad_(False)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, style: torch.Tensor, style_oe: torch.Tensor) -> torch.Tensor:
        if self.kind == "ist":
            return restyle(self.nets["encoder"], self.nets["generator"], x, style)
        return self.nets["generator"](x, self.nets["style"](style_oe))


def load_restyler(path: str | os.PathLike, device: torch.device, fold: str | None = None) -> Restyler:
    """The IST or StarGAN model file at ``path`` as a Restyler; checks its fold when given."""
    payload = load_checkpoint(path, map_location=device)
    if payload is None or payload.get("method") not in ("ist", "stargan"):
        raise InputError(f"{path}: not an IST or StarGAN model file; rerun its training rule.")
    if fold is not None and payload["fold"] != fold:
        raise InputError(f"{path}: trained for fold {payload['fold']!r}, not {fold!r}.")
    return Restyler(payload, device)
