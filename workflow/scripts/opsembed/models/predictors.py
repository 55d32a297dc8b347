"""Gene classifiers of the OOD benchmark and their anti-confounding pieces.

- ``GeneClassifier``: ResNet18IN trunk (see ``opsembed.models.ist``) and a linear gene head;
  optional MixStyle after chosen stages during training.
- ``grad_reverse``: identity forward, gradient times -alpha backward
  (domain-adversarial training, Ganin & Lempitsky 2015).
- ``mixstyle``: MixStyle (Zhou et al. 2021), mixing per-sample channel statistics with a
  partner from another OE.
- ``Predictor``: a trained predictor's model file, for inference.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from .blocks import check_image_size, he_init
from .files import read_model_file
from .ist import ResNet18IN
from .restyler import Restyler

MODEL_KEYS = ("image_size", "width", "pool_norm")
"""Config keys that shape a GeneClassifier (stored with the weights)."""


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.alpha = float(alpha)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.alpha * grad, None


def grad_reverse(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """Identity on the forward pass; multiplies the incoming gradient by -alpha on the backward pass."""
    return _GradReverse.apply(x, alpha)


def cross_oe_partners(oe: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A partner index (B,) per sample: uniform among the batch's samples of another OE,
    or uniform among the others when the whole batch shares one OE."""
    b = len(oe)
    other = oe[:, None] != oe[None, :]                                   # (B, B)
    if not other.any(dim=1).all():
        other = ~torch.eye(b, dtype=torch.bool, device=oe.device) if b > 1 else torch.ones_like(other)
    u = torch.rand((b, b), generator=gen, device=oe.device)
    return torch.where(other, u, torch.full_like(u, -1.0)).argmax(dim=1)


def mixstyle(h: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """MixStyle on (B, c, H, W): each sample's channel statistics become a mix of its own and its
    partner's.

    With mu, sig the per-sample, per-channel mean and std over space (detached, as in the
    paper) and lam (B,) in [0, 1]: out = sig_mix * (h - mu) / sig + mu_mix, where
    mu_mix = lam mu + (1 - lam) mu[partner] and sig_mix likewise. So each output channel has
    mean mu_mix and std sig_mix (up to eps).
    """
    mu = h.mean(dim=(2, 3), keepdim=True).detach()
    sig = (h.var(dim=(2, 3), keepdim=True, unbiased=False) + eps).sqrt().detach()
    lam = lam.to(h.dtype)[:, None, None, None]
    mu_mix = lam * mu + (1 - lam) * mu[partner]
    sig_mix = lam * sig + (1 - lam) * sig[partner]
    return (h - mu) / sig * sig_mix + mu_mix


class MixStyleSpec:
    """When and how to mix during one training forward pass.

    ``stages``: 0-based trunk stages after which to mix; ``partner`` (B,), ``lam`` (B,).
    """

    def __init__(self, stages, partner: torch.Tensor, lam: torch.Tensor):
        self.stages, self.partner, self.lam = set(stages), partner, lam


class GeneClassifier(nn.Module):
    """Images (B, C, S, S) -> gene logits (B, G); ``features`` gives the penultimate (B, 8 w)."""

    def __init__(self, in_channels: int, n_genes: int, cfg: dict):
        super().__init__()
        check_image_size(cfg["image_size"])
        self.trunk = ResNet18IN(in_channels, int(cfg["width"]), bool(cfg.get("pool_norm", True)))  # absent: True
        self.head = nn.Linear(self.trunk.out_dim, n_genes)
        self.apply(he_init)

    def features(self, x: torch.Tensor, mix: MixStyleSpec | None = None) -> torch.Tensor:
        """Penultimate features (B, 8 w); MixStyle after the stages in ``mix`` when given."""
        h = self.trunk.stem(x)
        maps = []
        for i, stage in enumerate(self.trunk.stages):
            h = stage(h)
            if mix is not None and i in mix.stages:
                h = mixstyle(h, mix.partner, mix.lam)
            maps.append(h)
        return self.trunk.pooled(maps)

    def forward(self, x: torch.Tensor, mix: MixStyleSpec | None = None) -> torch.Tensor:
        return self.head(self.features(x, mix))


class Predictor:
    """A trained predictor file: ``kind``, ``fold``, ``genes``, ``controls``, ``train_genes``,
    ``image_size``, training ``seed`` and the classifier (eval mode, on ``device``)."""

    def __init__(self, path: str | os.PathLike, device: torch.device):
        payload = read_model_file(path, "predictor", device)
        for key in ("kind", "fold", "genes", "controls", "train_genes", "oes"):
            setattr(self, key, payload[key])
        self.image_size = int(payload["config"]["image_size"])
        self.seed = int(payload["seed"])
        self.device = device
        self.net = GeneClassifier(len(payload["channels"]), len(self.genes), payload["config"])
        self.net.load_state_dict(payload["state"])
        self.net.to(device).eval().requires_grad_(False)
        self.mask = torch.full((len(self.genes),), float("-inf"), device=device)
        self.mask[torch.as_tensor(self.train_genes, dtype=torch.long)] = 0.0

    @torch.no_grad()
    def outputs(self, images, rows: np.ndarray, batch_size: int,
                restyler: Restyler | None = None, style_rows: np.ndarray | None = None,
                style_oes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (n, G) float64, zero for genes without training cells; penultimate
        features (n, d) float32) of the cells ``rows`` of ``images`` (anything whose
        ``get(rows)`` gives their crops (n, C, S, S) on the classifier's device, e.g.
        ``opsembed.train.data.CellImages``).

        With ``restyler`` and k ``style_rows`` (and their OE ids ``style_oes``), each cell is
        re-imaged into each style and the probabilities and features are averaged over the
        k versions (IST test-time correction).
        """
        probs, feats = [], []
        for start in range(0, len(rows), batch_size):
            x = images.get(rows[start:start + batch_size])
            views = [x]
            if restyler is not None:
                s = images.get(style_rows)
                oe = torch.as_tensor(style_oes, device=self.device)
                views = [restyler(x, s[i].expand_as(x), oe[i].expand(len(x))) for i in range(len(s))]
            p, f = 0.0, 0.0
            for v in views:
                h = self.net.features(v)
                p = p + (self.net.head(h).float() + self.mask).softmax(dim=1)
                f = f + h.float()
            probs.append((p / len(views)).double().cpu().numpy())
            feats.append((f / len(views)).cpu().numpy())
        return np.concatenate(probs), np.concatenate(feats)
