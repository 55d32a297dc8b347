"""IST (Interventional Style Transfer, Pernice et al. 2023): the generator of one OOD fold,
trained on the fold's training cells only:

- steps 0 .. pretrain_iterations - 1: E learns the multi-task objective, cross-entropy of
  its gene head on gene-balanced batches plus cross-entropy of its OE head on
  OE-balanced batches (randomly flipped and rotated when ``augment``);
- then, for ``warmup_iterations`` steps (0 in the paper), E is frozen and G alone learns to
  reconstruct its input from E's maps and its own style code (``reconstruction_loss``; the
  loss table's ``content`` and ``g_total`` columns);
- at the first adversarial step D's trunk is copied from E's (frozen since pretraining);
- later steps: content images x (balanced over genes) are paired at random with style
  images (balanced over OEs); D learns the non-saturating loss with R1; G learns the
  weighted sum of adversarial, Gram style, cycle, content and class-matching losses
  (see ``generator_losses``). The style loss matches the style image's Gram matrices (the
  paper) or, with ``style_target: oe_shift``, the content's own moved by the OE effect of an
  additive OE + gene fit over training cells (``oe_effect_grams``, computed once E is frozen).

It runs in ``opsembed.train.loop.run_training`` (resumable checkpoints, loss TSV, progress
bar, NaN stop) and writes a model file that ``opsembed.models.restyler.load_restyler`` turns
into a function re-imaging cells into other OEs. The other interventional generator,
StarGAN v2 over OEs, is ``opsembed.train.stargan_trainer``.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..io.schema import block_config
from ..models.ist import MODEL_KEYS, build_ist, gram, init_critic_from_encoder, restyle, style_code
from .data import dihedral, step_generator
from .device import adam, autocast, resolve_device
from .fold_data import FoldData, fold_fields, fold_sample_choice, load_fold
from .gan import discriminator_loss, generator_adv_loss, mosaic, update
from .loop import Trainer, run_training

log = logging.getLogger(__name__)

IST_LOSSES = ["gene_ce", "oe_ce", "d_real", "d_fake", "r1", "adv", "style", "cycle", "content", "class",
              "d_total", "g_total", "oe_match"]
"""Loss table columns; a phase's losses are 0 in the other phase. ``oe_match`` is a
diagnostic, not a loss: the share of restyled images that E's OE head assigns to the
style image's OE (near 1 when the transfer works)."""

GRAM_CELLS = 256
"""Training cells per OE whose Gram matrices ``style_target: oe_shift`` fits (``oe_effect_grams``)."""
GRAM_FIT_SWEEPS = 50
"""Alternating sweeps of that additive fit (each a weighted mean over the (OE, gene) cells)."""


def ist_config(cfg: dict | None) -> dict:
    """The full ``ood.ist`` block: the schema's defaults updated by ``cfg``, checked by the
    schema and the cross-key rules (pretrain_iterations below iterations); InputError."""
    return block_config("ood.ist", cfg)


def pretrain_loss(nets: nn.ModuleDict, x: torch.Tensor, gene: torch.Tensor, x_oe: torch.Tensor,
                  oe: torch.Tensor) -> dict[str, torch.Tensor]:
    """E's multi-task loss: CE of the gene head on (x, gene) + CE of the OE head on (x_oe, oe).

    x, x_oe (B, C, S, S); gene, oe (B,) int64. Returns ``gene_ce``, ``oe_ce``, ``total``.
    """
    enc = nets["encoder"]
    gene_ce = F.cross_entropy(enc(x)[0].float(), gene)
    oe_ce = F.cross_entropy(enc(x_oe)[1].float(), oe)
    return {"gene_ce": gene_ce, "oe_ce": oe_ce, "total": gene_ce + oe_ce}


def reconstruction_loss(nets: nn.ModuleDict, x: torch.Tensor) -> torch.Tensor:
    """G's warm-up loss: mean |G(E(x), v(x)) - x| for x (B, C, S, S), a scalar (E frozen)."""
    maps = nets["encoder"].maps(x)
    return (nets["generator"](maps, style_code(maps), x) - x).float().abs().mean()


def transfer(nets: nn.ModuleDict, x: torch.Tensor, style: torch.Tensor) -> tuple:
    """(E's maps of x, E's maps of style, x_hat = G(E(x), v(style))) with the graph kept,
    shared by the D step (which detaches x_hat) and the G step."""
    maps_x, maps_s = nets["encoder"].maps(x), nets["encoder"].maps(style)
    return maps_x, maps_s, nets["generator"](maps_x, style_code(maps_s), x)


def critic_losses(nets: nn.ModuleDict, style: torch.Tensor, style_oe: torch.Tensor, fake: torch.Tensor,
                  r1_gamma: float) -> dict[str, torch.Tensor]:
    """D's losses: real style images (B, C, S, S) through their OE heads ``style_oe`` (B,), the
    fakes restyled to those OEs (detached here) through the same heads, R1 on reals.

    Returns ``d_real``, ``d_fake``, ``r1`` and ``d_total`` = d_real + d_fake + r1_gamma * r1.
    """
    return discriminator_loss(nets["critic"], style, style_oe, fake, style_oe, r1_gamma)


def style_loss(maps_a: list[torch.Tensor], grams_b: list[torch.Tensor], distance: str) -> torch.Tensor:
    """Gram style loss between E's maps ``maps_a`` (each (B, c, h, w)) and target Gram matrices
    ``grams_b`` (each (B, c, c)), a scalar: ``l1`` the mean over maps of mean |Gram(a) - b| (the
    paper's eq. 3); ``mse`` the sum over maps of mean (Gram(a) - b)^2."""
    if distance == "l1":
        return sum((gram(a) - b).abs().mean() for a, b in zip(maps_a, grams_b)) / len(maps_a)
    if distance == "mse":
        return sum(((gram(a) - b) ** 2).mean() for a, b in zip(maps_a, grams_b))
    raise ValueError(f"style_distance must be l1 or mse, not {distance!r}")


@torch.no_grad()
def oe_effect_grams(encoder: nn.Module, images, rows: np.ndarray, oes: np.ndarray, genes: np.ndarray, n_oes: int,
                    batch_size: int = 64, sweeps: int = GRAM_FIT_SWEEPS) -> list[torch.Tensor]:
    """Each OE's effect on the Gram matrices of E's four maps, free of which genes it holds.

    The Gram matrices of the given cells (``rows`` into ``images``, a CellImages; ``oes`` and
    ``genes``: their int ids) are fitted as mean + a(OE) + b(gene) by least squares
    (alternating weighted means over the (OE, gene) cell means, ``sweeps`` times). A plain
    mean per OE would carry its genes: on a screen where plates hold different genes, the
    difference between two OEs' mean Grams is then partly a gene phenotype. Returns a list of
    4 tensors (n_oes, c_l, c_l), float32, on E's device: a(OE) (rows of OEs without cells 0);
    only differences between OEs are meaningful. Memory: one sum of the four Grams per
    (OE, gene) pair present, sum over layers of c_l^2 floats each (1.4 MB at the paper's width 64)."""
    keys, pair_of_row = np.unique(np.stack([oes, genes], axis=1), axis=0, return_inverse=True)
    pair_of_row = pair_of_row.reshape(-1)
    sums = None                                                          # per layer (P, c, c)
    for i in range(0, len(rows), batch_size):
        grams = [gram(m) for m in encoder.maps(images.get(rows[i:i + batch_size]))]
        if sums is None:
            sums = [g.new_zeros((len(keys), *g.shape[1:])) for g in grams]
        idx = torch.as_tensor(pair_of_row[i:i + batch_size], device=grams[0].device)
        for total, g in zip(sums, grams):
            total.index_add_(0, idx, g)
    device = sums[0].device
    p_oe = torch.as_tensor(keys[:, 0], device=device)
    p_gene = torch.as_tensor(keys[:, 1], device=device)
    n_genes = int(keys[:, 1].max()) + 1
    w = torch.as_tensor(np.bincount(pair_of_row, minlength=len(keys)), dtype=torch.float32,
                        device=device)[:, None, None]                    # cells per pair
    out = []
    for total in sums:
        means = total / w                                                # (P, c, c)
        a = means.new_zeros((n_oes, *means.shape[1:]))
        for _ in range(sweeps):
            b = _weighted_group_mean(means - a[p_oe], w, p_gene, n_genes)
            a = _weighted_group_mean(means - b[p_gene], w, p_oe, n_oes)
        out.append(a)
    return out


def _weighted_group_mean(values: torch.Tensor, weights: torch.Tensor, groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Per group, the weighted mean of ``values`` (P, ...) with ``weights`` (P, 1, ...), groups
    (P,) int: (n_groups, ...); groups without members 0."""
    total = values.new_zeros((n_groups, *values.shape[1:])).index_add_(0, groups, values * weights)
    norm = weights.new_zeros((n_groups, *weights.shape[1:])).index_add_(0, groups, weights)
    return total / norm.clamp_min(1e-12)


def style_targets(cfg: dict, maps_x: list[torch.Tensor], maps_s: list[torch.Tensor], x_oe: torch.Tensor,
                  s_oe: torch.Tensor, oe_grams: list[torch.Tensor] | None) -> list[torch.Tensor]:
    """The Gram matrices (B, c, c) per map in ``style_layers`` that the restyle should have.

    ``style_target`` ``image`` (the paper): the style image's own, which also carries that
    one cell's shape, size and phenotype; ``oe_shift``: the content image's own Gram plus the
    difference between the effects of the style image's OE and of the content's OE
    (``oe_effect_grams``), i.e. move the cell by what the change of OE alone changes."""
    layers = cfg.get("style_layers", (0, 1, 2, 3))
    if cfg.get("style_target", "image") == "image":
        return [gram(maps_s[i]) for i in layers]
    return [gram(maps_x[i]).detach() + oe_grams[i][s_oe] - oe_grams[i][x_oe] for i in layers]


def generator_losses(nets: nn.ModuleDict, x: torch.Tensor, style_oe: torch.Tensor, transferred: tuple,
                     lam: dict, x_oe: torch.Tensor | None = None,
                     oe_grams: list[torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """G's losses for content x (B, C, S, S) restyled into style images of OEs ``style_oe`` (B,);
    ``transferred`` = ``transfer(nets, x, style)`` = (maps of x, maps of style, x_hat).

    - ``adv``: mean softplus(-D_{style_oe}(x_hat)) (non-saturating);
    - ``style``: the difference between the Gram matrices of x_hat and their target
      (``style_targets``: ``x_oe`` (B,) the content's OEs and ``oe_grams`` for ``oe_shift``) on
      E's maps ``style_layers`` (0-based; the paper: all four) (``style_distance``): ``l1``, the paper's eq. 3, the mean over the
      maps of the mean absolute difference; ``mse``, the sum over the maps of the mean
      squared difference;
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
    adv = generator_adv_loss(nets["critic"](fake, style_oe))
    layers = lam.get("style_layers", (0, 1, 2, 3))
    style_l = style_loss([maps_f[i] for i in layers], style_targets(lam, maps_x, maps_s, x_oe, style_oe, oe_grams),
                         lam.get("style_distance", "mse"))
    cycle = (gen(maps_f, style_code(maps_x), fake) - x).float().abs().mean()
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


class ISTTrainer(Trainer):
    """IST on one fold's training cells; ``cfg`` a full config (see ist_config). No EMA."""

    name = "ist"
    sample_caption = "training cells (rows) re-imaged in the style of a cell of each OE (columns)"
    loss_names = IST_LOSSES
    model_keys = MODEL_KEYS
    operational_keys = Trainer.operational_keys + ("n_sample_cells", "n_sample_oes", "n_restyle_cells")

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
        self.samplers = {"x": data.gene_sampler(cfg["batch_size"], self.seed, stream=0),
                         "style": data.oe_sampler(cfg["batch_size"], self.seed, stream=1)}
        self.sample_cells, self.sample_styles = fold_sample_choice(data, cfg["n_sample_cells"], cfg["n_sample_oes"], self.seed)
        self.oe_grams = None  # style_target oe_shift: the OEs' Gram effects (oe_effect_grams), once E is frozen

    def _oe_grams(self) -> list[torch.Tensor]:
        """``oe_effect_grams`` of the frozen E over up to GRAM_CELLS training cells of each training
        OE (drawn with the trainer's seed; recomputed alike after a resume, E being frozen)."""
        rng = np.random.default_rng([self.seed, 302])
        train = self.data.fold["train_idx"]
        rows = np.concatenate([np.sort(rng.choice(r, size=min(GRAM_CELLS, len(r)), replace=False))
                               for r in (train[self.data.oe_ids[train] == o] for o in self.data.train_oes)])
        return oe_effect_grams(self.nets["encoder"], self.images, rows, self.data.oe_ids[rows],
                               self.images.gene_ids[rows], len(self.data.oes))

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
        elif step < self.cfg["pretrain_iterations"] + self.cfg["warmup_iterations"]:
            self.nets["encoder"].requires_grad_(False)
            with autocast(self.device, bf16):
                recon = reconstruction_loss(self.nets, x)
            update(self.optimizers["generator"], recon)
            out.update(content=recon, g_total=recon)
        else:
            if step == self.cfg["pretrain_iterations"] + self.cfg["warmup_iterations"]:
                init_critic_from_encoder(self.nets)
            self.nets["encoder"].requires_grad_(False)
            if self.cfg["style_target"] == "oe_shift" and self.oe_grams is None:
                self.oe_grams = self._oe_grams()
            oe = lab_s[:, 1]
            with autocast(self.device, bf16):
                transferred = transfer(self.nets, x, s)
                d = critic_losses(self.nets, s, oe, transferred[2], self.cfg["r1_gamma"])
            update(self.optimizers["critic"], d["d_total"])
            self.nets["critic"].requires_grad_(False)
            with autocast(self.device, bf16):
                g = generator_losses(self.nets, x, oe, transferred, self.cfg, lab_x[:, 1], self.oe_grams)
            update(self.optimizers["generator"], g["g_total"])
            self.nets["critic"].requires_grad_(True)
            out.update(d)
            out.update(g)
        return torch.stack([out[n].detach().float() for n in IST_LOSSES])

    @torch.no_grad()
    def sample_mosaic(self) -> tuple[np.ndarray, list[str]]:
        x = self.images.get(self.sample_cells)
        styles = self.images.get(self.sample_styles)
        enc, gen = self.nets["encoder"], self.nets["generator"]
        out = torch.stack([restyle(enc, gen, x, s.expand(len(x), -1, -1, -1)) for s in styles], dim=1)
        return mosaic(x, out, [self.data.oes[self.data.oe_ids[r]] for r in self.sample_styles])

    def model_payload(self, step: int) -> dict:
        return {**super().model_payload(step), **fold_fields(self.data)}


def train_ist(cells_path, ood_cfg: dict | None, cfg: dict | None, fold: str, seed: int, model_path,
              losses_path, samples_path, checkpoint_dir, classes=None) -> None:
    """Train IST on fold ``fold`` of ``cells.h5`` (resuming from ``checkpoint_dir``); write the
    model file (weights_only-loadable), the loss TSV and the sample grid PNG (training cells
    re-imaged in the style of one cell from each of several training OEs). ``classes``: the
    OOD classes table (``load_fold``)."""
    cfg = ist_config(cfg)
    device = resolve_device(cfg["device"])
    data = load_fold(cells_path, ood_cfg, fold, cfg["image_size"], device, cfg["data_in_memory"],
                     cfg["memory_fraction"], classes)
    run_training(ISTTrainer(data, cfg, seed), checkpoint_dir, model_path, losses_path, samples_path)


