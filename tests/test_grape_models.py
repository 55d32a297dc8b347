"""GRAPE / IMPA networks: shapes, heads, initialisation (shared heads), attention switch."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from opsembed.models.blocks import AdaIN, AdainResBlk, ResBlk, channel_widths, he_init
from opsembed.models.grape import Discriminator, build_grape
from opsembed.models.impa import build_impa
from opsembed.train.grape_trainer import grape_config
from opsembed.train.impa_trainer import impa_config

TINY = {"image_size": 16, "dim_in": 4, "max_conv_dim": 8, "style_dim": 4, "embed_dim": 8, "mapping_hidden": 8}


def test_block_shapes():
    x = torch.randn(2, 4, 16, 16)
    s = torch.randn(2, 5)
    assert ResBlk(4, 8, normalize=True, downsample=True)(x).shape == (2, 8, 8, 8)
    assert ResBlk(4, 4)(x).shape == (2, 4, 16, 16)
    assert AdainResBlk(4, 2, 5, upsample=True)(x, s).shape == (2, 2, 32, 32)
    assert channel_widths(4, 10, 3) == [4, 8, 10, 10]


def test_adain_sets_per_sample_channel_statistics():
    ada = AdaIN(style_dim=2, num_features=3)
    with torch.no_grad():
        ada.fc.weight.zero_()
        ada.fc.bias.copy_(torch.tensor([1.0, 0.0, -0.5, 2.0, 3.0, -1.0]))  # gamma (3), beta (3)
    out = ada(torch.randn(2, 3, 8, 8) * 5 + 7, torch.zeros(2, 2))
    mean, std = out.mean((2, 3)), out.std((2, 3), unbiased=False)
    assert torch.allclose(mean, torch.tensor([2.0, 3.0, -1.0]).expand(2, 3), atol=1e-4)
    assert torch.allclose(std, torch.tensor([2.0, 1.0, 0.5]).expand(2, 3), atol=1e-3)   # |1 + gamma|


def test_he_init_std():
    conv = nn.Conv2d(64, 64, 3)
    he_init(conv)
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.05)
    assert conv.bias.abs().max().item() == 0


def test_grape_shapes_and_embedding(one_thread):
    cfg = grape_config(TINY)
    torch.manual_seed(0)
    nets = build_grape(n_genes=5, in_channels=3, cfg=cfg)
    x = torch.randn(6, 3, 16, 16)
    z = torch.tensor([0, 1, 2, 3, 4, 0])
    s = nets["style"](z)
    assert s.shape == (6, 4)
    assert torch.equal(s[0], s[5])                                   # same gene, same style
    assert nets["generator"](x, s).shape == (6, 3, 16, 16)
    assert nets["style_encoder"](x).shape == (6, 4)
    assert nets["discriminator"](x, z).shape == (6,)
    assert nets["style"].embedding.weight.shape == (5, 8)
    assert nets["style"].all_styles().shape == (5, 4)
    with pytest.raises(ValueError, match="multiple of 8"):
        build_grape(5, 3, grape_config({**TINY, "image_size": 20}))


def test_discriminator_returns_the_head_of_each_gene():
    torch.manual_seed(0)
    d = Discriminator(2, 16, n_genes=4, dim_in=4, max_conv_dim=8)
    x = torch.randn(3, 2, 16, 16)
    all_heads = torch.stack([d(x, torch.full((3,), g)) for g in range(4)], dim=1)   # (3, 4)
    y = torch.tensor([2, 0, 3])
    assert torch.equal(d(x, y), all_heads[torch.arange(3), y])
    assert not torch.allclose(all_heads[:, 0], all_heads[:, 1])


@pytest.mark.parametrize("shared", [True, False])
def test_shared_heads_start_equal_at_he_scale(shared):
    torch.manual_seed(0)
    d = build_grape(200, 2, grape_config({**TINY, "shared_heads": shared}))["discriminator"]
    w = d.heads.weight[:, :, 0, 0]                                  # (200 genes, 8 features)
    fan_in_std = math.sqrt(2 / 8)
    x = torch.randn(3, 2, 16, 16)
    logits = torch.stack([d(x, torch.full((3,), g)) for g in range(200)], dim=1)
    if shared:
        assert torch.equal(w, w[:1].expand_as(w))                   # one draw for every gene
        assert torch.equal(logits, logits[:, :1].expand_as(logits))
    else:
        assert w.std().item() == pytest.approx(fan_in_std, rel=0.1)  # independent He draws
        assert logits.std(dim=1).min() > 0
    assert d.heads.bias.abs().max().item() == 0


def test_attention_switch_changes_styles():
    torch.manual_seed(0)
    plain = build_grape(5, 2, grape_config(TINY))
    attn = build_grape(5, 2, grape_config({**TINY, "attention": True, "attention_heads": 2}))
    attn.load_state_dict(plain.state_dict(), strict=False)          # same M, F, G, E, D
    assert plain["style"].attention is None and attn["style"].attention is not None
    assert torch.equal(plain["style"].embedding.weight, attn["style"].embedding.weight)
    z = torch.arange(5)
    out = attn["style"](z)
    assert not torch.allclose(plain["style"](z), out)
    out.sum().backward()
    assert attn["style"].attention.attn.in_proj_weight.grad.abs().sum() > 0


def test_impa_frozen_table_is_a_buffer():
    table = np.arange(15, dtype=np.float32).reshape(5, 3)
    torch.manual_seed(0)
    nets = build_impa(5, 2, impa_config(TINY), table)
    names = [n for n, _ in nets["style"].named_parameters()]
    assert not any("frozen" in n or "embedding" in n for n in names)
    assert torch.equal(nets["style"].table(), torch.from_numpy(table))
    s = nets["style"](torch.tensor([1, 1]), torch.randn(2, 16))
    assert s.shape == (2, 4) and not torch.allclose(s[0], s[1])      # noise makes styles differ
    trainable = build_impa(5, 2, impa_config(TINY))
    assert trainable["style"].table().shape == (5, 8) and trainable["style"].table().requires_grad


@pytest.mark.parametrize("n_down, side", [(3, 2), (2, 4), (1, 8)])
def test_generator_bottleneck_follows_n_down(n_down, side):
    cfg = grape_config({**TINY, "n_down": n_down})
    torch.manual_seed(0)
    gen = build_grape(3, 2, cfg)["generator"]
    h = gen.from_img(torch.randn(2, 2, 16, 16))
    for block in gen.encode:
        h = block(h)
    assert h.shape[-2:] == (side, side)                              # 16 / 2^n_down
    assert gen(torch.randn(2, 2, 16, 16), torch.randn(2, 4)).shape == (2, 2, 16, 16)
    assert sum(b.upsample for b in gen.decode) == n_down


def test_n_down_must_divide_the_image_size():
    with pytest.raises(ValueError, match="multiple of 32"):
        build_grape(3, 2, grape_config({**TINY, "image_size": 48, "n_down": 5}))


@pytest.mark.parametrize("n_down", [2, 3])
def test_residual_generator_starts_as_the_identity_and_learns_away_from_it(n_down):
    cfg = grape_config({**TINY, "n_down": n_down, "residual": True, "skips": True})
    torch.manual_seed(0)
    nets = build_grape(3, 2, cfg)
    gen = nets["generator"]
    x = torch.randn(4, 2, 16, 16)
    s = nets["style"](torch.tensor([0, 1, 2, 0])).detach()
    assert torch.equal(gen(x, s), x)                                 # G(x, s) = x for any style
    opt = torch.optim.SGD(gen.parameters(), lr=0.1)
    target = x + 1.0
    for _ in range(3):
        opt.zero_grad()
        (gen(x, s) - target).abs().mean().backward()
        opt.step()
    assert (gen(x, s) - x).abs().mean() > 0.05                       # the zero conv does train


def test_skips_let_the_decoder_see_the_cell_besides_the_bottleneck():
    # Cut the bottleneck (every map after the downsampling blocks is zeroed): without skips the
    # output is then the same for every input; with skips it still follows the input.
    torch.manual_seed(0)
    x1, x2 = torch.randn(1, 2, 16, 16), torch.randn(1, 2, 16, 16)
    s = torch.zeros(1, TINY["style_dim"])
    gaps = {}
    for skips in (False, True):
        torch.manual_seed(0)
        cfg = grape_config({**TINY, "n_down": 2, "skips": skips, "residual": False})
        gen = build_grape(3, 2, cfg)["generator"].eval()
        for block in gen.encode[2:]:                                  # the two blocks at the bottleneck
            block.register_forward_hook(lambda module, args, out: out * 0)
        with torch.no_grad():
            gaps[skips] = float((gen(x1, s) - gen(x2, s)).abs().mean())
    assert gaps[False] == 0.0
    assert gaps[True] > 0.1


def test_old_model_files_and_the_paper_config_get_the_paper_generator():
    import yaml

    from opsembed.models.grape import LEGACY_KEYS, MODEL_KEYS
    assert LEGACY_KEYS == {"generator_dim_in": None, "n_down": 3, "skips": False, "residual": False,
                           "output_norm": "instance", "padding": "zeros", "d_pool": "conv"}
    assert set(LEGACY_KEYS) <= set(MODEL_KEYS)
    paper = yaml.safe_load(open(Path(__file__).parents[1] / "config" / "paper.yaml"))
    for block in (paper["methods"]["grape"], paper["methods"]["impa"], paper["ood"]["stargan"]):
        assert block["generator_dim_in"] is None and block["lambda_id"] == 0
    for method in ("grape", "impa"):
        block = paper["methods"][method]
        assert block["skips"] is False and block["residual"] is False
        assert block["output_norm"] == "instance" and block["padding"] == "zeros"
        assert block["d_pool"] == "conv"


def test_generator_dim_in_widens_only_the_generator():
    nets = build_grape(3, 2, grape_config({**TINY, "generator_dim_in": 6}))
    gen, disc, enc = nets["generator"], nets["discriminator"], nets["style_encoder"]
    assert gen.from_img.out_channels == 6 and gen.to_img[-1].in_channels == 6
    assert disc.trunk.from_img.out_channels == TINY["dim_in"] == enc.trunk.from_img.out_channels
    assert [b.conv2.out_channels for b in gen.encode[:3]] == [8, 8, 8]  # 6 doubled, capped at max_conv_dim
    x, s = torch.randn(2, 2, 16, 16), torch.randn(2, TINY["style_dim"])
    assert gen(x, s).shape == x.shape
    same = build_grape(3, 2, grape_config({**TINY, "generator_dim_in": None}))["generator"]
    assert same.from_img.out_channels == TINY["dim_in"]


@pytest.mark.parametrize("output_norm", ["instance", "adain", "none"])
def test_output_norm_decides_whether_the_delta_can_change_its_amplitude(output_norm):
    # Scale the last decoder map by 3: a norm before the last conv (instance, adain) undoes it, so
    # the output cannot follow how strong the decoder's signal is; without one it does. (With
    # adain the style sets the amplitude instead: the next test.)
    torch.manual_seed(0)
    cfg = grape_config({**TINY, "n_down": 2, "skips": False, "residual": True, "output_norm": output_norm})
    gen = build_grape(3, 2, cfg)["generator"].eval()
    nn.init.normal_(gen.to_img[-1].weight)                            # a delta that is not zero
    x, s = torch.randn(2, 2, 16, 16), torch.randn(2, 4)
    with torch.no_grad():
        plain = gen(x, s) - x
        hook = gen.decode[-1].register_forward_hook(lambda module, args, out: 3 * out)
        scaled = gen(x, s) - x
        hook.remove()
    change = float((scaled - plain).abs().max() / plain.abs().max())
    if output_norm in ("instance", "adain"):
        assert change < 1e-3
    else:
        assert change > 0.1


def test_adain_output_norm_lets_a_style_switch_the_delta_off():
    # AdaIN gain 1 + gamma = 0 and offset beta = 0 zero every map before LeakyReLU and the
    # bias-free last conv, so G(x, s) = x for that style whatever the conv's weights.
    torch.manual_seed(0)
    cfg = grape_config({**TINY, "n_down": 2, "skips": True, "residual": True, "output_norm": "adain"})
    gen = build_grape(3, 2, cfg)["generator"].eval()
    nn.init.normal_(gen.to_img[-1].weight)
    fc = gen.out_adain.fc
    with torch.no_grad():
        fc.weight.zero_()
        fc.bias.copy_(torch.cat([-torch.ones(fc.out_features // 2), torch.zeros(fc.out_features // 2)]))
        x = torch.randn(2, 2, 16, 16)
        assert torch.allclose(gen(x, torch.randn(2, 4)), x)
        fc.bias[0] = 0.0                                              # one map let through
        assert not torch.allclose(gen(x, torch.randn(2, 4)), x)


def test_output_norm_must_be_known():
    from opsembed.models.grape import Generator
    with pytest.raises(ValueError, match="output_norm"):
        Generator(2, 16, 4, 4, 8, output_norm="batch")


@pytest.mark.parametrize("padding", ["zeros", "reflect"])
def test_reflect_padding_gives_the_generator_no_position_signal(padding):
    # A constant image carries no position; with zero padding the borders add one (the output
    # varies across the crop), with reflect padding the output stays constant.
    torch.manual_seed(0)
    cfg = grape_config({**TINY, "n_down": 2, "skips": True, "residual": False, "output_norm": "none",
                        "padding": padding})
    gen = build_grape(3, 2, cfg)["generator"].eval()
    with torch.no_grad():
        out = gen(torch.full((1, 2, 16, 16), 0.7), torch.randn(1, 4))
    spread = float(out.std(dim=(2, 3)).max())
    if padding == "reflect":
        assert spread < 1e-5
    else:
        assert spread > 1e-2


def test_set_padding_changes_only_padded_convs_and_checks_the_mode():
    from opsembed.models.blocks import set_padding
    net = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, 1))
    set_padding(net, "reflect")
    assert [m.padding_mode for m in net] == ["reflect", "zeros"]
    with pytest.raises(ValueError, match="padding"):
        set_padding(net, "circularish")


class _Fixed(nn.Module):
    """Stands in for D's conv blocks: returns a given (B, w3, S/8, S/8) map whatever the image."""

    def __init__(self, h: torch.Tensor):
        super().__init__()
        self.h = h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.h


@pytest.mark.parametrize("pool", ["conv", "mean"])
def test_d_pool_mean_scores_every_place_alike(pool):
    """With d_pool mean, moving D's last maps around (here: swapping the 2 x 2 positions of a 16 px
    crop's S/8 maps) leaves D's logit as it is; the paper's conv collapse weighs each position
    by its own weights, so the logit changes."""
    torch.manual_seed(0)
    d = build_grape(3, 2, grape_config({**TINY, "d_pool": pool}))["discriminator"]
    assert d.trunk.collapse.kernel_size == ((2, 2) if pool == "conv" else (1, 1))
    h = torch.randn(1, d.trunk.out_dim, 2, 2)
    x, y = torch.zeros(1, 2, 16, 16), torch.tensor([1])
    scores = []
    for maps in (h, h.flip(2, 3)):
        d.trunk.blocks = _Fixed(maps)
        d.trunk.from_img = nn.Identity()
        with torch.no_grad():
            scores.append(float(d(x, y)))
    if pool == "mean":
        assert scores[0] == pytest.approx(scores[1], abs=1e-6)
    else:
        assert abs(scores[0] - scores[1]) > 1e-3
    with pytest.raises(ValueError, match="d_pool"):
        build_grape(3, 2, grape_config({**TINY, "d_pool": "max"}))
