"""Ada-GVAE pieces on hand-made posteriors; Source/screen pair samplers; the Source dataset."""

import math

import numpy as np
import pytest
import torch

from opsembed.models.vae import (adaptive_mask, aggregate, build_vae, kl_normal, kl_standard, pair_kl,
                                 pair_loss, shared_posterior, warmup_beta)
from opsembed.train.vae_pairs import ScreenPairs, SourcePairs


def test_kl_normal_matches_closed_form_and_torch():
    # KL(N(0, 1) || N(1, 4)) = 0.5 (log 4 + (1 + 1) / 4 - 1)
    got = kl_normal(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor([math.log(4.0)]))
    assert got.item() == pytest.approx(0.5 * (math.log(4) + 0.5 - 1))
    g = torch.Generator().manual_seed(0)
    m1, m2, lv1, lv2 = (torch.randn(5, 7, generator=g) for _ in range(4))
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(m1, (0.5 * lv1).exp()),
                                            torch.distributions.Normal(m2, (0.5 * lv2).exp()))
    assert torch.allclose(kl_normal(m1, lv1, m2, lv2), ref, atol=1e-5)
    assert kl_standard(torch.tensor([1.0]), torch.tensor([0.0])).item() == pytest.approx(0.5)
    sym = pair_kl(m1, lv1, m2, lv2)
    assert torch.allclose(sym, 0.5 * (ref + kl_normal(m2, lv2, m1, lv1)))
    assert torch.allclose(pair_kl(m1, lv1, m2, lv2, symmetric=False), ref, atol=1e-5)


def test_adaptive_mask_threshold_is_midpoint_of_min_and_max():
    delta = torch.tensor([[0.0, 1.0, 2.0, 10.0],     # tau 5: only dim 3
                          [0.0, 4.0, 6.0, 10.0],     # tau 5: dims 2, 3
                          [3.0, 3.0, 3.0, 3.0]])     # all equal: none above
    assert adaptive_mask(delta).tolist() == [[False, False, False, True], [False, False, True, True],
                                             [False, False, False, False]]


@pytest.mark.parametrize("mode", ["gvae", "mlvae"])
def test_aggregate_keeps_exactly_the_dimensions_that_differ(mode):
    # two pairs; pair 0 differs in dims 1 and 3, pair 1 in dim 0 only; other dims nearly equal
    mean1 = torch.tensor([[0.0, 0.0, 0.5, 0.0, 1.0], [0.0, 2.0, 0.0, 0.0, 0.0]])
    mean2 = torch.tensor([[0.05, 3.0, 0.5, -3.0, 1.0], [4.0, 2.0, 0.1, 0.0, 0.0]])
    logvar1 = torch.full((2, 5), -2.0)
    logvar2 = torch.full((2, 5), -1.0)
    (a1, b1), (a2, b2), keep = aggregate(mean1, logvar1, mean2, logvar2, mode)
    assert keep.tolist() == [[False, True, False, True, False], [True, False, False, False, False]]
    assert torch.equal(a1[keep], mean1[keep]) and torch.equal(a2[keep], mean2[keep])
    assert torch.equal(b1[keep], logvar1[keep]) and torch.equal(b2[keep], logvar2[keep])
    shared = ~keep
    assert torch.equal(a1[shared], a2[shared]) and torch.equal(b1[shared], b2[shared])
    v1, v2 = math.exp(-2.0), math.exp(-1.0)
    if mode == "gvae":
        assert torch.allclose(a1[shared], 0.5 * (mean1 + mean2)[shared])
        assert torch.allclose(b1[shared], torch.full_like(b1[shared], math.log(0.5 * (v1 + v2))))
    else:
        var = 1 / (1 / v1 + 1 / v2)
        assert torch.allclose(b1[shared], torch.full_like(b1[shared], math.log(var)))
        assert torch.allclose(a1[shared], (var * (mean1 / v1 + mean2 / v2))[shared])


def test_shared_posterior_rejects_unknown_mode():
    x = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="aggregation"):
        shared_posterior(x, x, x, x, "mean")


def test_warmup_beta_is_linear():
    assert [warmup_beta(4.0, s, 4) for s in (0, 1, 3, 10)] == [1.0, 2.0, 4.0, 4.0]
    assert warmup_beta(4.0, 0, 0) == 4.0


@pytest.mark.parametrize("cfg,shape", [
    ({"input_kind": "pixels", "image_size": 16, "conv_dims": [8, 8], "input_dim": 0}, (3, 2, 16, 16)),
    ({"input_kind": "features", "image_size": 16, "conv_dims": [8], "input_dim": 12}, (3, 12, 1, 1)),
])
def test_networks_reconstruct_their_input_shape_and_the_loss_backpropagates(cfg, shape, one_thread):
    nets = build_vae(shape[1], {"latent_dim": 4, "hidden_dim": 16, **cfg})
    x1, x2 = torch.randn(shape), torch.randn(shape)
    mean, logvar = nets["encoder"](x1)
    assert mean.shape == logvar.shape == (3, 4)
    assert nets["decoder"](mean).shape == shape
    out = pair_loss(nets, x1, x2, beta=2.0, generator=torch.Generator().manual_seed(0))
    assert torch.isclose(out["loss"], out["recon"] + 2.0 * out["kl"])
    assert 0.0 <= out["shared"].item() < 1.0
    out["loss"].backward()
    assert all(p.grad is not None for p in nets.parameters())


def test_build_vae_rejects_image_size_not_divisible():
    with pytest.raises(ValueError, match="multiple of 4"):
        build_vae(1, {"latent_dim": 2, "hidden_dim": 4, "input_kind": "pixels", "image_size": 18,
                      "conv_dims": [4, 4], "input_dim": 0})


def source_grid(sizes, repeats):
    grid = np.stack(np.unravel_index(np.arange(int(np.prod(sizes))), sizes), axis=1)
    return np.repeat(grid, repeats, axis=0)


def test_source_pairs_share_exactly_the_factors_they_claim():
    sizes = [3, 2, 4, 3, 2]
    indices = source_grid(sizes, 2)
    pairs = SourcePairs(indices, sizes, batch_size=500, seed=0)
    a, b, shared = pairs.draw_pairs(7)
    fa, fb = indices[a], indices[b]
    assert np.array_equal(fa == fb, shared)          # shared factors equal, the others differ
    n_diff = (~shared).sum(axis=1)
    assert n_diff.min() == 1 and n_diff.max() == len(sizes) - 1
    assert set(np.unique(n_diff)) == set(range(1, len(sizes)))
    # both repeats of a combination are used, and the draw is a function of the step
    assert len(set(b % 2)) == 2
    a2, b2, _ = SourcePairs(indices, sizes, 500, seed=0).draw_pairs(7)
    assert np.array_equal(a, a2) and np.array_equal(b, b2)
    assert not np.array_equal(a, pairs.draw_pairs(8)[0])
    views = pairs.views()
    rows_b, labels = views["b"].draw(7, torch.device("cpu"))
    assert np.array_equal(rows_b.numpy(), b) and labels.dtype == torch.long


def test_source_pairs_need_every_combination():
    sizes = [2, 2]
    with pytest.raises(Exception, match="no row"):
        SourcePairs(source_grid(sizes, 1)[:3], sizes, 4, 0)


def test_screen_pairs_follow_their_scheme():
    genes = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    plates = np.array(["P1", "P2", "P2", "P1", "P1", "P1", "P2", "P1"])
    for scheme in ("gene_other_plate", "plate_other_gene", "augment"):
        a, b, which = ScreenPairs(genes, plates, [scheme], 200, seed=1).draw_pairs(0)
        if scheme == "gene_other_plate":
            assert (genes[a] == genes[b]).all()
            other = genes[a] != 1                        # gene 1 has cells on P1 only
            assert (plates[a][other] != plates[b][other]).all()
            assert (plates[a][~other] == plates[b][~other]).all() and (~other).any()
        elif scheme == "plate_other_gene":
            assert (plates[a] == plates[b]).all() and (genes[a] != genes[b]).all()
        else:
            assert np.array_equal(a, b)
    _, _, which = ScreenPairs(genes, plates, ["augment", "gene_other_plate"], 200, seed=1).draw_pairs(0)
    assert set(which) == {0, 1}
    with pytest.raises(Exception, match="unknown"):
        ScreenPairs(genes, plates, ["same_well"], 4, 0)


def test_source_dataset_small_grid(tmp_path):
    from opsembed.io.h5 import read_attrs, read_crop_range, read_obs
    from opsembed.simulate.factors import write_source

    factors = {"nucleus_radius": ("px", (7.0, 13.0)), "actin_intensity": ("relative", (0.5, 1.5)),
               "cell_angle": ("radians", (0.0, 1.0, 2.0))}
    path = tmp_path / "source.h5"
    write_source(path, ["DNA", "gH2AX", "tubulin", "actin"], 48, 16, repeats=2, seed=3, low=0.1, high=99.9, factors=factors)
    obs, attrs = read_obs(path), read_attrs(path)
    assert len(obs) == 2 * 2 * 3 * 2 and list(attrs["factors"]) == list(factors)
    assert list(attrs["factor_sizes"]) == [2, 2, 3]
    x = read_crop_range(path, 0, len(obs))
    assert x.shape == (24, 4, 16, 16) and np.isfinite(x).all()
    # the bigger nucleus shows more DNA signal; brighter actin more actin signal
    big = obs["nucleus_radius"] == 13.0
    assert x[big.to_numpy(), 0].mean() > x[~big.to_numpy(), 0].mean() + 0.3
    bright = (obs["actin_intensity"] == 1.5).to_numpy()
    assert x[bright, 3].mean() > x[~bright, 3].mean() + 0.3
    # seeded
    write_source(tmp_path / "again.h5", ["DNA", "gH2AX", "tubulin", "actin"], 48, 16, 2, 3, 0.1, 99.9, factors=factors)
    assert np.array_equal(read_crop_range(tmp_path / "again.h5", 0, 24), x)


def test_train_resume_finetune_and_extract(tmp_path, one_thread):
    """A few steps on a tiny Source grid, resumed, fine-tuned on a tiny screen, then encoded."""
    import pandas as pd

    from opsembed.io.embeddings import read_embeddings
    from opsembed.io.h5 import write_cells_h5
    from opsembed.io.tables import read_table
    from opsembed.simulate.factors import write_source
    from opsembed.train.vae_extract import extract_vae
    from opsembed.train.vae_trainer import finetune_vae, load_vae, train_vae_source

    factors = {"nucleus_radius": ("px", (7.0, 13.0)), "actin_intensity": ("relative", (0.5, 1.5))}
    source = tmp_path / "source.h5"
    write_source(source, ["DNA", "actin"], 32, 16, repeats=2, seed=0, low=0.1, high=99.9, factors=factors)
    cfg = {"image_size": 16, "conv_dims": [8, 8], "hidden_dim": 16, "latent_dim": 3, "batch_size": 4,
           "iterations": 2, "finetune_iterations": 3, "checkpoint_every": 1, "log_every": 1, "device": "cpu",
           "progress_interval": 60}
    s = tmp_path / "s"
    train_vae_source(source, cfg, 0, s / "model.pt", s / "losses.tsv", s / "samples.png", s / "ckpt")
    first = load_vae(s / "model.pt", torch.device("cpu"))[1].state_dict()
    train_vae_source(source, {**cfg, "iterations": 4}, 0, s / "model.pt", s / "losses.tsv", s / "samples.png",
                     s / "ckpt")                                   # resumes at step 2
    assert read_table(s / "losses.tsv")["step"].tolist() == [1, 2, 3, 4]
    assert not torch.equal(first["encoder.head.3.weight"],
                           load_vae(s / "model.pt", torch.device("cpu"))[1].state_dict()["encoder.head.3.weight"])
    rng = np.random.default_rng(0)
    n = 12
    obs = pd.DataFrame({"cell_id": [f"c{i}" for i in range(n)], "gene": ["A", "B", "nt"] * 4,
                        "plate": ["P1"] * 6 + ["P2"] * 6})
    obs["batch"] = obs["plate"]
    cells = tmp_path / "cells.h5"
    write_cells_h5(cells, obs, [rng.normal(size=(n, 2, 16, 16)).astype(np.float32)],
                   {"channels": ["DNA", "actin"], "genes": ["A", "B", "nt"], "controls": "nt", "crop_size": 16})
    f = tmp_path / "f"
    finetune_vae(cells, s / "model.pt", cfg, 0, f / "model.pt", f / "losses.tsv", f / "samples.png", f / "ckpt")
    assert len(read_table(f / "losses.tsv")) == 3
    keys = ["source_source", "random_source", "source_screen", "finetuned_screen", "random_screen"]
    out = {k: tmp_path / f"{k}.tsv" for k in keys} | {"embeddings": tmp_path / "vae.tsv"}
    extract_vae(s / "model.pt", f / "model.pt", source, cells, cfg, 0, out)
    emb = read_embeddings(out["embeddings"])
    assert list(emb.index) == ["A", "B"] and emb.shape[1] == 3
    codes = read_table(out["finetuned_screen"])
    assert np.allclose(emb.loc["A"].to_numpy(), codes[codes["gene"] == "A"][["z_0", "z_1", "z_2"]].mean().to_numpy(),
                       atol=1e-5)
    assert len(read_table(out["source_source"])) == 8
