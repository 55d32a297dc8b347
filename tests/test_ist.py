"""IST networks, losses (finite, reaching only the intended modules), training and resume."""

import numpy as np
import pytest
import torch

from ood_toy import write_toy_cells
from opsembed.io.errors import InputError
from opsembed.io.tables import read_table
from opsembed.models.ist import (LayerAdaIN, ResNet18IN, build_ist, gram, init_critic_from_encoder, restyle,
                                 style_code, style_dim)
from opsembed.models.restyler import load_restyler
from opsembed.train.ist_trainer import (critic_losses, generator_losses, ist_config, oe_effect_grams, pretrain_loss,
                                        reconstruction_loss, style_loss, style_targets, train_ist, transfer)

CFG = ist_config({"image_size": 16, "width": 2})
OOD = {"levels": [{"name": "plate", "columns": ["plate"], "max_folds": None}]}
TINY = {"image_size": 16, "width": 2, "batch_size": 4, "pretrain_iterations": 3, "iterations": 6,
        "log_every": 1, "checkpoint_every": 2, "device": "cpu", "num_workers": 0, "n_sample_cells": 2,
        "n_sample_oes": 2}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def nets():
    torch.manual_seed(0)
    return build_ist(in_channels=2, n_genes=5, n_oes=3, cfg=CFG)


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "cells.h5"
    write_toy_cells(path, size=16, per_well=2, n_genes=4)
    return path


def test_style_code_is_per_map_mean_and_std_in_documented_order(nets):
    x = torch.randn(3, 2, 16, 16)
    maps = nets["encoder"].maps(x)
    assert [tuple(m.shape[1:]) for m in maps] == [(2, 16, 16), (4, 8, 8), (8, 4, 4), (16, 2, 2)]
    v = style_code(maps)
    assert v.shape == (3, style_dim(2)) == (3, 60)
    m2 = maps[1]
    torch.testing.assert_close(v[:, 4:8], m2.mean(dim=(2, 3)))                   # after mean_1, std_1 (2 + 2)
    torch.testing.assert_close(v[:, 8:12], (m2.var(dim=(2, 3), unbiased=False) + 1e-5).sqrt())
    assert nets["encoder"](x)[0].shape == (3, 5) and nets["encoder"](x)[1].shape == (3, 3)


def test_gram_matrix_by_hand():
    m = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])                               # (1, 2, 1, 2)
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4
    torch.testing.assert_close(gram(m), expected)


def test_generator_restyles_to_image_shape_and_uses_the_style():
    torch.manual_seed(0)
    nets = build_ist(2, 5, 3, {**CFG, "residual": False})       # a residual G starts as the identity
    x, s1, s2 = torch.randn(2, 2, 16, 16), torch.randn(2, 2, 16, 16), 3 * torch.randn(2, 2, 16, 16) + 1
    out1 = restyle(nets["encoder"], nets["generator"], x, s1)
    assert out1.shape == x.shape
    assert not torch.allclose(out1, restyle(nets["encoder"], nets["generator"], x, s2))


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_generator_adain_starts_as_classic_adain_of_the_matching_e_layer(nets, stage):
    norms = [m for m in nets["generator"].modules() if isinstance(m, LayerAdaIN) and m.stage == stage]
    assert norms                                                   # built and re-initialised after He init
    s = 3 * torch.randn(2, 2, 16, 16) + 1
    maps = nets["encoder"].maps(s)
    h = torch.randn(2, maps[stage].shape[1], 4, 4) * 5 - 2
    for norm in norms:
        out = norm(h, style_code(maps))
        torch.testing.assert_close(out.mean(dim=(2, 3)), maps[stage].mean(dim=(2, 3)), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(out.var(dim=(2, 3), unbiased=False).sqrt(),
                                   (maps[stage].var(dim=(2, 3), unbiased=False) + 1e-5).sqrt(), atol=1e-3, rtol=1e-3)


def _grads(module):
    return [p.grad for p in module.parameters()]


def _has_grad(module):
    return any(g is not None and g.abs().sum() > 0 for g in _grads(module))


def test_residual_generator_starts_as_the_identity_and_the_paper_one_does_not():
    torch.manual_seed(0)
    x, s = torch.randn(3, 2, 16, 16), 3 * torch.randn(3, 2, 16, 16) + 1
    res = build_ist(2, 5, 3, {**CFG, "residual": True})
    torch.testing.assert_close(restyle(res["encoder"], res["generator"], x, s), x, rtol=0, atol=0)
    assert reconstruction_loss(res, x) == 0
    paper = build_ist(2, 5, 3, {**CFG, "residual": False})
    assert (restyle(paper["encoder"], paper["generator"], x, s) - x).abs().mean() > 0.1
    with pytest.raises(ValueError, match="content image"):
        res["generator"](res["encoder"].maps(x), style_code(res["encoder"].maps(s)))


def test_pool_norm_hides_a_gain_of_the_last_map_and_no_pool_norm_shows_it():
    torch.manual_seed(0)
    m = [torch.randn(2, 16, 2, 2) + 0.5]
    with_norm, without = ResNet18IN(2, 2, pool_norm=True), ResNet18IN(2, 2, pool_norm=False)
    torch.testing.assert_close(with_norm.pooled([3 * m[0]]), with_norm.pooled(m), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(without.pooled([3 * m[0]]), 3 * without.pooled(m))   # LeakyReLU is 1-homogeneous
    torch.testing.assert_close(without.pooled(m), torch.nn.functional.leaky_relu(m[0], 0.2).mean(dim=(2, 3)))
    assert ist_config({})["pool_norm"] is True and ist_config({})["residual"] is False   # demo defaults unchanged


def test_style_loss_l1_and_mse_by_hand():
    a = [torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]]), torch.ones(1, 1, 1, 1)]     # grams [[5,11],[11,25]]/4, [[1]]
    b = [torch.zeros(1, 2, 2), torch.zeros(1, 1, 1)]                                 # target Gram matrices
    l1 = (torch.tensor([5.0, 11, 11, 25]) / 4).mean() / 2 + 1.0 / 2                  # mean over the 2 maps
    mse = (torch.tensor([5.0, 11, 11, 25]) ** 2 / 16).mean() + 1.0                    # sum over the maps
    torch.testing.assert_close(style_loss(a, b, "l1"), l1)
    torch.testing.assert_close(style_loss(a, b, "mse"), mse)
    with pytest.raises(ValueError, match="l1 or mse"):
        style_loss(a, b, "l2")


def test_style_layers_choose_the_maps_of_the_style_loss(nets):
    nets = _frozen(nets)
    x, s = torch.randn(2, 2, 16, 16), 2 * torch.randn(2, 2, 16, 16)
    tr = transfer(nets, x, s)
    maps_f, maps_s = nets["encoder"].maps(tr[2]), tr[1]
    for layers in ([0], [1, 3]):
        g = generator_losses(nets, x, torch.tensor([0, 1]), tr, {**CFG, "style_layers": layers, "style_distance": "l1"})
        expected = sum((gram(maps_f[i]) - gram(maps_s[i])).abs().mean() for i in layers) / len(layers)
        torch.testing.assert_close(g["style"], expected)


class _IdentityMaps(torch.nn.Module):
    """A stand-in encoder whose four 'maps' are the image itself."""

    def maps(self, x):
        return [x] * 4


class _Rows:
    """A stand-in CellImages: get(rows) returns those rows of a tensor."""

    def __init__(self, x):
        self.x = x

    def get(self, rows):
        return self.x[torch.as_tensor(rows)]


def test_oe_effects_of_the_grams_are_free_of_the_genes_an_oe_holds():
    # one channel, one pixel: a cell's Gram is x^2. Gram = a(OE) + b(gene) with a = (0, 5), b = (1, 10);
    # OE 0 holds genes 0 and 1, OE 1 only gene 1. Mean per OE: 5.5 and 15 (difference 9.5);
    # the additive fit gives the OE effect alone (difference 5). OE 2 has no cells: 0.
    values = torch.tensor([1.0, 1.0, 10.0, 15.0, 15.0])
    x = values.sqrt()[:, None, None, None]
    oes, genes = np.array([0, 0, 0, 1, 1]), np.array([0, 0, 1, 1, 1])
    out = oe_effect_grams(_IdentityMaps(), _Rows(x), np.arange(5), oes, genes, n_oes=3, batch_size=2)
    assert len(out) == 4 and out[0].shape == (3, 1, 1)
    a = out[0][:, 0, 0]
    torch.testing.assert_close(a[1] - a[0], torch.tensor(5.0), atol=1e-4, rtol=0)
    assert a[2] == 0


def test_style_target_image_is_the_style_images_gram_and_oe_shift_moves_the_contents_own():
    x, s = torch.tensor([[[[1.0, 1.0]]]]), torch.tensor([[[[3.0, 3.0]]]])     # grams 1 and 9
    means = [torch.tensor([[[4.0]], [[10.0]]])] * 4                             # OE 0: 4, OE 1: 10
    x_oe, s_oe = torch.tensor([0]), torch.tensor([1])
    image = style_targets({"style_target": "image"}, [x] * 4, [s] * 4, x_oe, s_oe, None)
    shift = style_targets({"style_target": "oe_shift", "style_layers": [0, 2]}, [x] * 4, [s] * 4, x_oe, s_oe, means)
    assert [float(t) for t in image] == [9.0] * 4
    assert [float(t) for t in shift] == [7.0, 7.0]                              # 1 + (10 - 4), two layers


def test_pretrain_loss_trains_only_the_encoder(nets):
    x = torch.randn(4, 2, 16, 16)
    out = pretrain_loss(nets, x, torch.tensor([0, 1, 2, 3]), x, torch.tensor([0, 1, 2, 0]))
    assert all(torch.isfinite(v) for v in out.values())
    out["total"].backward()
    assert _has_grad(nets["encoder"].gene_head) and _has_grad(nets["encoder"].oe_head)
    assert not _has_grad(nets["generator"]) and not _has_grad(nets["critic"])


def _frozen(nets):
    init_critic_from_encoder(nets)
    nets["encoder"].requires_grad_(False)
    return nets


def test_critic_loss_trains_only_the_critic(nets):
    nets = _frozen(nets)
    x, s = torch.randn(4, 2, 16, 16), torch.randn(4, 2, 16, 16)
    oe = torch.tensor([0, 1, 2, 1])
    tr = transfer(nets, x, s)
    d = critic_losses(nets, s, oe, tr[2], r1_gamma=1.0)
    assert all(torch.isfinite(v) for v in d.values()) and d["r1"] > 0
    d["d_total"].backward()
    assert _has_grad(nets["critic"])
    assert not _has_grad(nets["generator"])
    assert all(g is None for g in _grads(nets["encoder"]))


@pytest.mark.parametrize("term", ["adv", "style", "cycle", "content", "class"])
def test_each_generator_loss_is_finite_and_reaches_only_the_generator(nets, term):
    nets = _frozen(nets)
    nets["critic"].requires_grad_(False)
    x, s = torch.randn(4, 2, 16, 16), torch.randn(4, 2, 16, 16) * 2
    g = generator_losses(nets, x, torch.tensor([0, 1, 2, 1]), transfer(nets, x, s), CFG)
    assert all(torch.isfinite(v) for v in g.values())
    g[term].backward()
    assert _has_grad(nets["generator"])
    assert all(p is None for p in _grads(nets["encoder"]) + _grads(nets["critic"]))


def test_generator_total_weights_the_terms():
    torch.manual_seed(1)
    nets = _frozen(build_ist(2, 5, 3, CFG))
    x, s, oe = torch.randn(2, 2, 16, 16), torch.randn(2, 2, 16, 16), torch.tensor([0, 2])
    lam = {f"lambda_{k}": w for k, w in zip(["adv", "style", "cycle", "content", "class"], [1, 2, 0, 3, 0.5])}
    g = generator_losses(nets, x, oe, transfer(nets, x, s), lam)
    expected = g["adv"] + 2 * g["style"] + 3 * g["content"] + 0.5 * g["class"]
    torch.testing.assert_close(g["g_total"], expected)


def test_critic_starts_as_a_copy_of_the_encoder(nets):
    init_critic_from_encoder(nets)
    for (k, a), (_, b) in zip(nets["encoder"].trunk.state_dict().items(), nets["critic"].trunk.state_dict().items()):
        torch.testing.assert_close(a, b, msg=k)


def test_resnet18_has_eighteen_weight_layers_with_a_head():
    trunk = ResNet18IN(3, 4)
    convs = [m for n, m in trunk.named_modules() if isinstance(m, torch.nn.Conv2d) and "shortcut" not in n]
    assert len(convs) == 17                                                        # + 1 linear head = 18


def test_config_rejects_unknown_keys_and_bad_phases():
    with pytest.raises(InputError, match="unknown key"):
        ist_config({"lamda_style": 1.0})
    with pytest.raises(ValueError, match="pretrain_iterations"):
        ist_config({"pretrain_iterations": 10, "iterations": 10})
    with pytest.raises(InputError, match="warmup_iterations"):
        ist_config({"pretrain_iterations": 10, "warmup_iterations": 5, "iterations": 15})


def test_warmup_trains_only_the_generator_to_reconstruct(cells, tmp_path):
    losses = _train(cells, tmp_path, iterations=7, warmup_iterations=2, residual=False)
    warm = losses[losses["step"].isin([4, 5])]
    assert (warm["content"] > 0).all() and (warm["g_total"] == warm["content"]).all()
    assert (warm[["adv", "style", "d_total", "gene_ce"]] == 0).all().all()
    assert (losses.loc[losses["step"] > 5, "adv"] > 0).all()


def _train(cells, out, **over):
    cfg = dict(TINY, **over)
    train_ist(cells, OOD, cfg, "plate-P1", 0, out / "model.pt", out / "losses.tsv", out / "samples.png", out / "ckpt")
    return read_table(out / "losses.tsv")


def test_training_freezes_the_encoder_and_resume_repeats_the_losses(cells, tmp_path):
    full = _train(cells, tmp_path / "full")
    assert list(full["step"]) == [1, 2, 3, 4, 5, 6]
    assert np.isfinite(full.drop(columns="step").to_numpy()).all()
    assert (full.loc[full["step"] <= 3, "g_total"] == 0).all() and (full.loc[full["step"] > 3, "g_total"] > 0).all()
    part = tmp_path / "part"
    _train(cells, part, iterations=4)                           # stops after a checkpoint at step 4
    resumed = _train(cells, part)                                # resumes at step 4
    np.testing.assert_allclose(resumed.to_numpy(), full.to_numpy(), rtol=0, atol=0)
    assert (tmp_path / "full" / "samples.png").stat().st_size > 0

    # the encoder after training equals the encoder at the end of pretraining
    pre = tmp_path / "pre"
    _train(cells, pre, iterations=4, pretrain_iterations=3)
    enc_full = load_restyler(tmp_path / "full" / "model.pt", torch.device("cpu")).nets["encoder"].state_dict()
    ckpt = torch.load(pre / "ckpt" / "last.pt", weights_only=True)                # step 4 = 3 pretrain + 1 GAN
    for k, v in enc_full.items():
        torch.testing.assert_close(v, ckpt["nets"][f"encoder.{k}"], msg=k)


def test_oe_shift_training_resumes_to_the_same_losses(cells, tmp_path):
    # the OEs' mean Grams are recomputed after a resume from the frozen encoder: same losses
    full = _train(cells, tmp_path / "full", style_target="oe_shift")
    part = tmp_path / "part"
    _train(cells, part, iterations=5, style_target="oe_shift")            # checkpoint at step 4, in the GAN phase
    resumed = _train(cells, part, style_target="oe_shift")
    np.testing.assert_allclose(resumed.to_numpy(), full.to_numpy(), rtol=0, atol=0)
    plain = _train(cells, tmp_path / "image")
    assert (full.loc[full["step"] > 3, "style"] != plain.loc[plain["step"] > 3, "style"]).all()


def test_the_sample_grid_says_its_columns_are_oes(cells, tmp_path, monkeypatch):
    import opsembed.train.loop as loop

    titles = []
    monkeypatch.setattr(loop, "save_grid_png", lambda path, mosaic, columns, title: titles.append((columns, title)))
    _train(cells, tmp_path, iterations=4)
    (columns, title), = titles
    assert title.startswith("ist: training cells (rows) re-imaged in the style of a cell of each OE (columns)")
    assert columns[0] == "input" and all("/" in c for c in columns[1:])          # OE labels plate/well


def test_restyler_loads_the_model_and_checks_the_fold(cells, tmp_path):
    _train(cells, tmp_path, iterations=4)
    r = load_restyler(tmp_path / "model.pt", torch.device("cpu"), fold="plate-P1")
    assert r.kind == "ist" and r.image_size == 16 and r.oes == ["P1/A1", "P1/A2", "P2/A1", "P2/A2", "P3/A1", "P3/A2"]
    assert r.train_oes == [2, 3, 4, 5]
    x = torch.randn(3, 2, 16, 16)
    assert r(x, torch.randn(3, 2, 16, 16), torch.tensor([2, 3, 4])).shape == x.shape
    with pytest.raises(InputError, match="plate-P2"):
        load_restyler(tmp_path / "model.pt", torch.device("cpu"), fold="plate-P2")
