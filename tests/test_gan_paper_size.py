"""GRAPE and IMPA at config/paper.yaml's sizes (96 px, dim_in 64, max_conv_dim 512, d = 500)
train on a CPU: 2 steps at batch 2, finite losses (the paper's path where no GPU is lent)."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from opsembed.train.data import CellImages, iterate_batches
from opsembed.train.grape_trainer import GrapeTrainer, grape_config
from opsembed.train.impa_trainer import ImpaTrainer, impa_config

PAPER = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "paper.yaml").read_text())["methods"]
CPU_RUN = {"batch_size": 2, "iterations": 2, "device": "cpu", "num_workers": 0, "compile": False,
           "bf16": False, "ema": {"mode": "none"}}


def _images(size: int, n_genes: int = 3, per_gene: int = 2) -> CellImages:
    x = torch.randn(n_genes * per_gene, 4, size, size, generator=torch.Generator().manual_seed(0))
    genes = [f"G{i}" for i in range(n_genes - 1)] + ["nontargeting"]
    return CellImages.from_tensor(x, np.repeat(np.arange(n_genes), per_gene), genes, "nontargeting")


def _two_steps(trainer) -> torch.Tensor:
    losses = [trainer.train_step(step, batch) for step, batch in
              iterate_batches(trainer.images, trainer.samplers, 0, 2, 0)]
    return torch.stack(losses)


@pytest.mark.parametrize("method", ["grape", "impa"])
def test_paper_sizes_train_two_steps_on_cpu(method, one_thread):
    block = PAPER[method]
    assert (block["image_size"], block["dim_in"], block["max_conv_dim"]) == (96, 64, 512)
    cfg = {k: v for k, v in block.items() if k not in ("ema", "iterations", "batch_size", "device")}
    if method == "grape":
        cfg = grape_config({**cfg, **CPU_RUN})
        assert cfg["embed_dim"] == 500
        trainer = GrapeTrainer(_images(cfg["image_size"]), cfg, seed=0)
    else:
        cfg = impa_config({**cfg, **CPU_RUN})
        trainer = ImpaTrainer(_images(cfg["image_size"]), cfg, seed=0)
    widths = [m.out_channels for m in trainer.nets["generator"].modules() if isinstance(m, torch.nn.Conv2d)]
    assert max(widths) == 512
    losses = _two_steps(trainer)
    assert losses.shape == (2, len(trainer.loss_names))
    assert torch.isfinite(losses).all(), dict(zip(trainer.loss_names, losses[-1].tolist()))
