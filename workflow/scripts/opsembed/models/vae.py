"""Weakly supervised Ada-GVAE / Ada-ML-VAE (Locatello et al. 2020) for cell crops or features.

Shapes: B = pairs in a batch, d = latent size, C x S x S crops (conv nets) or D-dimensional
feature vectors (MLP nets). A posterior is a diagonal Gaussian given as (mean, log variance),
each (B, d).

Adaptive aggregation of a pair (x1, x2) that shares an unknown subset of factors:
1. per-dimension divergence delta_j between the pair's posteriors (``pair_kl``: the
   symmetric KL 0.5 (KL(q1||q2) + KL(q2||q1)) by default, or KL(q1||q2));
2. threshold tau = (min_j delta_j + max_j delta_j) / 2 per pair;
3. dimensions with delta_j > tau keep their own posteriors; the others are replaced, in
   both, by a shared one: the average (GVAE: mean of means, mean of variances) or the
   product of the two Gaussians (ML-VAE: precisions add).
Loss per pair: sum over both images of the reconstruction error (Gaussian, unit variance:
0.5 * squared error summed over pixels) plus beta * KL(aggregated posterior || N(0, I)).
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import check_image_size

MODEL_KEYS = ("image_size", "latent_dim", "conv_dims", "hidden_dim", "input_kind", "input_dim")
"""Config keys that shape the networks (stored in the model file)."""

AGGREGATIONS = ("gvae", "mlvae")


def kl_normal(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor,
              logvar2: torch.Tensor) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) per element (same shape as the inputs):
    0.5 * (logvar2 - logvar1 + (e^logvar1 + (mean1 - mean2)^2) / e^logvar2 - 1)."""
    return 0.5 * (logvar2 - logvar1 + (logvar1.exp() + (mean1 - mean2) ** 2) / logvar2.exp() - 1.0)


def kl_standard(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, e^logvar) || N(0, 1)) per element: 0.5 * (mean^2 + e^logvar - 1 - logvar)."""
    return 0.5 * (mean ** 2 + logvar.exp() - 1.0 - logvar)


def pair_kl(mean1, logvar1, mean2, logvar2, symmetric: bool = True) -> torch.Tensor:
    """Per-dimension divergence (B, d) between the posteriors of each pair (see module doc)."""
    forward = kl_normal(mean1, logvar1, mean2, logvar2)
    if not symmetric:
        return forward
    return 0.5 * (forward + kl_normal(mean2, logvar2, mean1, logvar1))


def adaptive_mask(delta: torch.Tensor) -> torch.Tensor:
    """Bool (B, d): True where a dimension keeps its own posterior, i.e. delta > tau with
    tau = (min + max) / 2 of each row of ``delta`` (B, d). A row of equal values keeps none."""
    tau = 0.5 * (delta.min(dim=1, keepdim=True).values + delta.max(dim=1, keepdim=True).values)
    return delta > tau


def shared_posterior(mean1, logvar1, mean2, logvar2, mode: str = "gvae") -> tuple[torch.Tensor, torch.Tensor]:
    """The posterior (mean, logvar) both images of a pair share: ``gvae`` the average
    (means and variances averaged), ``mlvae`` the product of experts (precisions add)."""
    if mode == "gvae":
        var = 0.5 * (logvar1.exp() + logvar2.exp())
        return 0.5 * (mean1 + mean2), var.log()
    if mode == "mlvae":
        prec1, prec2 = (-logvar1).exp(), (-logvar2).exp()
        var = 1.0 / (prec1 + prec2)
        return var * (mean1 * prec1 + mean2 * prec2), var.log()
    raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {mode!r}")


def aggregate(mean1, logvar1, mean2, logvar2, mode: str = "gvae", symmetric: bool = True):
    """Adaptive aggregation of a pair: ((mean1', logvar1'), (mean2', logvar2'), keep mask (B, d))."""
    keep = adaptive_mask(pair_kl(mean1, logvar1, mean2, logvar2, symmetric))
    mean_s, logvar_s = shared_posterior(mean1, logvar1, mean2, logvar2, mode)
    out1 = (torch.where(keep, mean1, mean_s), torch.where(keep, logvar1, logvar_s))
    out2 = (torch.where(keep, mean2, mean_s), torch.where(keep, logvar2, logvar_s))
    return out1, out2, keep


def reconstruction_error(x: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """0.5 * squared error summed over every non-batch axis: (B,)."""
    return 0.5 * (recon.float() - x.float()).pow(2).flatten(1).sum(dim=1)


class ConvEncoder(nn.Module):
    """(B, C, S, S) -> (mean, logvar), each (B, d). Stride-2 4x4 convs (widths ``conv_dims``,
    S halves per conv), then a hidden linear layer."""

    def __init__(self, channels: int, image_size: int, latent_dim: int, conv_dims, hidden_dim: int):
        super().__init__()
        layers, width = [], channels
        for dim in conv_dims:
            layers += [nn.Conv2d(width, dim, 4, 2, 1), nn.ReLU()]
            width = dim
        self.conv = nn.Sequential(*layers)
        side = image_size // 2 ** len(conv_dims)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(width * side * side, hidden_dim), nn.ReLU(),
                                  nn.Linear(hidden_dim, 2 * latent_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.head(self.conv(x)).chunk(2, dim=1)
        return mean, logvar


class ConvDecoder(nn.Module):
    """(B, d) -> (B, C, S, S): the encoder mirrored with 4x4 stride-2 transposed convs."""

    def __init__(self, channels: int, image_size: int, latent_dim: int, conv_dims, hidden_dim: int):
        super().__init__()
        dims = list(conv_dims)[::-1]
        self.side = image_size // 2 ** len(dims)
        self.width = dims[0]
        self.head = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.ReLU(),
                                  nn.Linear(hidden_dim, self.width * self.side ** 2), nn.ReLU())
        layers = []
        for i, dim in enumerate(dims):
            out = dims[i + 1] if i + 1 < len(dims) else channels
            layers.append(nn.ConvTranspose2d(dim, out, 4, 2, 1))
            if i + 1 < len(dims):
                layers.append(nn.ReLU())
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.head(z).view(len(z), self.width, self.side, self.side)
        return self.deconv(h)


class MLPEncoder(nn.Module):
    """(B, D) or (B, D, 1, 1) features -> (mean, logvar), each (B, d)."""

    def __init__(self, input_dim: int, latent_dim: int, hidden_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(input_dim, hidden_dim), nn.ReLU(),
                                 nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
                                 nn.Linear(hidden_dim, 2 * latent_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.net(x).chunk(2, dim=1)
        return mean, logvar


class MLPDecoder(nn.Module):
    """(B, d) -> (B, D, 1, 1) features (the layout ``train.data.CellImages`` holds them in)."""

    def __init__(self, input_dim: int, latent_dim: int, hidden_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.ReLU(),
                                 nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
                                 nn.Linear(hidden_dim, input_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)[:, :, None, None]


def build_vae(channels: int, cfg: dict) -> nn.ModuleDict:
    """{"encoder", "decoder"} for ``cfg["input_kind"]``: ``pixels`` (C x image_size^2 crops,
    ``channels`` = C) or ``features`` (``cfg["input_dim"]`` = D vectors)."""
    d, hidden = int(cfg["latent_dim"]), int(cfg["hidden_dim"])
    if cfg["input_kind"] == "features":
        dim = int(cfg["input_dim"])
        return nn.ModuleDict({"encoder": MLPEncoder(dim, d, hidden), "decoder": MLPDecoder(dim, d, hidden)})
    check_image_size(int(cfg["image_size"]), 2 ** len(cfg["conv_dims"]))  # S halves per conv block
    args = (channels, int(cfg["image_size"]), d, list(cfg["conv_dims"]), hidden)
    return nn.ModuleDict({"encoder": ConvEncoder(*args), "decoder": ConvDecoder(*args)})


def pair_loss(nets, x1: torch.Tensor, x2: torch.Tensor, beta: float, mode: str = "gvae",
              symmetric: bool = True, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Ada-GVAE loss of pairs (x1[i], x2[i]); ``nets`` maps encoder/decoder to callables.

    Returns scalars: ``recon`` and ``kl`` (per image, means over the 2B images), ``loss``
    (recon + beta * kl) and ``shared`` (mean fraction of dimensions shared per pair).
    """
    m1, lv1 = nets["encoder"](x1)
    m2, lv2 = nets["encoder"](x2)
    (a1, b1), (a2, b2), keep = aggregate(m1.float(), lv1.float(), m2.float(), lv2.float(), mode, symmetric)
    mean, logvar = torch.cat([a1, a2]), torch.cat([b1, b2])
    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    z = mean + (0.5 * logvar).exp() * noise
    recon = reconstruction_error(torch.cat([x1, x2]), nets["decoder"](z)).mean()
    kl = kl_standard(mean, logvar).sum(dim=1).mean()
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl,
            "shared": 1.0 - keep.float().mean()}


def warmup_beta(beta: float, step: int, warmup: int) -> float:
    """beta * min(1, (step + 1) / warmup) for 0-based ``step``; ``beta`` when warmup is 0."""
    return float(beta) if warmup <= 0 else float(beta) * min(1.0, (step + 1) / warmup)


def latent_traversal(decoder, base: torch.Tensor, dim: int, values: torch.Tensor) -> torch.Tensor:
    """Decode ``base`` (d,) with latent ``dim`` set to each of ``values`` (k,): (k, C, S, S)."""
    z = base.expand(len(values), -1).clone()
    z[:, dim] = values
    return decoder(z)


