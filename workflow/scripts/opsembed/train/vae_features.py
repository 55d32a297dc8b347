"""Deep features for the VAE's ``vae_features`` variant: the penultimate layer of a trained
GRAPE style encoder (``style_encoder.trunk``, (B, w) before its last linear layer), frozen,
for every Source row and every screen cell, at GRAPE's training size."""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..models.grape import load_grape
from .data import CellImages
from .device import resolve_device
from .vae_extract import write_features
from .vae_trainer import vae_config

log = logging.getLogger(__name__)


@torch.no_grad()
def trunk_features(trunk, images: CellImages, batch_size: int = 512) -> np.ndarray:
    """Features of every row of ``images``: float32 (n, w)."""
    out = [trunk(images.get(np.arange(s, min(s + batch_size, images.n)))).float().cpu().numpy()
           for s in range(0, images.n, batch_size)]
    return np.concatenate(out)


def grape_features(grape_model, source_path, cells_path, cfg: dict | None, source_out, screen_out) -> None:
    """Write the GRAPE style-encoder features of the Source rows and of the screen's cells (npz)."""
    cfg = vae_config(cfg)
    device = resolve_device(cfg["device"])
    payload, nets = load_grape(grape_model, device)
    size = int(payload["config"]["image_size"])
    trunk = nets["style_encoder"].trunk
    for path, out in ((source_path, source_out), (cells_path, screen_out)):
        images = CellImages(path, size, device, cfg["data_in_memory"], cfg["memory_fraction"])
        feats = trunk_features(trunk, images)
        write_features(out, feats)
        log.info("GRAPE features of %s: %s", path, feats.shape)
