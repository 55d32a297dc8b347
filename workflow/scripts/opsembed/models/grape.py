"""GRAPE (Bigverdi, Höckendorf et al. 2024): a StarGAN v2 variant whose style comes from genes.

Networks, for C-channel S x S crops (S divisible by 8), G genes, style dimension D:

- ``GeneStyle``: embedding table M (G, d), optional self-attention over the whole table,
  then the mapping network F (3-layer MLP): gene ids (B,) -> styles s (B, D).
- ``Generator``: image (B, C, S, S) + style (B, D) -> image (B, C, S, S), ``generator_dim_in``
  channels wide at full resolution (``None``: ``dim_in``, the width of D and E). Encoder of
  ``n_down`` (paper: three) downsampling and two intermediate instance-norm residual blocks
  (S -> S / 2^n_down); decoder of two intermediate and ``n_down`` upsampling AdaIN residual
  blocks driven by s. No noise input. Two options the papers leave open, both off in the
  paper's setting (config/README.md has the measurements behind them):
  ``skips`` adds each encoder map to the decoder map of the same size (a U-Net's additive
  skips; StarGAN v2 has a high-pass variant for faces), so the decoder sees the cell at
  full resolution and not only through the S / 2^n_down bottleneck; ``residual`` makes the
  output x + delta(x, s), its last conv zero at initialisation, so that the untrained
  generator returns its input and training learns what a gene changes. ``output_norm``
  is the norm before the last (1 x 1) conv: ``instance`` (StarGAN v2, the paper), ``adain``
  (driven by s, like the decoder's) or ``none``. An instance norm there sets every
  image's feature maps to mean 0 and SD 1 whatever the style, which suits an output that is
  the image itself but leaves a residual delta no way to be small for one gene and large,
  or offset, for another (config/README.md has the measurement). ``padding`` is that of
  G's convolutions: ``zeros`` (StarGAN v2) lets the borders tell each pixel where it is, so
  G can paint a fixed template at the crop's centre; ``reflect`` keeps G close to
  translation-equivariant (a constant image in gives a constant image out), so a change has
  to follow the cell in the input.
- ``Discriminator``: image (B, C, S, S) + gene ids (B,) -> logits (B,): three downsampling
  residual blocks, a conv collapsing S/8 x S/8 to 1 x 1, a 1 x 1 conv with one output per
  gene; the head of each sample's gene is returned. ``d_pool`` ``mean`` (an option the
  papers leave open; they collapse by the conv) replaces the S/8 x S/8 conv by a 1 x 1 conv
  and a mean over positions: a weight per position lets D score each 8 x 8 px patch of the
  crop by where it lies, and so reward a generator for painting one fixed pattern at one
  place of every crop; the mean scores every patch alike. With ``shared_heads`` every gene's head
  starts from the same He draw, so the heads differ only by what they learn from the data.
- ``StyleEncoder``: image (B, C, S, S) -> style (B, D): the same trunk, then one fully
  connected layer (a single head shared by all genes).

All Conv2d and Linear weights get He initialisation; M is N(0, embed_init_std^2).
The IMPA baseline (``opsembed.models.impa``) reuses Generator, Discriminator and StyleEncoder.

Why ``shared_heads``: with independent draws, head z's random initial weights decide the
direction in which the adversarial loss pushes M_z, and in a short run they outweigh what
the head learns (demo: learned change 0.06 RMS against 0.25 at initialisation). Each row of
M then drifts in its own random direction and genes of one complex do not come together.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import (MLP, AdaIN, AdainResBlk, ResBlk, channel_widths, check_image_size, he_init, set_padding,
                     zero_conv)
from .files import read_model_file

N_DOWN = 3
"""Downsampling blocks of D and E, and the paper's for G: their last maps are S/8 x S/8."""

OUTPUT_NORMS = ("instance", "adain", "none")
"""Choices of the generator's norm before its last conv (``output_norm``, module docstring)."""

LEGACY_KEYS = {"generator_dim_in": None, "n_down": N_DOWN, "skips": False, "residual": False,
               "output_norm": "instance", "padding": "zeros", "d_pool": "conv"}
"""The generator's and discriminator's option keys (GRAPE's and IMPA's), at the values of model
files written before they existed."""

D_POOLS = ("conv", "mean")
"""Choices of the discriminator's collapse of its last S/8 x S/8 maps (``d_pool``, module docstring)."""

MODEL_KEYS = ("image_size", "dim_in", "max_conv_dim", "style_dim", "embed_dim", "embed_init_std",
              "mapping_hidden", "attention", "attention_heads", "shared_heads", *LEGACY_KEYS)
"""Config keys that shape or initialise the GRAPE networks (stored with the weights)."""


class Generator(nn.Module):
    """Restyle images: (B, C, S, S), style (B, D) -> (B, C, S, S). Outputs are unbounded (z-scores).

    ``skips``, ``residual``, ``output_norm`` and ``padding``: the module docstring. With ``residual``, call
    :meth:`zero_output` after any re-initialisation of the weights.
    """

    def __init__(self, in_channels: int, image_size: int, style_dim: int, dim_in: int,
                 max_conv_dim: int, n_mid: int = 2, n_down: int = N_DOWN, skips: bool = False,
                 residual: bool = False, output_norm: str = "instance", padding: str = "zeros"):
        super().__init__()
        if output_norm not in OUTPUT_NORMS:
            raise ValueError(f"output_norm must be one of {OUTPUT_NORMS}, got {output_norm!r}")
        check_image_size(image_size, max(8, 2 ** n_down))  # D and E downsample three times
        self.skips, self.residual = skips, residual
        w = channel_widths(dim_in, max_conv_dim, n_down)  # w[0] at S, w[n_down] at S / 2^n_down
        self.n_down = n_down
        self.from_img = nn.Conv2d(in_channels, w[0], 3, 1, 1)
        self.encode = nn.ModuleList(
            [ResBlk(w[i], w[i + 1], normalize=True, downsample=True) for i in range(n_down)]
            + [ResBlk(w[-1], w[-1], normalize=True) for _ in range(n_mid)])
        self.decode = nn.ModuleList(
            [AdainResBlk(w[-1], w[-1], style_dim) for _ in range(n_mid)]
            + [AdainResBlk(w[i + 1], w[i], style_dim, upsample=True) for i in reversed(range(n_down))])
        self.out_adain = AdaIN(style_dim, w[0]) if output_norm == "adain" else None
        norm = nn.InstanceNorm2d(w[0], affine=True) if output_norm == "instance" else nn.Identity()
        self.to_img = nn.Sequential(norm, nn.LeakyReLU(0.2), nn.Conv2d(w[0], in_channels, 1))
        self.zero_output()
        set_padding(self, padding)

    @torch.no_grad()
    def zero_output(self) -> None:
        """With ``residual``: zero the last conv, so that G(x, s) = x for every s (no-op otherwise)."""
        if self.residual:
            zero_conv(self.to_img[-1])

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        h = self.from_img(x)                 # (B, w0, S, S)
        skips = []                           # skips[i]: (B, w[i], S / 2^i, S / 2^i), i < n_down
        for i, block in enumerate(self.encode):
            if i < self.n_down:
                skips.append(h)
            h = block(h)                     # -> (B, w[n_down], S / 2^n_down, ...)
        n_mid = len(self.decode) - self.n_down
        for block in self.decode[:n_mid]:
            h = block(h, s)
        for block, skip in zip(self.decode[n_mid:], reversed(skips)):
            h = block(h, s)                  # doubles the side: -> (B, w0, S, S) after the last
            if self.skips:
                h = (h + skip) / math.sqrt(2)
        if self.out_adain is not None:
            h = self.out_adain(h, s)
        out = self.to_img(h)                 # (B, C, S, S)
        return x + out if self.residual else out


class _Trunk(nn.Module):
    """Shared trunk of D and E: (B, C, S, S) -> (B, w3) features. ``pool``: ``conv`` collapses the
    S/8 x S/8 maps by one conv of that size (a weight per position); ``mean`` by a 1 x 1 conv
    and the mean over positions."""

    def __init__(self, in_channels: int, image_size: int, dim_in: int, max_conv_dim: int, pool: str = "conv"):
        super().__init__()
        check_image_size(image_size)
        if pool not in D_POOLS:
            raise ValueError(f"d_pool must be one of {D_POOLS}, got {pool!r}")
        w = channel_widths(dim_in, max_conv_dim, N_DOWN)
        self.out_dim = w[-1]
        self.from_img = nn.Conv2d(in_channels, w[0], 3, 1, 1)
        self.blocks = nn.Sequential(*[ResBlk(w[i], w[i + 1], downsample=True) for i in range(N_DOWN)])
        kernel = image_size // 2 ** N_DOWN if pool == "conv" else 1
        self.collapse = nn.Conv2d(w[-1], w[-1], kernel)        # S/8 x S/8 -> 1 x 1 (conv) or S/8 x S/8 (mean)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.from_img(x))                       # (B, w3, S/8, S/8)
        h = self.collapse(F.leaky_relu(h, 0.2))                 # (B, w3, 1, 1) or (B, w3, S/8, S/8)
        return F.leaky_relu(h.mean(dim=(2, 3)), 0.2)            # (B, w3)


class Discriminator(nn.Module):
    """Multi-task discriminator: images (B, C, S, S), gene ids (B,) -> real/fake logits (B,)."""

    def __init__(self, in_channels: int, image_size: int, n_genes: int, dim_in: int, max_conv_dim: int,
                 pool: str = "conv"):
        super().__init__()
        self.trunk = _Trunk(in_channels, image_size, dim_in, max_conv_dim, pool)
        self.heads = nn.Conv2d(self.trunk.out_dim, n_genes, 1)  # one logit per gene

    @torch.no_grad()
    def share_heads(self) -> None:
        """Copy head 0's weight and bias into every head (after He initialisation)."""
        self.heads.weight.copy_(self.heads.weight[:1].expand_as(self.heads.weight))
        self.heads.bias.copy_(self.heads.bias[:1].expand_as(self.heads.bias))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x)[:, :, None, None]                     # (B, w3, 1, 1)
        logits = self.heads(h).flatten(1)                       # (B, G)
        return logits.gather(1, y[:, None]).squeeze(1)          # (B,)


class StyleEncoder(nn.Module):
    """Single-head style encoder: images (B, C, S, S) -> styles (B, D)."""

    def __init__(self, in_channels: int, image_size: int, style_dim: int, dim_in: int, max_conv_dim: int):
        super().__init__()
        self.trunk = _Trunk(in_channels, image_size, dim_in, max_conv_dim)
        self.fc = nn.Linear(self.trunk.out_dim, style_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.trunk(x))


class GeneAttention(nn.Module):
    """One self-attention block over the whole gene table: (G, d) -> (G, d).

    Every gene's row attends to all rows; residual connection, then layer norm.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, table: torch.Tensor) -> torch.Tensor:
        t = table[None]                                         # (1, G, d)
        out, _ = self.attn(t, t, t, need_weights=False)
        return self.norm(t + out)[0]


class GeneStyle(nn.Module):
    """Gene ids (B,) -> styles (B, D) through M (G, d), optional attention, then F."""

    def __init__(self, n_genes: int, embed_dim: int, style_dim: int, hidden: int,
                 attention: bool = False, heads: int = 1, init_std: float = 1.0):
        super().__init__()
        self.embedding = nn.Embedding(n_genes, embed_dim)
        self.init_std = init_std
        self.attention = GeneAttention(embed_dim, heads) if attention else None
        self.mapping = MLP(embed_dim, style_dim, hidden, n_layers=3)

    def reset_embedding(self) -> None:
        """Draw M afresh from N(0, init_std^2)."""
        nn.init.normal_(self.embedding.weight, std=self.init_std)

    def table(self) -> torch.Tensor:
        """The table the mapping network reads: M, or attention(M) when enabled. (G, d)."""
        m = self.embedding.weight
        return self.attention(m) if self.attention is not None else m

    def all_styles(self) -> torch.Tensor:
        """F applied to every gene's row: (G, D) (extraction position 2)."""
        return self.mapping(self.table())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mapping(self.table()[z])


def build_grape(n_genes: int, in_channels: int, cfg: dict) -> nn.ModuleDict:
    """All GRAPE networks from the model keys of ``cfg`` (see MODEL_KEYS), He-initialised.

    Returns a ModuleDict with ``style`` (GeneStyle), ``generator``, ``style_encoder`` and
    ``discriminator``. Draws from torch's global RNG: seed it first for reproducibility.
    """
    sdim = cfg["style_dim"]
    if cfg["attention"] and cfg["embed_dim"] % cfg["attention_heads"]:
        raise ValueError(f"embed_dim {cfg['embed_dim']} is not divisible by "
                         f"attention_heads {cfg['attention_heads']}")
    style = GeneStyle(n_genes, cfg["embed_dim"], sdim, cfg["mapping_hidden"], cfg["attention"],
                      cfg["attention_heads"], cfg["embed_init_std"])
    return stargan_networks(style, n_genes, in_channels, cfg, shared_heads=cfg["shared_heads"])


def stargan_networks(style: nn.Module, n_heads: int, in_channels: int, cfg: dict,
                     shared_heads: bool = False) -> nn.ModuleDict:
    """``style`` plus a StarGAN v2 ``generator``, ``style_encoder`` and ``discriminator``
    (``n_heads`` outputs) at the widths of ``cfg``, all He-initialised; then the style
    module's embedding gets its own initialisation (``style.reset_embedding()``) and, with
    ``shared_heads``, every discriminator head starts as head 0."""
    size, width, top, sdim = cfg["image_size"], cfg["dim_in"], cfg["max_conv_dim"], cfg["style_dim"]
    nets = nn.ModuleDict({
        "style": style,
        "generator": Generator(in_channels, size, sdim, cfg["generator_dim_in"] or width, top, n_down=cfg["n_down"],
                               skips=cfg["skips"], residual=cfg["residual"],
                               output_norm=cfg["output_norm"], padding=cfg["padding"]),
        "style_encoder": StyleEncoder(in_channels, size, sdim, width, top),
        "discriminator": Discriminator(in_channels, size, n_heads, width, top, cfg["d_pool"]),
    })
    nets.apply(he_init)
    nets["generator"].zero_output()
    nets["style"].reset_embedding()
    if shared_heads:
        nets["discriminator"].share_heads()
    return nets


def load_grape(model_path: str | os.PathLike, device: torch.device) -> tuple[dict, nn.ModuleDict]:
    """The payload of a GRAPE model file (``read_model_file``) and its networks, in eval mode
    on ``device``."""
    payload = read_model_file(model_path, "grape", device)
    payload["config"] = {**LEGACY_KEYS, **payload["config"]}
    nets = build_grape(len(payload["genes"]), len(payload["channels"]), payload["config"]).to(device)
    nets.load_state_dict(payload["state"])
    return payload, nets.eval()

