"""IST (Interventional Style Transfer, Pernice et al. 2023): the networks (losses: opsembed.train.ist_trainer).

Shapes: B = batch, C = image channels, S = side (a multiple of 8), w = base width,
G = genes in the vocabulary, K = observational environments (OEs, e.g. plate/well).

- ``ResNet18IN``: a pre-activation ResNet-18 with instance norm, built from
  ``opsembed.models.blocks.ResBlk``: a 3 x 3 stem conv (C -> w) at S, then four stages of
  two residual blocks (16 convs), widths w, 2w, 4w, 8w at sides S, S/2, S/4, S/8.
  Together with a linear head that is the 18 weight layers of a ResNet-18; the stem has
  no stride or max-pool because crops are small (32-96 px). ``maps(x)`` returns the four
  stage outputs; ``pooled(maps)`` is the penultimate feature (B, 8w): a last instance norm,
  LeakyReLU and global average pool, or without that norm (``pool_norm`` False, IST's
  ``ood.ist.pool_norm``: an instance norm right before the average pool removes each
  channel's spatial mean and scale, the very statistics a stain gain or background shifts).
- ``MultiTaskEncoder`` E: the trunk plus a gene head (G) and an OE head (K).
- ``style_code(maps)``: v = per-layer (mean, std) over space of E's four stage maps,
  concatenated as [mean_1, std_1, ..., mean_4, std_4]: (B, 2 * 15 w) = (B, 30 w).
- ``UNetGenerator`` G: decodes E's maps of the content image back to an image, with
  skip connections from E's stages and AdaIN layers driven by v that start as classic
  AdaIN (the style image's statistics of the matching E layer).
- ``MultiTaskCritic`` D: a copy of E's trunk (initialised from E's weights) and one
  real/fake logit per OE; the head of each sample's OE is returned.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import AdaIN, ResBlk, check_image_size, he_init, zero_conv

STAGE_SCALE = (1, 2, 4, 8)
"""Width multiple of each stage (stage i has width STAGE_SCALE[i] * w, side S / 2^i)."""

MODEL_KEYS = ("image_size", "width", "pool_norm", "residual")
"""Config keys that shape the IST networks (stored with the weights)."""


def style_dim(width: int) -> int:
    """Length of the style code v for base width ``width``: 2 * (1 + 2 + 4 + 8) * width."""
    return 2 * sum(STAGE_SCALE) * width


class ResNet18IN(nn.Module):
    """Pre-activation ResNet-18 trunk with instance norm: (B, C, S, S) -> stage maps."""

    def __init__(self, in_channels: int, width: int, pool_norm: bool = True):
        super().__init__()
        self.pool_norm = bool(pool_norm)
        widths = [s * width for s in STAGE_SCALE]
        self.out_dim = widths[-1]
        self.stem = nn.Conv2d(in_channels, width, 3, 1, 1)
        stages = []
        prev = width
        for i, w in enumerate(widths):
            stages.append(nn.Sequential(ResBlk(prev, w, normalize=True, downsample=i > 0),
                                        ResBlk(w, w, normalize=True)))
            prev = w
        self.stages = nn.ModuleList(stages)
        self.head_norm = nn.InstanceNorm2d(widths[-1], affine=True)

    def maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four stage outputs: [(B, w, S, S), (B, 2w, S/2, S/2), (B, 4w, S/4, S/4), (B, 8w, S/8, S/8)]."""
        h = self.stem(x)
        out = []
        for stage in self.stages:
            h = stage(h)
            out.append(h)
        return out

    def pooled(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Penultimate feature (B, 8w): norm (when ``pool_norm``), LeakyReLU(0.2), global average
        pool of the last map. The norm's parameters exist either way (same state dict)."""
        h = self.head_norm(maps[-1]) if self.pool_norm else maps[-1]
        return F.leaky_relu(h, 0.2).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate feature (B, 8w)."""
        return self.pooled(self.maps(x))


def style_code(maps: list[torch.Tensor], eps: float = 1e-5) -> torch.Tensor:
    """v: per-map channel mean and std over space, (B, 2 * sum of channels) = (B, 30 w).

    Order: [mean of map 1 (w), std of map 1 (w), mean of map 2 (2w), std of map 2, ...].
    std = sqrt(biased variance + eps).
    """
    parts = []
    for m in maps:
        mean = m.mean(dim=(2, 3))
        std = (m.var(dim=(2, 3), unbiased=False) + eps).sqrt()
        parts += [mean, std]
    return torch.cat(parts, dim=1)


def gram(m: torch.Tensor) -> torch.Tensor:
    """Gram matrix of a map (B, c, h, w): (B, c, c) = F F^T / (c h w), F = m as (B, c, h w)."""
    b, c, h, w = m.shape
    f = m.reshape(b, c, h * w).float()
    return f @ f.transpose(1, 2) / (c * h * w)


class MultiTaskEncoder(nn.Module):
    """E: ResNet18IN trunk with a gene head (B, G) and an OE head (B, K)."""

    def __init__(self, in_channels: int, width: int, n_genes: int, n_oes: int, pool_norm: bool = True):
        super().__init__()
        self.trunk = ResNet18IN(in_channels, width, pool_norm)
        self.gene_head = nn.Linear(self.trunk.out_dim, n_genes)
        self.oe_head = nn.Linear(self.trunk.out_dim, n_oes)

    def maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.trunk.maps(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(gene logits (B, G), OE logits (B, K))."""
        h = self.trunk(x)
        return self.gene_head(h), self.oe_head(h)


def style_slices(width: int) -> list[tuple[slice, slice]]:
    """(mean slice, std slice) of each of E's four maps within the style code v."""
    out, start = [], 0
    for scale in STAGE_SCALE:
        c = scale * width
        out.append((slice(start, start + c), slice(start + c, start + 2 * c)))
        start += 2 * c
    return out


class LayerAdaIN(AdaIN):
    """AdaIN on the channels of E's map ``stage``, driven by the whole style code v.

    ``reset_classic`` sets it to classic AdaIN: (1 + gamma) = that map's std and beta = its
    mean in v, so it gives each channel the style image's statistics of the matching E
    layer; it is trainable from there.
    """

    def __init__(self, width: int, stage: int):
        super().__init__(style_dim(width), STAGE_SCALE[stage] * width)
        self.width, self.stage = width, stage
        self.reset_classic()

    @torch.no_grad()
    def reset_classic(self) -> None:
        c = STAGE_SCALE[self.stage] * self.width
        mean, std = style_slices(self.width)[self.stage]
        self.fc.weight.zero_()
        self.fc.bias.zero_()
        self.fc.weight[:c, std] = torch.eye(c)          # gamma = std - 1
        self.fc.bias[:c] = -1.0
        self.fc.weight[c:, mean] = torch.eye(c)         # beta = mean


class UNetGenerator(nn.Module):
    """G: content maps of E (see ResNet18IN.maps) + style v (B, 30 w) -> image (B, C, S, S).

    A UNet decoder over E's four maps f1..f4 (widths w, 2w, 4w, 8w at S .. S/8). At each
    side, the decoder stream h and the skip f_l of the content are both passed through
    AdaIN layers driven by v (``LayerAdaIN``: they start as classic AdaIN with the style
    image's per-channel mean and std of the same E layer), concatenated, and merged by a
    residual block; nearest-neighbour upsampling between sides. Finally AdaIN at S,
    LeakyReLU and a 1 x 1 conv to C channels. Outputs are unbounded z-scores.

    ``residual`` (``ood.ist.residual``; False in the paper): the output is the content image
    plus that conv's output, the conv zero at initialisation (``zero_residual``), so the
    untrained G returns its input and learns only the change; ``forward`` then needs ``x``.
    """

    def __init__(self, out_channels: int, width: int, residual: bool = False):
        super().__init__()
        self.residual = bool(residual)
        w = [s * width for s in STAGE_SCALE]
        self.bottom = LayerAdaIN(width, 3)
        self.bottom_block = ResBlk(w[3], w[2])                         # S/8, then up to S/4
        self.skip_norms = nn.ModuleList([LayerAdaIN(width, i) for i in (2, 1, 0)])
        self.stream_norms = nn.ModuleList([LayerAdaIN(width, i) for i in (2, 1, 0)])
        self.blocks = nn.ModuleList([ResBlk(2 * w[2], w[1]),           # S/4, then up to S/2
                                     ResBlk(2 * w[1], w[0]),           # S/2, then up to S
                                     ResBlk(2 * w[0], w[0])])          # S
        self.out_norm = LayerAdaIN(width, 0)
        self.to_img = nn.Conv2d(w[0], out_channels, 1)

    @torch.no_grad()
    def zero_residual(self) -> None:
        """Zero the last conv (for ``residual``: G starts as the identity)."""
        zero_conv(self.to_img)

    def forward(self, maps: list[torch.Tensor], v: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """maps: E's maps of the content; v (B, 30 w); x: the content image (B, C, S, S), needed
        (and used) only when ``residual``."""
        h = self.bottom_block(self.bottom(maps[3], v))
        for i, (skip, block) in enumerate(zip((maps[2], maps[1], maps[0]), self.blocks)):
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = block(torch.cat([self.stream_norms[i](h, v), self.skip_norms[i](skip, v)], dim=1))
        out = self.to_img(F.leaky_relu(self.out_norm(h, v), 0.2))
        if self.residual:
            if x is None:
                raise ValueError("a residual IST generator needs the content image x")
            out = x + out
        return out


class MultiTaskCritic(nn.Module):
    """D: images (B, C, S, S), OE ids (B,) -> real/fake logits (B,), one head per OE."""

    def __init__(self, trunk: ResNet18IN, n_oes: int):
        super().__init__()
        self.trunk = trunk
        self.heads = nn.Linear(trunk.out_dim, n_oes)

    def forward(self, x: torch.Tensor, oe: torch.Tensor) -> torch.Tensor:
        return self.heads(self.trunk(x)).gather(1, oe[:, None]).squeeze(1)


def build_ist(in_channels: int, n_genes: int, n_oes: int, cfg: dict) -> nn.ModuleDict:
    """``encoder`` (E), ``generator`` (G) and ``critic`` (D), He-initialised (G's AdaIN layers
    then set to classic AdaIN, see ``LayerAdaIN``). ``cfg``: ``image_size``, ``width`` and
    ``pool_norm`` and ``residual`` (absent, as in model files written before they existed:
    True and False).

    Call ``init_critic_from_encoder`` once E is trained. Draws from torch's global RNG.
    """
    check_image_size(cfg["image_size"])
    width, pool_norm = int(cfg["width"]), bool(cfg.get("pool_norm", True))
    encoder = MultiTaskEncoder(in_channels, width, n_genes, n_oes, pool_norm)
    nets = nn.ModuleDict({
        "encoder": encoder,
        "generator": UNetGenerator(in_channels, width, bool(cfg.get("residual", False))),
        "critic": MultiTaskCritic(ResNet18IN(in_channels, width, pool_norm), n_oes),
    })
    nets.apply(he_init)
    for module in nets["generator"].modules():
        if isinstance(module, LayerAdaIN):
            module.reset_classic()
    if nets["generator"].residual:
        nets["generator"].zero_residual()
    return nets


def init_critic_from_encoder(nets: nn.ModuleDict) -> None:
    """Copy E's trunk weights into D's trunk (D's per-OE heads keep their own init)."""
    nets["critic"].trunk.load_state_dict(copy.deepcopy(nets["encoder"].trunk.state_dict()))


def restyle(encoder: MultiTaskEncoder, generator: UNetGenerator, content: torch.Tensor,
            style: torch.Tensor) -> torch.Tensor:
    """x_hat = G(E(content), v(E(style))): content (B, C, S, S) re-imaged in style's OE."""
    return generator(encoder.maps(content), style_code(encoder.maps(style)), content)
