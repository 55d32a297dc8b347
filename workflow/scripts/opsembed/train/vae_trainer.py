"""Weakly supervised Ada-GVAE training: on the Source dataset, then fine-tuned on a screen.

Per step, a batch of ``batch_size`` pairs (``vae_pairs``) goes through ``models.vae.pair_loss``
with beta warmed up linearly over ``warmup`` steps (fine-tuning keeps beta at its full value),
one Adam step on encoder and decoder together. On a screen, the second member of each
``augment`` pair is shown under a random rotation/reflection (``data.dihedral``).

Stages (one ``run_training`` each, own checkpoint folder):
- ``source``: from a random initialisation (seeded), ``iterations`` steps on Source pairs;
- ``finetune``: from the Source model's weights, ``finetune_iterations`` steps on screen pairs.
Inputs are pixels (C x image_size^2 crops) or, for the deep-features variant, feature
vectors held as (D, 1, 1) "crops".
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
from torch import nn

from ..io.errors import InputError
from ..io.h5 import read_attrs, read_obs
from ..io.schema import block_config
from ..models.vae import MODEL_KEYS, build_vae, pair_loss, warmup_beta
from .checkpoint import load_checkpoint
from .data import CellImages, dihedral, step_generator
from .device import adam, autocast, resolve_device
from .gan import compiled_nets
from .monitor import sample_grid
from .vae_pairs import ScreenPairs, SourcePairs

from .loop import Trainer, run_training

log = logging.getLogger(__name__)

LOSSES = ["loss", "recon", "kl", "shared", "beta"]
STAGE_ONLY = {"source": ("finetune_iterations", "pair_schemes"), "finetune": ("finetune_iterations", "warmup")}
OPERATIONAL = ("features", "n_cells", "eval_seeds", "mig_bins", "factor_bins", "n_sample_cells", "compile",
               "enabled")


def vae_config(cfg: dict | None) -> dict:
    """The full ``methods.vae`` block: the schema's defaults updated by ``cfg``
    (``opsembed.io.schema.block_config``); InputError on unknown or invalid keys."""
    return block_config("methods.vae", cfg)


def stage_config(cfg: dict, stage: str, input_kind: str = "pixels", input_dim: int = 0) -> dict:
    """The config one stage trains with: ``finetune`` takes ``finetune_iterations`` as its
    ``iterations`` and no warm-up; keys of the other stage are dropped (so changing them
    does not invalidate this stage's checkpoints); ``input_kind``/``input_dim`` added."""
    out = {k: v for k, v in cfg.items() if k not in STAGE_ONLY[stage]}
    if stage == "finetune":
        out["iterations"], out["warmup"] = cfg["finetune_iterations"], 0
    out["input_kind"], out["input_dim"] = input_kind, int(input_dim)
    return out


class VaeTrainer(Trainer):
    """Ada-GVAE on the crops (or features) of ``images`` with pairs from ``pairs``."""

    loss_names = LOSSES
    model_keys = MODEL_KEYS
    operational_keys = Trainer.operational_keys + OPERATIONAL
    sample_caption = "cells (rows): input and reconstruction from the posterior mean (columns)"

    def __init__(self, name: str, images: CellImages, pairs, cfg: dict, seed: int, init_state: dict | None = None):
        self.name, self.images, self.pairs, self.cfg, self.seed = name, images, pairs, cfg, int(seed)
        self.device = images.device
        self.fmt = torch.channels_last if cfg["channels_last"] and cfg["input_kind"] == "pixels" \
            else torch.contiguous_format
        self.nets = random_init(len(images.channels), cfg, self.seed).to(self.device, memory_format=self.fmt)
        if init_state is not None:
            self.nets.load_state_dict(init_state)
        params = list(self.nets.parameters())
        self.optimizers = {"vae": adam(params, cfg["lr"], cfg["betas"], cfg["weight_decay"], self.device)}
        self.run = compiled_nets(self.nets, cfg["compile"])
        self.samplers = pairs.views()
        self.augment = [i for i, s in enumerate(getattr(pairs, "schemes", [])) if s == "augment"]
        rng = np.random.default_rng([self.seed, 7])
        self.sample_cells = np.sort(rng.choice(images.n, min(int(cfg["n_sample_cells"]), images.n), replace=False))

    def train_step(self, step: int, batch: dict) -> torch.Tensor:
        xa, xb = batch["a"][0], batch["b"][0]
        if self.augment and self.cfg["input_kind"] == "pixels":
            which = torch.as_tensor(self.pairs.draw_pairs(step)[2], device=self.device)
            turned = dihedral(xb, step_generator(self.seed, 201, step, self.device))
            mask = torch.isin(which, torch.as_tensor(self.augment, device=self.device))[:, None, None, None]
            xb = torch.where(mask, turned, xb)
        xa, xb = xa.contiguous(memory_format=self.fmt), xb.contiguous(memory_format=self.fmt)
        beta = warmup_beta(self.cfg["beta"], step, int(self.cfg["warmup"]))
        gen = step_generator(self.seed, 200, step, self.device)
        with autocast(self.device, self.cfg["bf16"]):
            out = pair_loss(self.run, xa, xb, beta, self.cfg["aggregation"], self.cfg["symmetric_kl"], gen)
        opt = self.optimizers["vae"]
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        return torch.stack([out["loss"].detach().float(), out["recon"].detach().float(),
                            out["kl"].detach().float(), out["shared"].detach().float(),
                            torch.tensor(beta, device=self.device)])

    @torch.no_grad()
    def sample_mosaic(self) -> tuple[np.ndarray, list[str]]:
        """Fixed cells (rows): input and reconstruction from the posterior mean (columns)."""
        x = self.images.get(self.sample_cells).contiguous(memory_format=self.fmt)
        recon = self.nets["decoder"](self.nets["encoder"](x)[0]).float()
        if self.cfg["input_kind"] == "features":
            return feature_mosaic(x.cpu().numpy(), recon.cpu().numpy()), ["input", "reconstruction"]
        return sample_grid(x.float().cpu().numpy(), recon[:, None].cpu().numpy()), ["input", "reconstruction"]

    def model_payload(self, step: int) -> dict:
        payload = super().model_payload(step)
        payload["stage"] = self.name
        return payload


def random_init(channels: int, cfg: dict, seed: int) -> nn.ModuleDict:
    """The networks as initialised before any training (torch seeded with ``seed``)."""
    torch.manual_seed(int(seed))
    return build_vae(channels, cfg)


def feature_mosaic(x: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """uint8 RGB picture of feature vectors (n, D, 1, 1) beside their reconstructions:
    each row one cell, each column one feature, grey levels over the inputs' range."""
    a, b = x.reshape(len(x), -1), recon.reshape(len(recon), -1)
    lo, hi = np.percentile(a, 1), np.percentile(a, 99)
    img = np.clip((np.concatenate([a, np.full((len(a), 1), lo), b], axis=1) - lo) / max(hi - lo, 1e-6), 0, 1)
    img = np.repeat(np.repeat(img, 8, axis=0), 8, axis=1)
    return (np.repeat(img[..., None], 3, axis=2) * 255).round().astype(np.uint8)


def source_images(path, cfg: dict, device: torch.device, seed: int) -> tuple[CellImages, SourcePairs]:
    """The Source crops at ``image_size`` and their pair sampler."""
    attrs, obs = read_attrs(path), read_obs(path)
    names = list(attrs["factors"])
    images = CellImages(path, cfg["image_size"], device, cfg["data_in_memory"], cfg["memory_fraction"])
    indices = obs[[f"{n}_index" for n in names]].to_numpy()
    return images, SourcePairs(indices, list(attrs["factor_sizes"]), cfg["batch_size"], seed, stream=0)


def screen_pairs(cells_path, images: CellImages, cfg: dict, seed: int) -> ScreenPairs:
    """Screen pairs over the cells of ``cells_path`` (batches from its obs ``batch`` column,
    else ``plate``)."""
    obs = read_obs(cells_path)
    column = "batch" if "batch" in obs.columns else "plate"
    if column not in obs.columns:
        raise InputError(f"{cells_path}: obs has neither a batch nor a plate column for the VAE's screen pairs.")
    return ScreenPairs(images.gene_ids, obs[column].to_numpy(), cfg["pair_schemes"], cfg["batch_size"], seed,
                       stream=1)


def load_vae(model_path, device: torch.device) -> tuple[dict, nn.ModuleDict]:
    """The payload of a VAE model file and its networks, in eval mode on ``device``."""
    payload = load_checkpoint(model_path, device)
    if payload is None or "state" not in payload or not str(payload.get("method", "")).startswith("vae"):
        raise InputError(f"{model_path}: not a VAE model file; rerun the rule that trains it.")
    nets = build_vae(len(payload["channels"]), payload["config"]).to(device)
    nets.load_state_dict(payload["state"])
    return payload, nets.eval()


def train_vae_source(source_path, cfg: dict | None, seed: int, model_path, losses_path, samples_path,
                     checkpoint_dir, tensorboard_dir=None, features: torch.Tensor | None = None,
                     name: str = "vae_source") -> None:
    """Train on Source pairs from a random initialisation; ``features`` (n, D) float: the
    Source rows' deep features, used instead of the crops (deep-features variant)."""
    cfg = vae_config(cfg)
    device = resolve_device(cfg["device"])
    images, pairs = source_images(source_path, cfg, device, seed)
    if features is not None:
        images = feature_images(features, images, device)
    stage = stage_config(cfg, "source", *_input_kind(features))
    log.info("%s: %d Source rows, %d factors %s, device %s", name, images.n, len(pairs.sizes), pairs.sizes, device)
    run_training(VaeTrainer(name, images, pairs, stage, seed), checkpoint_dir, model_path, losses_path,
                 samples_path, tensorboard_dir)


def finetune_vae(cells_path, source_model, cfg: dict | None, seed: int, model_path, losses_path, samples_path,
                 checkpoint_dir, tensorboard_dir=None, features: torch.Tensor | None = None,
                 name: str = "vae") -> None:
    """Fine-tune the Source model ``source_model`` on screen pairs of ``cells_path``."""
    cfg = vae_config(cfg)
    device = resolve_device(cfg["device"])
    _, source_nets = load_vae(source_model, device)
    images = CellImages(cells_path, cfg["image_size"], device, cfg["data_in_memory"], cfg["memory_fraction"])
    if features is not None:
        images = feature_images(features, images, device)
    pairs = screen_pairs(cells_path, images, cfg, seed)
    stage = stage_config(cfg, "finetune", *_input_kind(features))
    log.info("%s: fine-tuning %s on %d cells, pairs %s", name, source_model, images.n, cfg["pair_schemes"])
    run_training(VaeTrainer(name, images, pairs, stage, seed, init_state=source_nets.state_dict()),
                 checkpoint_dir, model_path, losses_path, samples_path, tensorboard_dir)


def _input_kind(features) -> tuple[str, int]:
    return ("pixels", 0) if features is None else ("features", int(features.shape[1]))


def feature_images(features: torch.Tensor, like: CellImages, device: torch.device) -> CellImages:
    """Feature vectors (n, D) of the rows of ``like`` as a CellImages of (D, 1, 1) crops,
    standardised per feature (mean 0, sd 1 over the rows)."""
    f = torch.as_tensor(features, dtype=torch.float32)
    if len(f) != like.n:
        raise InputError(f"{len(f)} feature vectors for {like.n} cells; rerun the feature rule.")
    f = (f - f.mean(0)) / f.std(0).clamp_min(1e-6)
    return CellImages.from_tensor(f[:, :, None, None].to(device), like.gene_ids, like.genes, like.controls,
                                  [f"feature_{i}" for i in range(f.shape[1])])


@torch.no_grad()
def encode(encoder, images_of, n: int, batch_size: int = 512) -> np.ndarray:
    """Posterior means of rows 0 .. n-1: float32 (n, d); ``images_of(rows)`` gives their inputs."""
    out = []
    for start in range(0, n, batch_size):
        out.append(encoder(images_of(np.arange(start, min(start + batch_size, n))))[0].float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
