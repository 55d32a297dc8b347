"""GRAPE training: finite losses, D learns, exact resume, NaN guard, ablations, extraction."""

import numpy as np
import pandas as pd
import pytest
import torch

from gan_cells import GENES, TINY, cells_h5  # noqa: F401  (fixtures)
from opsembed.io.embeddings import read_embeddings
from opsembed.io.errors import InputError
from opsembed.models.grape import build_grape
from opsembed.train.data import BalancedSampler, CellImages, crop_reader
from opsembed.train.grape_trainer import (GrapeTrainer, discriminator_losses, extract_grape, generator_losses,
                                          grape_config, grape_embeddings, train_grape)
from opsembed.train.loop import run_training
from opsembed.train.monitor import NonFiniteLossError

CPU = torch.device("cpu")


def _train(tmp, cells, **cfg):
    """Train into folder ``tmp``; returns the loss table."""
    train_grape(cells, {**TINY, **cfg}, 0, tmp / "model.pt", tmp / "losses.tsv", tmp / "samples.png",
                tmp / "ckpt", tmp / "tb")
    return pd.read_csv(tmp / "losses.tsv", sep="\t")


def _batch(cells, n=10, step=0):
    images = CellImages(cells, 16, CPU, "auto", 0.5)
    idx, y = BalancedSampler(images.gene_ids, list(range(len(GENES))), n, 0, 0).draw(step, CPU)
    return images.get(idx), y


def test_training_writes_finite_losses_and_outputs(tmp_path, cells_h5, one_thread):
    losses = _train(tmp_path, cells_h5, iterations=6)
    assert list(losses.columns) == ["step", "d_real", "d_fake", "r1", "g_adv", "cycle", "style",
                                    "identity", "d_total", "g_total"]
    assert losses["step"].tolist() == [2, 4, 6]
    assert losses.drop(columns="step").abs().lt(1e6).all().all()     # finite, no NaN
    assert (tmp_path / "samples.png").stat().st_size > 0
    assert any((tmp_path / "tb").iterdir())
    model = torch.load(tmp_path / "model.pt", weights_only=True)    # no pickled objects
    assert model["method"] == "grape" and model["step"] == 6 and model["genes"] == GENES
    ckpt = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert ckpt["step"] == 6 and set(ckpt["rng"]) == {"cpu", "cuda"}
    assert set(ckpt["optimizers"]) == {"style", "generator", "style_encoder", "discriminator"}


class _KilledAt(GrapeTrainer):
    """Dies (like a killed job) before 0-based step ``at``."""

    at = 5

    def train_step(self, step, batch):
        if step == self.at:
            raise KeyboardInterrupt("killed")
        return super().train_step(step, batch)


def test_resume_continues_the_exact_sequence(tmp_path, cells_h5, one_thread):
    settings = {"iterations": 8, "log_every": 2, "checkpoint_every": 3, "ema": {"every": 2}}
    straight = _train(tmp_path / "a", cells_h5, **settings)
    cfg = grape_config({**TINY, **settings})
    b = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):       # dies in step 6; checkpoint at 3 holds half a log window
        run_training(_KilledAt(CellImages(cells_h5, 16, CPU, "auto", 0.5), cfg, 0), b / "ckpt", b / "model.pt",
                     b / "losses.tsv", b / "samples.png")
    assert torch.load(b / "ckpt" / "last.pt", weights_only=True)["step"] == 3
    resumed = _train(b, cells_h5, **settings)
    pd.testing.assert_frame_equal(straight, resumed, check_exact=True)
    with pytest.raises(InputError, match="lr"):                       # other settings: refuse to resume
        _train(b, cells_h5, **{**settings, "lr": 2e-4})


def test_streaming_from_disk_trains_identically(tmp_path, cells_h5, one_thread):
    mem = _train(tmp_path / "m", cells_h5, iterations=4, data_in_memory=True)
    disk = _train(tmp_path / "d", cells_h5, iterations=4, data_in_memory=False)
    pd.testing.assert_frame_equal(mem, disk, check_exact=True)


class _PoisonAt(GrapeTrainer):
    """Sets G's weights to NaN before 0-based step ``at``."""

    at = 5

    def train_step(self, step, batch):
        if step == self.at:
            with torch.no_grad():
                next(self.nets["generator"].parameters()).fill_(float("nan"))
        return super().train_step(step, batch)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, cells_h5, one_thread):
    cfg = grape_config({**TINY, "iterations": 10, "checkpoint_every": 4, "log_every": 2})
    trainer = _PoisonAt(CellImages(cells_h5, 16, CPU, "auto", 0.5), cfg, 0)
    with pytest.raises(NonFiniteLossError, match=r"became NaN or infinite at step 6.*checkpoint \(step 4\)"):
        run_training(trainer, tmp_path / "ckpt", tmp_path / "m.pt", tmp_path / "l.tsv", tmp_path / "s.png")
    kept = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert kept["step"] == 4
    assert all(torch.isfinite(v).all() for v in kept["nets"].values())
    assert not (tmp_path / "m.pt").exists()


def test_discriminator_separates_real_from_fake(cells_h5, one_thread):
    torch.manual_seed(0)
    # the paper's generator: a residual one returns its input untrained, a fake D cannot tell
    nets = build_grape(len(GENES), 2, grape_config({**TINY, "residual": False}))
    run = dict(nets.items())
    opt = torch.optim.Adam(nets["discriminator"].parameters(), lr=1e-3, betas=(0.0, 0.99))
    x, y = _batch(cells_h5)
    z = y.flip(0)
    first = discriminator_losses(run, x, y, z, 1.0)["d_total"].item()
    for step in range(25):
        xb, yb = _batch(cells_h5, step=step + 1)
        loss = discriminator_losses(run, xb, yb, yb.flip(0), 1.0)["d_total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        fake = nets["generator"](x, nets["style"](z))
        real_logit, fake_logit = nets["discriminator"](x, y), nets["discriminator"](fake, z)
    assert discriminator_losses(run, x, y, z, 1.0)["d_total"].item() < first
    assert (real_logit > fake_logit).float().mean() >= 0.9


def _grads(cfg, cells, wrt, loss="g_total"):
    torch.manual_seed(0)
    nets = build_grape(len(GENES), 2, grape_config({**TINY, **cfg}))
    x, y = _batch(cells)
    losses = generator_losses(dict(nets.items()), x, y, y.flip(0), grape_config({**TINY, **cfg}))
    params = list(nets[wrt].parameters())
    grads = torch.autograd.grad(losses[loss], params, allow_unused=True, retain_graph=True)
    flat = torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(params, grads)])
    return losses, flat


def test_detach_style_switch(cells_h5, one_thread):
    _, to_m = _grads({"detach_style": True}, cells_h5, "style", loss="style")
    assert to_m.abs().sum() == 0                                   # style loss does not reach M or F
    _, to_e = _grads({"detach_style": True}, cells_h5, "style_encoder", loss="style")
    assert to_e.abs().sum() > 0                                    # it updates E
    _, to_m = _grads({"detach_style": False}, cells_h5, "style", loss="style")
    assert to_m.abs().sum() > 0


def test_cycle_switch(cells_h5, one_thread):
    # the paper's generator: a residual one returns its input untrained, with a cycle loss of 0
    on, g_on = _grads({"cycle": True, "residual": False}, cells_h5, "generator")
    off, g_off = _grads({"cycle": False, "residual": False}, cells_h5, "generator")
    assert on["cycle"].item() > 0 and off["cycle"].item() == 0
    assert torch.equal(on["g_adv"], off["g_adv"])                  # same draw, only the cycle term differs
    assert not torch.allclose(g_on, g_off)


def test_identity_loss_is_the_change_of_a_cell_restyled_to_its_own_gene(cells_h5, one_thread):
    torch.manual_seed(0)
    cfg = grape_config({**TINY, "lambda_id": 0.5})
    nets = build_grape(len(GENES), 2, cfg)
    with torch.no_grad():                        # a non-zero last conv: the residual G changes its input
        nets["generator"].to_img[-1].weight.normal_(0, 0.1)
    x, y = _batch(cells_h5)
    run = dict(nets.items())
    on = generator_losses(run, x, y, y.flip(0), cfg)
    off = generator_losses(run, x, y, y.flip(0), {**cfg, "lambda_id": 0.0})
    with torch.no_grad():
        by_hand = (nets["generator"](x, nets["style"](y)) - x).abs().mean()
    assert on["identity"].item() == pytest.approx(by_hand.item(), rel=1e-5) and by_hand > 0
    assert off["identity"].item() == 0.0
    assert on["g_total"].item() == pytest.approx(off["g_total"].item() + 0.5 * by_hand.item(), rel=1e-5)


def test_attention_ema_and_augment_switches_change_training(tmp_path, cells_h5, one_thread):
    base = _train(tmp_path / "base", cells_h5, iterations=4, ema={"every": 2})
    attn = _train(tmp_path / "attn", cells_h5, iterations=4, ema={"every": 2}, attention=True)
    augmented = _train(tmp_path / "aug", cells_h5, iterations=4, ema={"every": 2}, augment=True)
    assert not base["d_real"].equals(augmented["d_real"])
    no_ema = _train(tmp_path / "none", cells_h5, iterations=4, ema={"mode": "none", "every": 2})
    assert not base["g_total"].equals(attn["g_total"])
    # the filter first acts after step 4 (step 2 only records): rows up to step 4 agree, then differ
    pd.testing.assert_frame_equal(base, no_ema)
    longer = _train(tmp_path / "base", cells_h5, iterations=8, ema={"every": 2})
    longer_none = _train(tmp_path / "none", cells_h5, iterations=8, ema={"mode": "none", "every": 2})
    assert not longer["g_total"].iloc[-1] == longer_none["g_total"].iloc[-1]


def test_extraction_writes_three_positions(tmp_path, cells_h5, one_thread):
    _train(tmp_path, cells_h5, iterations=2)
    paths = [tmp_path / f"p{i}.tsv" for i in (1, 2, 3)]
    extract_grape(tmp_path / "model.pt", cells_h5, *paths, {**TINY, "n_cells_p3": 4}, 0)
    p1, p2, p3 = (read_embeddings(p) for p in paths)
    genes = [g for g in GENES if g != "ctrl"]
    assert list(p1.index) == list(p2.index) == list(p3.index) == genes
    assert p1.shape == (4, 8) and p2.shape == (4, 4) and p3.shape == (4, 4)
    model = torch.load(tmp_path / "model.pt", weights_only=True)
    m = model["state"]["style.embedding.weight"].double().numpy()
    assert np.allclose(p1.to_numpy(), m[:4], rtol=1e-12, atol=0)       # position 1 = rows of M
    # positions 2 and 3 by hand for GENEC (id 2): its cells are rows 12..17
    nets = build_grape(len(GENES), 2, model["config"])
    nets.load_state_dict(model["state"])
    emb = grape_embeddings(nets, crop_reader(cells_h5, 16, CPU), {2: np.array([12, 15])}, batch_size=1)
    assert set(emb["p3"]) == {2} and set(emb["p1"]) == set(range(5))
    with torch.no_grad():
        x = crop_reader(cells_h5, 16, CPU)(np.array([12, 15]))
        s = nets["style"](torch.tensor([2, 2]))
        want = nets["style_encoder"](nets["generator"](x, s)).double().mean(0)
    assert torch.allclose(torch.from_numpy(emb["p3"][2]), want, rtol=1e-4, atol=1e-5)
    assert torch.allclose(torch.from_numpy(emb["p2"][2]).float(), s[0], atol=1e-6)


def test_unknown_config_key_is_refused():
    with pytest.raises(InputError, match="unknown key 'iteration'"):
        grape_config({"iteration": 5})
    with pytest.raises(InputError, match="ema"):
        grape_config({"ema": {"gama": 0.5}})


def test_warmup_steps_train_only_reconstruction(cells_h5, one_thread):
    images = CellImages(cells_h5, 16, CPU, "auto", 0.5)
    trainer = GrapeTrainer(images, grape_config({**TINY, "warmup_iters": 2}), 0)
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in trainer.nets.items()}
    x, y = _batch(cells_h5)
    with torch.no_grad():
        want = (trainer.nets["generator"](x, trainer.nets["style_encoder"](x)) - x).abs().mean()
    losses = dict(zip(trainer.loss_names, trainer.train_step(0, {"x": (x, y)}).tolist()))
    assert losses["cycle"] == pytest.approx(want.item(), rel=1e-5) and losses["g_total"] == losses["cycle"]
    assert all(v == 0 for k, v in losses.items() if k not in ("cycle", "g_total"))
    changed = {k: any(not torch.equal(a, b) for a, b in zip(before[k], m.parameters()))
               for k, m in trainer.nets.items()}
    assert changed == {"style": False, "generator": True, "style_encoder": True, "discriminator": False}
    trainer.train_step(1, {"x": (x, y)})
    losses = dict(zip(trainer.loss_names, trainer.train_step(2, {"x": (x, y)}).tolist()))   # past the warm-up
    assert losses["d_real"] > 0 and losses["g_adv"] > 0


def test_d_translate_changes_what_the_discriminator_sees(tmp_path, cells_h5, one_thread):
    base = _train(tmp_path / "base", cells_h5, iterations=2, log_every=1)
    shifted = _train(tmp_path / "shift", cells_h5, iterations=2, log_every=1, d_translate=1)
    assert not base["d_real"].equals(shifted["d_real"])
    assert np.isfinite(shifted.drop(columns="step").to_numpy()).all()
