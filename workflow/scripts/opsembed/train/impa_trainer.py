"""IMPA training (control -> perturbed translation) and its gene embeddings.

Per step: a batch of control cells x (B) and a gene-balanced batch of perturbed cells
(x', y') of the same size; noise n1, n2 ~ N(0, I).

- D step: non-saturating loss on real x' through head y' and fake G(x, S(y', n1)) through
  head y', plus R1 on reals (r1_gamma / 2 * E ||grad||^2).
- G step (updates P when trainable, the mapping, G and E): adversarial loss; style
  reconstruction ||s1 - E(G(x, s1))||_1; diversity ||G(x, s1) - G(x, s2)||_1, subtracted
  with a weight decaying linearly from lambda_ds to 0 over ``ds_decay_iters`` steps;
  cycle ||x - G(G(x, s1), E(x))||_1; with ``lambda_id`` > 0 (0 in the paper), identity
  ||G(x, S(control, n1)) - x||_1, the controls restyled to their own label.
Gene embedding: E(x) averaged over up to ``n_cells`` random cells of each gene.
The first ``warmup_iters`` steps (0 in the paper) train G and E alone to reconstruct the
controls, L1 |G(x, E(x)) - x| (``gan.warmup_step``).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch

from ..io.embeddings import read_embeddings, write_embeddings
from ..io.errors import InputError
from ..io.h5 import read_obs
from ..io.schema import block_config
from ..models.impa import MODEL_KEYS, build_impa, load_impa
from .data import BalancedSampler, CellImages, crop_reader, dihedral, step_generator
from .device import resolve_device
from .gan import (cells_per_gene, discriminator_loss, gan_step, generator_adv_loss, mean_per_gene, mosaic,
                  sample_choice, step_networks, warmup_step)
from .loop import Trainer, run_training

log = logging.getLogger(__name__)

LOSSES = ["d_real", "d_fake", "r1", "g_adv", "style", "diversity", "cycle", "identity", "d_total", "g_total"]


def impa_config(cfg: dict | None) -> dict:
    """The full ``methods.impa`` block: the schema's defaults updated by ``cfg``
    (``opsembed.io.schema.block_config``); InputError on unknown or invalid keys."""
    return block_config("methods.impa", cfg)


def generator_losses(run: dict, x: torch.Tensor, y: torch.Tensor, n1: torch.Tensor, n2: torch.Tensor,
                     cfg: dict, ds_weight: float, control: int = -1) -> dict[str, torch.Tensor]:
    """IMPA's G-side losses for controls x (B, C, S, S) translated to genes y (B,) with noise
    draws n1, n2 (B, noise_dim); ``run`` maps network names to callables.

    With s1 = S(y, n1), fake1 = G(x, s1), fake2 = G(x, S(y, n2)): ``g_adv`` (non-saturating,
    D_y), ``style`` = mean |E(fake1) - s1|, ``diversity`` = mean |fake1 - fake2| (fake2
    detached), ``cycle`` = mean |G(fake1, E(x)) - x|, ``identity`` = mean |G(x, S(control, n1)) - x|
    (computed only when lambda_id > 0 and ``control``, the control label's id, is >= 0; else 0)
    and ``g_total`` = g_adv + lambda_sty * style - ds_weight * diversity + lambda_cyc * cycle +
    lambda_id * identity (scalars).
    """
    s1 = run["style"](y, n1)
    fake1 = run["generator"](x, s1)
    g_adv = generator_adv_loss(run["discriminator"](fake1, y))
    style = (run["style_encoder"](fake1) - s1).abs().mean()
    fake2 = run["generator"](x, run["style"](y, n2))
    diversity = (fake1 - fake2.detach()).abs().mean()
    cycle = (run["generator"](fake1, run["style_encoder"](x)) - x).abs().mean()
    identity = torch.zeros((), device=x.device)
    if cfg["lambda_id"] > 0 and control >= 0:
        own = run["style"](torch.full_like(y, control), n1)
        identity = (run["generator"](x, own) - x).float().abs().mean()
    total = (g_adv + cfg["lambda_sty"] * style - ds_weight * diversity + cfg["lambda_cyc"] * cycle
             + cfg["lambda_id"] * identity)
    return {"g_adv": g_adv, "style": style, "diversity": diversity, "cycle": cycle, "identity": identity,
            "g_total": total}


def perturbation_table(genes: list[str], path: str | os.PathLike, seed: int) -> np.ndarray:
    """Rows of the embedding file ``path`` for ``genes``: float32 (G, p).

    Genes the file lacks (the control label, typically) get fixed random rows drawn from
    N(0, sd^2), sd the file's overall standard deviation. InputError when no gene matches.
    """
    emb = read_embeddings(path)
    known = [g for g in genes if g in emb.index]
    if not known:
        raise InputError(f"{path}: none of the screen's genes has an embedding row; "
                         "check the gene2vec file or set methods.impa.frozen_embedding: false.")
    rng = np.random.default_rng(seed)
    table = rng.normal(0, float(emb.to_numpy().std()), (len(genes), emb.shape[1]))
    for i, g in enumerate(genes):
        if g in emb.index:
            table[i] = emb.loc[g].to_numpy()
    missing = [g for g in genes if g not in emb.index]
    if missing:
        log.warning("IMPA: %d gene(s) lack a row in %s and get fixed random rows: %s",
                    len(missing), path, missing[:10])
    return table.astype(np.float32)


class ImpaTrainer(Trainer):
    """IMPA on ``images``; ``cfg`` a full config (see impa_config); ``table`` freezes P."""

    name = "impa"
    loss_names = LOSSES
    model_keys = MODEL_KEYS
    operational_keys = Trainer.operational_keys + (
        "enabled", "compile", "n_sample_cells", "n_sample_genes", "sample_genes", "n_cells",
        "n_cells_generative")

    def __init__(self, images: CellImages, cfg: dict, seed: int, table: np.ndarray | None = None):
        self.images, self.cfg, self.seed, self.device = images, cfg, int(seed), images.device
        control = images.genes.index(images.controls) if images.controls in images.genes else -1
        if not (images.gene_ids == control).any():
            raise InputError(f"{images.path}: IMPA translates control cells, but there are no "
                             f"{images.controls!r} cells. Check the `controls` label in the config.")
        self.setup_networks(lambda: build_impa(len(images.genes), len(images.channels), cfg, table))
        targets = [g for g in images.genes_without_controls() if (images.gene_ids == g).any()]
        if not targets:
            raise InputError(f"{images.path}: IMPA needs perturbed cells; only controls were found.")
        self.samplers = {"src": BalancedSampler(images.gene_ids, [control], cfg["batch_size"], self.seed, 1),
                         "tgt": BalancedSampler(images.gene_ids, targets, cfg["batch_size"], self.seed, 2)}
        self.sample_cells, self.sample_genes = sample_choice(images, cfg, self.seed)
        self.sample_noise = torch.randn(1, cfg["noise_dim"],
                                        generator=torch.Generator().manual_seed(self.seed))
        self.table_given = table is not None
        self.control = control

    def fingerprint(self) -> dict:
        """Adds whether P is frozen and the effective diversity decay (it follows
        ``iterations`` when ``ds_decay_iters`` is unset)."""
        decay = self.cfg["ds_decay_iters"] or self.cfg["iterations"]
        return {**super().fingerprint(), "frozen_table": self.table_given, "ds_decay": decay}

    def ds_weight(self, step: int) -> float:
        """Diversity weight at 0-based ``step``: lambda_ds * max(0, 1 - step / ds_decay_iters)."""
        decay = self.cfg["ds_decay_iters"] or self.cfg["iterations"]
        return self.cfg["lambda_ds"] * max(0.0, 1.0 - step / decay)

    def train_step(self, step: int, batch: dict) -> torch.Tensor:
        x, _ = batch["src"]
        xt, yt = batch["tgt"]
        if self.cfg["augment"]:
            both = dihedral(torch.cat([x, xt]), step_generator(self.seed, 101, step, self.device))
            x, xt = both[:len(x)], both[len(x):]
        x, xt = x.contiguous(memory_format=self.fmt), xt.contiguous(memory_format=self.fmt)
        if step < self.cfg["warmup_iters"]:
            return warmup_step(self, x)
        gen = step_generator(self.seed, 100, step, self.device)
        n1 = torch.randn(len(x), self.cfg["noise_dim"], generator=gen, device=self.device)
        n2 = torch.randn(len(x), self.cfg["noise_dim"], generator=gen, device=self.device)
        cfg = self.cfg
        run = step_networks(self, step)

        def d_losses() -> dict:
            with torch.no_grad():
                fake = run["generator"](x, run["style"](yt, n1))
            return discriminator_loss(run["discriminator"], xt, yt, fake, yt, cfg["r1_gamma"])

        return gan_step(self, d_losses, lambda: generator_losses(run, x, yt, n1, n2, cfg, self.ds_weight(step),
                                                                    self.control))

    @torch.no_grad()
    def sample_mosaic(self) -> tuple[np.ndarray, list[str]]:
        x = self.images.get(self.sample_cells).contiguous(memory_format=self.fmt)
        noise = self.sample_noise.to(self.device).expand(len(x), -1)
        out = torch.stack([self.nets["generator"](x, self.nets["style"](
            torch.full((len(x),), g, device=self.device), noise)) for g in self.sample_genes], dim=1)
        return mosaic(x, out, [self.images.genes[g] for g in self.sample_genes])


def train_impa(cells_path: str | os.PathLike, cfg: dict | None, seed: int, model_path, losses_path,
               samples_path, checkpoint_dir, tensorboard_dir=None, embedding_path=None) -> None:
    """Train IMPA on ``cells.h5`` (resuming from ``checkpoint_dir``); write the model file,
    loss TSV and sample grid. ``embedding_path``: an embedding TSV (e.g. gene2vec's) used as
    the frozen perturbation embedding when ``frozen_embedding``; None: P is trained."""
    cfg = impa_config(cfg)
    device = resolve_device(cfg["device"])
    images = CellImages(cells_path, cfg["image_size"], device, cfg["data_in_memory"], cfg["memory_fraction"])
    table = None
    if embedding_path is not None and cfg["frozen_embedding"]:
        table = perturbation_table(images.genes, embedding_path, seed)
    log.info("IMPA: %d cells, %d genes, perturbation embedding %s, device %s", images.n, len(images.genes),
             f"frozen from {embedding_path}" if table is not None else "trainable", device)
    run_training(ImpaTrainer(images, cfg, seed, table), checkpoint_dir, model_path, losses_path,
                 samples_path, tensorboard_dir)


def extract_impa(model_path, cells_path, out_path, cfg: dict | None, seed: int) -> None:
    """Write the IMPA embedding (method ``impa``): mean E(x) over up to ``n_cells`` random
    cells (``seed``) of each non-control gene; genes without cells are left out."""
    cfg = impa_config(cfg)
    device = resolve_device(cfg["device"])
    payload, nets = load_impa(model_path, device)
    genes, controls, mcfg = payload["genes"], payload["controls"], payload["config"]
    gene_col = read_obs(cells_path)["gene"].astype(str).to_numpy()
    cells = cells_per_gene(gene_col, genes, controls, cfg["n_cells"], seed)
    encoder = nets["style_encoder"]
    means = mean_per_gene(lambda g, x: encoder(x), crop_reader(cells_path, mcfg["image_size"], device), cells)
    order = sorted(means)
    write_embeddings(out_path, [genes[g] for g in order], np.stack([means[g] for g in order]))
    log.info("IMPA embeddings for %d genes written", len(order))
