"""IMPA: control -> perturbed training, frozen or trainable perturbation embedding, extraction."""

import numpy as np
import pandas as pd
import pytest
import torch

from gan_cells import GENES, TINY, cells_h5, write_cells  # noqa: F401  (fixtures)
from opsembed.io.embeddings import read_embeddings, write_embeddings
from opsembed.io.errors import InputError
from opsembed.models.impa import build_impa
from opsembed.train.data import CellImages, crop_reader
from opsembed.train.impa_trainer import ImpaTrainer, extract_impa, impa_config, perturbation_table, train_impa
from opsembed.train.loop import run_training

CPU = torch.device("cpu")


def _train(tmp, cells, embedding=None, **cfg):
    train_impa(cells, {**TINY, **cfg}, 0, tmp / "model.pt", tmp / "losses.tsv", tmp / "samples.png",
               tmp / "ckpt", None, embedding_path=embedding)
    return pd.read_csv(tmp / "losses.tsv", sep="\t")


def test_batches_are_controls_and_balanced_perturbed(cells_h5):
    trainer = ImpaTrainer(CellImages(cells_h5, 16, CPU, "auto", 0.5), impa_config(TINY), 0)
    src = trainer.samplers["src"].draw(0, CPU)[1]
    tgt = trainer.samplers["tgt"].draw(0, CPU)[1]
    assert set(src.tolist()) == {GENES.index("ctrl")}
    assert sorted(np.bincount(tgt.numpy(), minlength=4)[:4]) == [2, 2, 3, 3]     # 10 over 4 genes
    assert trainer.ds_weight(0) == 1.0 and trainer.ds_weight(trainer.cfg["iterations"] // 2) == 0.5
    assert trainer.ds_weight(10 ** 6) == 0.0


def test_training_with_frozen_embedding(tmp_path, cells_h5, one_thread):
    table = np.arange(4 * 3, dtype=float).reshape(4, 3)
    write_embeddings(tmp_path / "g2v.tsv", GENES[:4], table)                     # ctrl has no row
    losses = _train(tmp_path, cells_h5, embedding=tmp_path / "g2v.tsv", iterations=4)
    assert list(losses.columns)[1:] == ["d_real", "d_fake", "r1", "g_adv", "style", "diversity", "cycle",
                                        "identity", "d_total", "g_total"]
    assert losses["step"].tolist() == [2, 4] and np.isfinite(losses.drop(columns="step").to_numpy()).all()
    assert (losses["diversity"] > 0).all()
    model = torch.load(tmp_path / "model.pt", weights_only=True)
    frozen = model["state"]["style.frozen"].numpy()
    assert np.array_equal(frozen[:4], table.astype(np.float32))                 # untouched by training
    extract_impa(tmp_path / "model.pt", cells_h5, tmp_path / "impa.tsv", {**TINY, "n_cells": 4}, 0)
    emb = read_embeddings(tmp_path / "impa.tsv")
    assert list(emb.index) == GENES[:4] and emb.shape == (4, 4)


class _KilledAt(ImpaTrainer):
    def train_step(self, step, batch):
        if step == 4:
            raise KeyboardInterrupt("killed")
        return super().train_step(step, batch)


def test_trainable_embedding_resumes_exactly(tmp_path, cells_h5, one_thread):
    settings = {"iterations": 6, "checkpoint_every": 3, "ema": {"mode": "step", "beta": 0.9}}
    straight = _train(tmp_path / "a", cells_h5, **settings)
    b = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        run_training(_KilledAt(CellImages(cells_h5, 16, CPU, "auto", 0.5), impa_config({**TINY, **settings}), 0),
                     b / "ckpt", b / "model.pt", b / "losses.tsv", b / "samples.png")
    resumed = _train(b, cells_h5, **settings)
    pd.testing.assert_frame_equal(straight, resumed, check_exact=True)
    model = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    assert "style.embedding.weight" in model["state"] and "style.frozen" not in model["state"]
    with pytest.raises(InputError, match="ds_decay"):   # more iterations would change the decay schedule
        _train(b, cells_h5, **{**settings, "iterations": 8})


def test_extraction_is_mean_style_code_of_a_genes_cells(tmp_path, cells_h5, one_thread):
    _train(tmp_path, cells_h5, iterations=2)
    extract_impa(tmp_path / "model.pt", cells_h5, tmp_path / "impa.tsv", {**TINY, "n_cells": 500}, 0)
    emb = read_embeddings(tmp_path / "impa.tsv")
    model = torch.load(tmp_path / "model.pt", weights_only=True)
    nets = build_impa(len(GENES), 2, model["config"])
    nets.load_state_dict(model["state"])
    with torch.no_grad():                       # all 6 cells of GENEC (rows 12..17): fewer than n_cells
        want = nets["style_encoder"](crop_reader(cells_h5, 16, CPU)(np.arange(12, 18))).double().mean(0)
    assert np.allclose(emb.loc["GENEC"].to_numpy(), want.numpy(), rtol=1e-4, atol=1e-6)


def test_perturbation_table_and_missing_controls(tmp_path):
    write_embeddings(tmp_path / "e.tsv", ["B", "A"], np.array([[1.0, 2.0], [3.0, 4.0]]))
    table = perturbation_table(["A", "B", "ctrl"], tmp_path / "e.tsv", 0)
    assert table[:2].tolist() == [[3.0, 4.0], [1.0, 2.0]] and table.shape == (3, 2)
    with pytest.raises(InputError, match="none of the screen's genes"):
        perturbation_table(["X"], tmp_path / "e.tsv", 0)
    write_cells(tmp_path / "c.h5")
    images = CellImages(tmp_path / "c.h5", 16, CPU, "auto", 0.5)
    images.controls = "nontargeting"
    with pytest.raises(InputError, match="no 'nontargeting' cells"):
        ImpaTrainer(images, impa_config(TINY), 0)
