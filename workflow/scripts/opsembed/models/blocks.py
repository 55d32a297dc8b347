"""Small building blocks of the StarGAN v2 family (GRAPE, IMPA): residual blocks, AdaIN.

Shapes use B = batch, C = channels, S = side length, D = style dimension.
Every residual block returns (shortcut + residual) / sqrt(2), so activations keep unit
scale through a deep stack. Activation is LeakyReLU(0.2) throughout.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def check_image_size(image_size: int, factor: int = 8) -> None:
    """Raise ValueError unless ``image_size`` is a positive multiple of ``factor`` (the
    image networks downsample three times: S -> S/8)."""
    if image_size <= 0 or image_size % factor:
        raise ValueError(f"image_size must be a positive multiple of {factor}, got {image_size}")


def he_init(module: nn.Module) -> None:
    """He (Kaiming) normal initialisation of every Conv2d and Linear weight; biases zero.

    Use as ``model.apply(he_init)``. Embeddings, norms and attention layers are left alone.
    """
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)


@torch.no_grad()
def zero_conv(conv: nn.Conv2d) -> None:
    """Zero the weight and bias of ``conv``: a residual branch that ends in it starts at 0, so
    ``x + branch(x)`` is the identity until training moves it."""
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


PADDINGS = ("zeros", "reflect")


def set_padding(module: nn.Module, mode: str) -> None:
    """Set the padding mode of every padded Conv2d in ``module`` to ``mode`` (PADDINGS):
    ``zeros`` (the default), or ``reflect``, which gives the borders no value of their own."""
    if mode not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {mode!r}")
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and any(p > 0 for p in m.padding):
            m.padding_mode = mode


def channel_widths(dim_in: int, max_conv_dim: int, n_blocks: int) -> list[int]:
    """Widths [dim_in, 2 dim_in, 4 dim_in, ...] capped at ``max_conv_dim``; n_blocks + 1 entries."""
    widths = [dim_in]
    for _ in range(n_blocks):
        widths.append(min(widths[-1] * 2, max_conv_dim))
    return widths


class ResBlk(nn.Module):
    """Pre-activation residual block: (B, dim_in, S, S) -> (B, dim_out, S', S').

    S' = S / 2 when ``downsample`` (average pooling), else S. ``normalize`` adds affine
    instance norm before each activation. The shortcut is a bias-free 1x1 conv when the
    width changes.
    """

    def __init__(self, dim_in: int, dim_out: int, normalize: bool = False, downsample: bool = False):
        super().__init__()
        self.downsample = downsample
        self.norm1 = nn.InstanceNorm2d(dim_in, affine=True) if normalize else nn.Identity()
        self.norm2 = nn.InstanceNorm2d(dim_in, affine=True) if normalize else nn.Identity()
        self.conv1 = nn.Conv2d(dim_in, dim_in, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim_in, dim_out, 3, 1, 1)
        self.shortcut_conv = nn.Conv2d(dim_in, dim_out, 1, bias=False) if dim_in != dim_out else None

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.shortcut_conv is not None:
            x = self.shortcut_conv(x)
        return F.avg_pool2d(x, 2) if self.downsample else x

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(F.leaky_relu(self.norm1(x), 0.2))
        if self.downsample:
            x = F.avg_pool2d(x, 2)
        return self.conv2(F.leaky_relu(self.norm2(x), 0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self._shortcut(x) + self._residual(x)) / math.sqrt(2)


class AdaIN(nn.Module):
    """Adaptive instance norm: (B, C, S, S), style (B, D) -> (B, C, S, S).

    Normalises each channel of each sample, then applies (1 + gamma) * x + beta with
    gamma, beta (B, C) predicted from the style by one linear layer.
    """

    def __init__(self, style_dim: int, num_features: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(num_features, affine=False)
        self.fc = nn.Linear(style_dim, num_features * 2)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.fc(s)[:, :, None, None].chunk(2, dim=1)
        return (1 + gamma) * self.norm(x) + beta


class AdainResBlk(nn.Module):
    """Residual block with AdaIN: (B, dim_in, S, S), style (B, D) -> (B, dim_out, S', S').

    S' = 2 S when ``upsample`` (nearest neighbour), else S.
    """

    def __init__(self, dim_in: int, dim_out: int, style_dim: int, upsample: bool = False):
        super().__init__()
        self.upsample = upsample
        self.norm1 = AdaIN(style_dim, dim_in)
        self.norm2 = AdaIN(style_dim, dim_out)
        self.conv1 = nn.Conv2d(dim_in, dim_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim_out, dim_out, 3, 1, 1)
        self.shortcut_conv = nn.Conv2d(dim_in, dim_out, 1, bias=False) if dim_in != dim_out else None

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.shortcut_conv(x) if self.shortcut_conv is not None else x

    def _residual(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.norm1(x, s), 0.2)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.conv1(x)
        return self.conv2(F.leaky_relu(self.norm2(x, s), 0.2))

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return (self._shortcut(x) + self._residual(x, s)) / math.sqrt(2)


class MLP(nn.Module):
    """``n_layers`` linear layers with ReLU between them: (B, dim_in) -> (B, dim_out)."""

    def __init__(self, dim_in: int, dim_out: int, hidden: int, n_layers: int = 3):
        super().__init__()
        dims = [dim_in] + [hidden] * (n_layers - 1) + [dim_out]
        layers: list[nn.Module] = []
        for i in range(n_layers):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < n_layers - 1:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
