"""Training data: balanced batches, determinism, memory vs disk, resizing, checkpoints, EMA."""

import numpy as np
import pytest
import torch
from torch import nn

from gan_cells import GENES, cells_h5  # noqa: F401  (fixture)
from opsembed.io.h5 import read_crops
from opsembed.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from opsembed.train.data import BalancedSampler, CellImages, dihedral, iterate_batches, resize
from opsembed.train.ema import ParamEMA
from opsembed.train.gan import cells_per_gene
from opsembed.train.monitor import sample_grid

CPU = torch.device("cpu")


def test_balanced_sampler_counts_and_membership():
    gene_ids = np.array([0] * 50 + [1] * 3 + [2] * 7 + [3] * 1)
    sampler = BalancedSampler(gene_ids, [0, 1, 3], batch_size=10, seed=1, stream=0)
    idx, y = sampler.draw(0, CPU)
    counts = np.bincount(y.numpy(), minlength=4)
    assert counts[2] == 0 and sorted(counts[[0, 1, 3]]) == [3, 3, 4]  # 10 = 3 + 3 + 3 + 1 extra
    assert (gene_ids[idx.numpy()] == y.numpy()).all()          # every cell belongs to its label


def test_sampler_is_a_function_of_seed_and_step():
    gene_ids = np.repeat(np.arange(4), 20)
    a = BalancedSampler(gene_ids, [0, 1, 2, 3], 8, seed=3, stream=0)
    b = BalancedSampler(gene_ids, [0, 1, 2, 3], 8, seed=3, stream=0)
    assert torch.equal(a.draw(5, CPU)[0], b.draw(5, CPU)[0])
    assert not torch.equal(a.draw(5, CPU)[0], a.draw(6, CPU)[0])
    other = BalancedSampler(gene_ids, [0, 1, 2, 3], 8, seed=3, stream=1)
    assert not torch.equal(a.draw(5, CPU)[0], other.draw(5, CPU)[0])


def test_sampler_rejects_gene_without_cells():
    with pytest.raises(ValueError, match="no cells"):
        BalancedSampler(np.array([0, 0, 2]), [0, 1], 4, 0, 0)


def test_resize_area_is_block_mean():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    out = resize(x, 2)
    assert out[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]   # means of 2 x 2 blocks


def test_dihedral_applies_one_of_the_eight_symmetries_per_crop():
    base = torch.arange(9.0).reshape(1, 3, 3)
    symmetries = [torch.rot90(b, k, (-2, -1)) for b in (base, base.flip(-1)) for k in range(4)]
    out = dihedral(base.expand(64, 2, 3, 3), torch.Generator().manual_seed(0))
    seen = set()
    for crop in out:
        match = [i for i, s in enumerate(symmetries) if torch.equal(crop[0], s[0])]
        assert len(match) == 1 and torch.equal(crop[1], crop[0])   # channels move together
        seen.add(match[0])
    assert seen == set(range(8))                                  # 64 draws reach all eight


def test_memory_and_disk_give_identical_batches(cells_h5, one_thread):
    mem = CellImages(cells_h5, 16, CPU, True, 0.5)
    disk = CellImages(cells_h5, 16, CPU, False, 0.5)
    assert mem.in_memory and not disk.in_memory
    assert mem.genes == GENES and mem.controls == "ctrl"
    sampler = {"x": BalancedSampler(mem.gene_ids, list(range(5)), 10, 0, 0)}
    a = list(iterate_batches(mem, sampler, 2, 4, num_workers=0))
    b = list(iterate_batches(disk, sampler, 2, 4, num_workers=1))
    assert [s for s, _ in a] == [s for s, _ in b] == [2, 3]
    for (_, ba), (_, bb) in zip(a, b):
        assert torch.equal(ba["x"][0], bb["x"][0]) and torch.equal(ba["x"][1], bb["x"][1])
        assert ba["x"][0].shape == (10, 2, 16, 16) and ba["x"][0].dtype == torch.float32
    # the crops are the file's, area-resized from 32 to 16 (float16 storage)
    idx = sampler["x"].draw(2, CPU)[0].numpy()
    want = resize(torch.from_numpy(read_crops(cells_h5, idx)), 16).half().float()
    assert torch.equal(a[0][1]["x"][0], want)


def test_checkpoint_roundtrip_weights_only(tmp_path):
    torch.manual_seed(0)
    state = {"step": 3, "w": torch.randn(3), "rng": rng_state(), "rows": [[1.0, 2.0]], "name": "x"}
    expected = torch.rand(2)
    save_checkpoint(state, tmp_path / "c.pt")
    loaded = torch.load(tmp_path / "c.pt", weights_only=True)
    assert loaded["step"] == 3 and torch.equal(loaded["w"], state["w"]) and loaded["rows"] == [[1.0, 2.0]]
    set_rng_state(loaded["rng"])
    assert torch.equal(torch.rand(2), expected)                # RNG continues where it was saved
    assert load_checkpoint(tmp_path / "absent.pt") is None


def _one_param_nets(value: float) -> nn.ModuleDict:
    lin = nn.Linear(1, 1, bias=False)
    nn.init.constant_(lin.weight, value)
    return nn.ModuleDict({"g": lin})


def test_filter_ema_by_hand():
    nets = _one_param_nets(1.0)
    ema = ParamEMA(nets, ["g"], "filter", every=2, gamma=0.5)
    w = nets["g"].weight
    ema.update(1)
    assert w.item() == 1.0 and ema.average is None              # not a filter step
    ema.update(2)
    assert w.item() == 1.0 and ema.average[0].item() == 1.0     # first filter step records only
    with torch.no_grad():
        w.fill_(3.0)
    ema.update(4)
    assert w.item() == 2.0 and ema.average[0].item() == 2.0     # 0.5 * 3 + 0.5 * 1
    with torch.no_grad():
        w.fill_(4.0)
    ema.update(6)
    assert w.item() == 3.0                                      # 0.5 * 4 + 0.5 * 2


def test_step_ema_and_none_by_hand():
    nets = _one_param_nets(0.0)
    ema = ParamEMA(nets, ["g"], "step", beta=0.75)
    with torch.no_grad():
        nets["g"].weight.fill_(4.0)
    ema.update(1)
    assert nets["g"].weight.item() == 4.0 and ema.average[0].item() == 1.0   # 0.75 * 0 + 0.25 * 4
    assert ema.exported_state(nets)["g.weight"].item() == 1.0
    off = ParamEMA(nets, ["g"], "none", every=1)
    off.update(1)
    assert nets["g"].weight.item() == 4.0 and off.exported_state(nets)["g.weight"].item() == 4.0


def test_sample_grid_layout():
    src = np.zeros((2, 3, 8, 8), np.float32)
    out = np.ones((2, 4, 3, 8, 8), np.float32)
    mosaic = sample_grid(src, out)
    assert mosaic.shape == (16, 40, 3) and mosaic.dtype == np.uint8
    assert mosaic[:, :8].max() == 0 and mosaic[:, 8:].min() > 0   # input column dark, outputs bright


def test_cells_per_gene_caps_and_skips_controls():
    col = np.array(["A", "ctrl", "A", "B", "A", "A", "ctrl"])
    cells = cells_per_gene(col, ["A", "B", "C", "ctrl"], "ctrl", n=3, seed=0)
    assert set(cells) == {0, 1}                                   # C has no cells, ctrl is left out
    assert len(cells[0]) == 3 and set(cells[0]) <= {0, 2, 4, 5} and list(cells[0]) == sorted(cells[0])
    assert cells[1].tolist() == [3]
    assert cells_per_gene(col, ["A", "B", "C", "ctrl"], "ctrl", 3, 0)[0].tolist() == cells[0].tolist()
