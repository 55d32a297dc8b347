"""GRAPE training (paper §3.4) and embedding extraction at the paper's three positions.

Per step, with a gene-balanced batch (x, y) and targets z (y shuffled within the batch):

- D step: non-saturating loss on real x through head y and fake G(x, F(M_z)) through
  head z, plus R1 on reals: r1_gamma / 2 * E ||grad_x D_y(x)||^2.
- G step (updates M, attention, F, G and E): adversarial loss of the fake through D_z;
  cycle loss ||x - G(G(x, s), E(x))||_1; style loss ||s - E(G(x, s))||_1 with both sides
  detached from M, F and G (so it updates only E) unless ``detach_style`` is false.
  With ``lambda_id`` > 0 (0 in the paper), an identity loss ||G(x, F(M_y)) - x||_1: a cell
  restyled to its own gene should come back unchanged (as in Fixed-Point GAN).
  Total: adv + lambda_cyc * cycle + lambda_sty * style + lambda_id * identity.

The first ``warmup_iters`` steps (0 in the paper) instead train G and E alone to
reconstruct x: L1 |G(x, E(x)) - x| (``gan.warmup_step``), so that the adversarial phase
starts from a generator that keeps its input (config/README.md).
"""

from __future__ import annotations

import logging
import os
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..io.embeddings import write_embeddings
from ..io.h5 import read_obs
from ..io.schema import block_config
from ..models.grape import MODEL_KEYS, build_grape, load_grape
from .data import BalancedSampler, CellImages, crop_reader, dihedral, step_generator
from .device import resolve_device
from .gan import (cells_per_gene, discriminator_loss, gan_step, generator_adv_loss, mean_per_gene, mosaic,
                  sample_choice, step_networks, styled_columns, warmup_step)
from .loop import Trainer, run_training

log = logging.getLogger(__name__)

LOSSES = ["d_real", "d_fake", "r1", "g_adv", "cycle", "style", "identity", "d_total", "g_total"]


def grape_config(cfg: dict | None) -> dict:
    """The full ``methods.grape`` block: the schema's defaults updated by ``cfg``
    (``opsembed.io.schema.block_config``); InputError on unknown or invalid keys."""
    return block_config("methods.grape", cfg)


def discriminator_losses(run: dict, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor,
                         r1_gamma: float) -> dict[str, torch.Tensor]:
    """D losses for reals x (B, C, S, S) of genes y (B,) and fakes restyled to genes z (B,).

    ``run`` maps network names to callables. Returns d_real, d_fake, r1 and d_total (scalars).
    """
    with torch.no_grad():
        fake = run["generator"](x, run["style"](z))
    return discriminator_loss(run["discriminator"], x, y, fake, z, r1_gamma)


def generator_losses(run: dict, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor,
                     cfg: dict) -> dict[str, torch.Tensor]:
    """G-side losses for images x (B, C, S, S) of genes y (B,) restyled to genes z (B,):
    g_adv, cycle, style, identity, g_total."""
    s = run["style"](z)
    fake = run["generator"](x, s)
    identity = torch.zeros((), device=x.device)
    if cfg["lambda_id"] > 0:
        identity = (run["generator"](x, run["style"](y)) - x).float().abs().mean()
    g_adv = generator_adv_loss(run["discriminator"](fake, z))
    if cfg["cycle"]:
        cycle = (run["generator"](fake, run["style_encoder"](x)) - x).abs().mean()
    else:
        cycle = torch.zeros((), device=x.device)
    if cfg["detach_style"]:
        style = (run["style_encoder"](fake.detach()) - s.detach()).abs().mean()
    else:
        style = (run["style_encoder"](fake) - s).abs().mean()
    total = g_adv + cfg["lambda_cyc"] * cycle + cfg["lambda_sty"] * style + cfg["lambda_id"] * identity
    return {"g_adv": g_adv, "cycle": cycle, "style": style, "identity": identity, "g_total": total}


class GrapeTrainer(Trainer):
    """GRAPE on the crops of ``images``; ``cfg`` a full config (see grape_config)."""

    name = "grape"
    loss_names = LOSSES
    model_keys = MODEL_KEYS
    operational_keys = Trainer.operational_keys + (
        "enabled", "compile", "n_sample_cells", "n_sample_genes", "sample_genes", "n_cells_p3",
        "n_cells_generative")

    def __init__(self, images: CellImages, cfg: dict, seed: int):
        self.images, self.cfg, self.seed, self.device = images, cfg, int(seed), images.device
        self.setup_networks(lambda: build_grape(len(images.genes), len(images.channels), cfg))
        pool = [g for g in range(len(images.genes)) if (images.gene_ids == g).any()]
        self.samplers = {"x": BalancedSampler(images.gene_ids, pool, cfg["batch_size"], self.seed, stream=0)}
        self.sample_cells, self.sample_domains = sample_choice(images, cfg, self.seed)

    def train_step(self, step: int, batch: dict) -> torch.Tensor:
        x, y = batch["x"]
        if self.cfg["augment"]:
            x = dihedral(x, step_generator(self.seed, 101, step, self.device))
        x = x.contiguous(memory_format=self.fmt)
        if step < self.cfg["warmup_iters"]:
            return warmup_step(self, x)
        gen = step_generator(self.seed, 100, step, self.device)
        z = y[torch.randperm(len(y), generator=gen, device=self.device)]
        run = step_networks(self, step)
        return gan_step(self, lambda: discriminator_losses(run, x, y, z, self.cfg["r1_gamma"]),
                        lambda: generator_losses(run, x, y, z, self.cfg))

    def column_labels(self) -> list[str]:
        """Names of the sample grid's domains ``sample_domains`` (ids into the style table)."""
        return [self.images.genes[g] for g in self.sample_domains]

    @torch.no_grad()
    def sample_mosaic(self) -> tuple[np.ndarray, list[str]]:
        x = self.images.get(self.sample_cells).contiguous(memory_format=self.fmt)
        styles = self.nets["style"](torch.as_tensor(self.sample_domains, device=self.device))   # (k, D)
        return mosaic(x, styled_columns(self.nets["generator"], x, styles), self.column_labels())


def train_grape(cells_path: str | os.PathLike, cfg: dict | None, seed: int, model_path, losses_path,
                samples_path, checkpoint_dir, tensorboard_dir=None) -> None:
    """Train GRAPE on ``cells.h5`` (resuming from ``checkpoint_dir``) and write the model
    file (torch, weights_only-loadable), the loss TSV and the sample-grid PNG."""
    cfg = grape_config(cfg)
    device = resolve_device(cfg["device"])
    images = CellImages(cells_path, cfg["image_size"], device, cfg["data_in_memory"], cfg["memory_fraction"])
    log.info("GRAPE: %d cells, %d genes, %d channels, %d x %d px, device %s, crops %s", images.n,
             len(images.genes), len(images.channels), cfg["image_size"], cfg["image_size"], device,
             f"in {images.storage} memory" if images.in_memory else "streamed from disk")
    run_training(GrapeTrainer(images, cfg, seed), checkpoint_dir, model_path, losses_path, samples_path,
                 tensorboard_dir)


@torch.no_grad()
def grape_embeddings(nets: nn.ModuleDict, images_of: Callable[[np.ndarray], torch.Tensor],
                     cells: dict[int, np.ndarray], batch_size: int = 256) -> dict[str, dict[int, np.ndarray]]:
    """GRAPE's gene representations at the paper's three positions, {position: {gene id: vector}}.

    - ``p1``: the row M_z (d,), every gene of the vocabulary;
    - ``p2``: F(M_z) (D,) (attention over M first when enabled), every gene;
    - ``p3``: mean over the rows ``cells[z]`` of E(G(x, F(M_z))) (D,), the genes of ``cells``;
      ``images_of(rows)`` returns those cells' crops (n, C, S, S) on the model's device.
    """
    m = nets["style"].embedding.weight.double().cpu().numpy()
    styles = nets["style"].all_styles()                                      # (G, D)

    def restyled_code(g: int, x: torch.Tensor) -> torch.Tensor:
        return nets["style_encoder"](nets["generator"](x, styles[g].expand(len(x), -1)))

    return {"p1": dict(enumerate(m)), "p2": dict(enumerate(styles.double().cpu().numpy())),
            "p3": mean_per_gene(restyled_code, images_of, cells, batch_size)}


def extract_grape(model_path, cells_path, p1_path, p2_path, p3_path, cfg: dict | None, seed: int) -> None:
    """Write GRAPE embeddings at positions 1, 2 and 3 (methods grape, grape_p2, grape_p3).

    Position 3 restyles up to ``n_cells_p3`` random cells (``seed``) of each gene to that
    gene. Controls are left out of all three files; genes without cells out of position 3.
    """
    cfg = grape_config(cfg)
    device = resolve_device(cfg["device"])
    payload, nets = load_grape(model_path, device)
    genes = payload["genes"]
    gene_col = read_obs(cells_path)["gene"].astype(str).to_numpy()
    cells = cells_per_gene(gene_col, genes, payload["controls"], cfg["n_cells_p3"], seed)
    emb = grape_embeddings(nets, crop_reader(cells_path, payload["config"]["image_size"], device), cells)
    keep = [g for g, name in enumerate(genes) if name != payload["controls"]]
    for key, path in (("p1", p1_path), ("p2", p2_path), ("p3", p3_path)):
        ids = [g for g in keep if g in emb[key]]
        write_embeddings(path, [genes[g] for g in ids], np.stack([emb[key][g] for g in ids]))
    log.info("GRAPE embeddings for %d genes written (p3: %d genes, up to %d cells each)", len(keep),
             len(cells), cfg["n_cells_p3"])


