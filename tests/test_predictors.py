"""Predictors of the OOD benchmark: gradient reversal, MixStyle, training kinds, evaluation, embeddings."""

import numpy as np
import pytest
import torch

from ood_toy import CONTROLS, write_toy_cells
from opsembed.evaluate.ood_eval import METRIC_COLUMNS, evaluate_fold
from opsembed.io.embeddings import read_embeddings
from opsembed.io.errors import InputError
from opsembed.io.tables import read_table
from opsembed.io.folds import PREDICTOR_KINDS
from opsembed.models.predictors import (GeneClassifier, MixStyleSpec, Predictor, cross_oe_partners, grad_reverse,
                                        mixstyle)
from opsembed.models.restyler import load_restyler
from opsembed.train.data import CellImages, step_generator
from opsembed.train.fold_data import load_fold
from opsembed.train.ist_trainer import train_ist
from opsembed.train.predictor_trainer import (PredictorTrainer, embed_predictor, gene_means, predictor_config,
                                              train_predictor)
from opsembed.train.stargan_trainer import train_stargan

OOD = {"levels": [{"name": "plate", "columns": ["plate"], "max_folds": None}], "knn_neighbors": 3,
       "harmony_pcs": 4, "lisi_perplexity": 3}
COMMON = {"image_size": 16, "batch_size": 4, "log_every": 1, "checkpoint_every": 2, "device": "cpu",
          "num_workers": 0, "n_sample_cells": 2}
PRED = dict(COMMON, width=2, iterations=3, n_sample_views=2, test_time_styles=2)
FOLD = "plate-P1"


pytestmark = pytest.mark.usefixtures("one_thread")


def test_gradient_reversal_flips_and_scales_the_gradient():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    w = torch.tensor([0.5, 1.0, -4.0])
    y = grad_reverse(x, alpha=0.3)
    torch.testing.assert_close(y, x.detach())
    (w * y).sum().backward()
    torch.testing.assert_close(x.grad, -0.3 * w)


def test_mixstyle_mixes_channel_statistics_with_the_partner():
    torch.manual_seed(0)
    h = torch.randn(3, 2, 5, 5) * torch.tensor([1.0, 2.0, 0.5])[:, None, None, None] + \
        torch.tensor([0.0, 3.0, -1.0])[:, None, None, None]
    partner, lam = torch.tensor([1, 2, 0]), torch.tensor([0.25, 1.0, 0.5])
    out = mixstyle(h, partner, lam)
    mu, sig = h.mean(dim=(2, 3)), h.var(dim=(2, 3), unbiased=False).sqrt()
    lam_ = lam[:, None]
    torch.testing.assert_close(out.mean(dim=(2, 3)), lam_ * mu + (1 - lam_) * mu[partner])
    torch.testing.assert_close(out.var(dim=(2, 3), unbiased=False).sqrt(), lam_ * sig + (1 - lam_) * sig[partner],
                               rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out[1], h[1], rtol=1e-4, atol=1e-4)          # lambda 1 keeps the sample
    normalised = (h - mu[:, :, None, None]) / sig[:, :, None, None]
    torch.testing.assert_close((out - out.mean(dim=(2, 3), keepdim=True)) /
                               out.var(dim=(2, 3), unbiased=False, keepdim=True).sqrt(), normalised,
                               rtol=1e-3, atol=1e-3)                         # the pattern is kept


def test_mixstyle_partners_come_from_another_oe():
    oe = torch.tensor([0, 0, 0, 1, 2, 2])
    for step in range(20):
        p = cross_oe_partners(oe, step_generator(0, 1, step, torch.device("cpu")))
        assert (oe[p] != oe).all()
    same = torch.zeros(4, dtype=torch.long)
    p = cross_oe_partners(same, step_generator(0, 1, 0, torch.device("cpu")))
    assert (p != torch.arange(4)).all()


def test_classifier_shapes_and_mixstyle_changes_only_when_asked():
    torch.manual_seed(0)
    net = GeneClassifier(2, 5, {"image_size": 16, "width": 2})
    x = torch.randn(4, 2, 16, 16)
    assert net(x).shape == (4, 5) and net.features(x).shape == (4, 16)
    torch.testing.assert_close(net.features(x), net.features(x))
    mix = MixStyleSpec([0], torch.tensor([1, 0, 3, 2]), torch.full((4,), 0.5))
    assert not torch.allclose(net.features(x, mix), net.features(x))


def test_classifier_pool_norm_off_pools_the_last_map_as_it_is():
    torch.manual_seed(0)
    cfg = {"image_size": 16, "width": 2}
    off, on = GeneClassifier(2, 5, {**cfg, "pool_norm": False}), GeneClassifier(2, 5, cfg)   # absent: on
    assert on.trunk.pool_norm and not off.trunk.pool_norm
    x = torch.randn(4, 2, 16, 16)
    last = off.trunk.maps(x)[-1]
    torch.testing.assert_close(off.features(x), torch.nn.functional.leaky_relu(last, 0.2).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """Two plates: odd genes only on P1, even genes only on P2, controls on both; tiny IST and
    StarGAN models of fold plate-P1."""
    root = tmp_path_factory.mktemp("pred")
    write_toy_cells(root / "cells.h5", size=16, n_plates=2, n_wells=2, n_genes=4, per_well=3)
    gens = {}
    torch.set_num_threads(1)
    train_ist(root / "cells.h5", OOD, dict(COMMON, width=2, pretrain_iterations=2, iterations=3, n_sample_oes=2),
              FOLD, 0, root / "ist.pt", root / "ist.tsv", root / "ist.png", root / "ist_ckpt")
    gens["ist"] = root / "ist.pt"
    train_stargan(root / "cells.h5", OOD, dict(COMMON, dim_in=4, max_conv_dim=8, style_dim=4, embed_dim=4,
                                               mapping_hidden=4, iterations=2, n_sample_genes=2),
                  FOLD, 0, root / "sg.pt", root / "sg.tsv", root / "sg.png", root / "sg_ckpt")
    gens["stargan"] = root / "sg.pt"
    return root, gens


def _train(root, gens, kind, out, fold=FOLD, **over):
    train_predictor(kind, root / "cells.h5", OOD, dict(PRED, **over), fold, 0, out / "model.pt", out / "losses.tsv",
                    out / "samples.png", out / "ckpt", gens.get(kind))
    return read_table(out / "losses.tsv")


@pytest.mark.parametrize("kind", PREDICTOR_KINDS)
def test_every_kind_trains_with_finite_losses(toy, tmp_path, kind):
    root, gens = toy
    losses = _train(root, gens, kind, tmp_path)
    assert list(losses["step"]) == [1, 2, 3]
    assert np.isfinite(losses.drop(columns="step").to_numpy()).all()
    assert (losses["domain_ce"] > 0).all() == (kind == "dr")
    pred = Predictor(tmp_path / "model.pt", torch.device("cpu"))
    assert pred.kind == kind and pred.fold == FOLD


def test_interventional_predictors_need_their_generator(toy, tmp_path):
    root, gens = toy
    with pytest.raises(InputError, match="generator"):
        train_predictor("ist", root / "cells.h5", OOD, PRED, FOLD, 0, tmp_path / "m.pt", tmp_path / "l.tsv",
                        tmp_path / "s.png", tmp_path / "c")
    with pytest.raises(InputError, match="stargan model"):
        _train(root, {"ist": gens["stargan"]}, "ist", tmp_path)
    with pytest.raises(InputError, match="fold"):
        _train(root, gens, "ist", tmp_path, fold="plate-P2")


def test_ist_predictor_sees_restyled_cells_unless_kept_original(toy):
    root, gens = toy
    cfg = predictor_config(dict(PRED, augment=False))
    data = load_fold(root / "cells.h5", OOD, FOLD, 16, torch.device("cpu"), "auto", 0.5)
    restyler = load_restyler(gens["ist"], torch.device("cpu"))
    trainer = PredictorTrainer("ist", data, cfg, 0, restyler)
    batch = {name: (data.images.get(s.draw(0, torch.device("cpu"))[0]), s.draw(0, torch.device("cpu"))[1])
             for name, s in trainer.samplers.items()}
    seen = trainer._inputs(0, batch)
    assert seen.shape == batch["x"][0].shape and not torch.allclose(seen, batch["x"][0])
    trainer.cfg = dict(cfg, p_original=1.0)
    torch.testing.assert_close(trainer._inputs(0, batch), batch["x"][0])
    # the style stream draws training cells only, balanced over the training OEs
    rows, labels = trainer.samplers["style"].draw(0, torch.device("cpu"))
    assert set(labels[:, 1].tolist()) == set(data.train_oes) == {2, 3}
    assert np.isin(rows.numpy(), data.fold["train_idx"]).all()


def test_fold_samplers_draw_training_cells_balanced_over_genes(toy):
    root, _ = toy
    data = load_fold(root / "cells.h5", OOD, FOLD, 16, torch.device("cpu"), "auto", 0.5)
    rows, labels = data.gene_sampler(batch_size=9, seed=0, stream=0).draw(3, torch.device("cpu"))
    assert np.isin(rows.numpy(), data.fold["train_idx"]).all()
    assert sorted(labels[:, 0].tolist()) == sorted(data.train_genes * 3)        # 3 training genes x 3
    np.testing.assert_array_equal(labels[:, 0].numpy(), data.images.gene_ids[rows.numpy()])
    np.testing.assert_array_equal(labels[:, 1].numpy(), data.oe_ids[rows.numpy()])


def test_fold_keeps_only_the_cells_of_the_chosen_genes(toy):
    root, _ = toy
    data = load_fold(root / "cells.h5", OOD, FOLD, 16, torch.device("cpu"), "auto", 0.5, {"G0": "G0", "G1": "G1"})
    genes = np.array(data.images.genes)[data.images.gene_ids]
    assert set(genes[data.fold["train_idx"]]) == {"G0"}           # G0 is only on P2
    assert genes[data.fold["test_idx"]].tolist() == ["G1"] * 6     # G1 is only on the held-out P1
    assert data.train_genes == [data.images.genes.index("G0")]
    rows, labels = data.gene_sampler(batch_size=4, seed=0, stream=0).draw(0, torch.device("cpu"))
    assert set(genes[rows.numpy()]) == {"G0"}


def test_fold_holds_only_its_cells_and_reads_them_as_the_whole_file_does(toy):
    root, _ = toy
    data = load_fold(root / "cells.h5", OOD, FOLD, 16, torch.device("cpu"), "auto", 0.5, {"G0": "G0", "G1": "G1"})
    plain = CellImages(root / "cells.h5", 16, torch.device("cpu"), "auto", 0.5)
    kept = np.union1d(data.fold["train_idx"], data.fold["test_idx"])
    assert data.images.n == plain.n and len(data.images._images) == len(kept) < plain.n
    shuffled = np.random.default_rng(0).permutation(kept)
    assert torch.equal(data.images.get(shuffled), plain.get(shuffled))          # same bits, any order
    outside = np.setdiff1d(np.arange(plain.n), kept)
    with pytest.raises(ValueError, match="outside the rows held"):
        data.images.get(outside[:1])


def test_complex_classes_pool_their_genes_under_one_label(toy):
    root, _ = toy
    classes = {"G0": "cxA", "G2": "cxA", "G1": "cxB"}
    data = load_fold(root / "cells.h5", OOD, FOLD, 16, torch.device("cpu"), "auto", 0.5, classes)
    assert data.images.genes == ["cxA", "cxB", CONTROLS]
    plain = CellImages(root / "cells.h5", 16, torch.device("cpu"), "auto", 0.5)
    obs_genes = np.array(plain.genes)[plain.gene_ids]
    labels = np.array(data.images.genes)[data.images.gene_ids]
    for g, c in classes.items():
        assert set(labels[obs_genes == g]) == {c}
    kept = np.concatenate([data.fold["train_idx"], data.fold["test_idx"]])
    assert set(obs_genes[kept]) == {"G0", "G1", "G2"}
    assert data.train_genes == sorted({data.images.genes.index(c) for c in labels[data.fold["train_idx"]]})


def test_resume_repeats_the_mixstyle_loss_sequence(toy, tmp_path):
    root, gens = toy
    full = _train(root, gens, "mixstyle", tmp_path / "full", iterations=4, mixstyle_p=0.5)
    _train(root, gens, "mixstyle", tmp_path / "part", iterations=2, mixstyle_p=0.5)
    resumed = _train(root, gens, "mixstyle", tmp_path / "part", iterations=4, mixstyle_p=0.5)
    np.testing.assert_array_equal(resumed.to_numpy(), full.to_numpy())


def test_predictions_never_name_genes_without_training_cells(toy, tmp_path):
    root, gens = toy
    _train(root, gens, "naive", tmp_path)
    pred = Predictor(tmp_path / "model.pt", torch.device("cpu"))
    images = CellImages(root / "cells.h5", 16, torch.device("cpu"), "auto", 0.5)
    probs, feats = pred.outputs(images, np.arange(images.n), batch_size=5)
    untrained = [i for i, g in enumerate(images.genes) if i not in pred.train_genes]
    assert [images.genes[i] for i in untrained] == ["G1", "G3"]      # odd genes live on P1 only
    assert (probs[:, untrained] == 0).all()
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)  # float32 softmax
    assert feats.shape == (images.n, 16)


def test_evaluate_fold_writes_predictions_metrics_and_features(toy, tmp_path):
    root, gens = toy
    _train(root, gens, "ist", tmp_path)
    metrics = evaluate_fold(root / "cells.h5", OOD, PRED, FOLD, tmp_path / "model.pt", tmp_path / "pred.tsv",
                            tmp_path / "metrics.tsv", tmp_path / "features.tsv", gens["ist"])
    assert list(metrics.columns) == METRIC_COLUMNS
    assert list(metrics["method"]) == ["ist", "ist_harmony_knn", "ist_ttc"]
    # P1 holds G1 and G3, which have no training cells (not scored), and controls
    assert (metrics["n_scored_genes"] == 1).all() and (metrics["n_test_cells"] == 18).all()
    assert (metrics["n_scored_cells"] == 6).all() and metrics["clisi"].isna().all()
    pred = read_table(tmp_path / "pred.tsv")
    assert list(pred.columns) == ["cell_id", "gene", "oe", "ist", "ist_harmony_knn", "ist_ttc"]
    assert set(pred["oe"]) == {"P1/A1", "P1/A2"}
    assert set(pred["ist"]) <= {"G0", "G2", CONTROLS}
    feats = read_table(tmp_path / "features.tsv")
    assert set(feats["split"]) == {"train", "test"} and (feats["split"] == "test").sum() == len(pred)


def test_iid_fold_gets_lisi_and_batchcv(toy, tmp_path):
    root, gens = toy
    _train(root, gens, "naive", tmp_path, fold="iid")
    m = evaluate_fold(root / "cells.h5", OOD, PRED, "iid", tmp_path / "model.pt", tmp_path / "p.tsv",
                      tmp_path / "m.tsv", tmp_path / "f.tsv")
    assert m[["clisi", "blisi", "knn_batchcv"]].notna().all().all()
    assert list(m["level"]) == ["iid", "iid"]


def test_embedding_is_the_mean_feature_per_gene_without_controls(toy, tmp_path):
    root, gens = toy
    _train(root, gens, "dr", tmp_path, fold="iid")
    embed_predictor(root / "cells.h5", tmp_path / "model.pt", tmp_path / "dr.tsv", PRED)
    emb = read_embeddings(tmp_path / "dr.tsv")
    assert list(emb.index) == ["G0", "G1", "G2", "G3"] and emb.shape[1] == 16
    pred = Predictor(tmp_path / "model.pt", torch.device("cpu"))
    images = CellImages(root / "cells.h5", 16, torch.device("cpu"), "auto", 0.5)
    _, feats = pred.outputs(images, np.arange(images.n), batch_size=7)
    genes = np.array(images.genes, dtype=object)[images.gene_ids]
    np.testing.assert_allclose(emb.loc["G2"].to_numpy(), feats[genes == "G2"].mean(0), rtol=1e-5, atol=1e-6)
    names, values = gene_means(np.array([[1.0], [3.0], [5.0]]), np.array(["a", "a", CONTROLS]), CONTROLS)
    assert names == ["a"] and values.tolist() == [[2.0]]


def test_a_checkpoint_of_other_classes_does_not_resume(toy, tmp_path):
    """Before: the OOD classes changed, Snakemake reran the job, and the trainer silently
    resumed the old classes' finished checkpoint."""
    root, gens = toy
    train_predictor("naive", root / "cells.h5", OOD, PRED, FOLD, 0, tmp_path / "m.pt", tmp_path / "l.tsv",
                    tmp_path / "s.png", tmp_path / "ckpt", None, {"G0": "G0", "G1": "G1"})
    with pytest.raises(InputError, match="other settings"):
        train_predictor("naive", root / "cells.h5", OOD, PRED, FOLD, 0, tmp_path / "m.pt", tmp_path / "l.tsv",
                        tmp_path / "s.png", tmp_path / "ckpt", None, {"G0": "G0", "G2": "G2"})


def test_restyle_metrics_of_an_identity_restyler_keep_everything_and_take_no_style(toy, tmp_path, monkeypatch):
    from opsembed.evaluate.ood_eval import RESTYLE_COLUMNS, restyle_metrics
    from opsembed.models.restyler import Restyler
    from opsembed.train.ist_trainer import ist_config

    root, gens = toy
    cfg = dict(COMMON, n_restyle_cells=8)
    out = restyle_metrics(root / "cells.h5", OOD, cfg, FOLD, gens["ist"], tmp_path / "r.tsv")
    assert list(out.columns) == RESTYLE_COLUMNS and set(out["fold"]) == {FOLD}
    v = dict(zip(out["metric"], out["value"]))
    assert v["n_cells"] == 8 and v["style_chance"] == 0.5       # plate-P1 held out: 2 training OEs (P2's wells)
    assert 0 <= v["style_taken"] <= 1 and 0 <= v["accuracy_restyled"] <= 1 and 0 <= v["oe_accuracy_original"] <= 1
    monkeypatch.setattr(Restyler, "__call__", lambda self, x, style, oe: x)     # restyling that changes nothing
    same = dict(zip(*restyle_metrics(root / "cells.h5", OOD, cfg, FOLD, gens["ist"], tmp_path / "s.tsv")[
        ["metric", "value"]].T.to_numpy()))
    assert same["accuracy_restyled"] == same["accuracy_original"]
    assert same["style_taken"] == same["style_taken_original"]
    assert same["phenotype_kept"] == 1.0 or np.isnan(same["phenotype_kept"])
    assert same["nucleus_iou"] == 1.0 and same["centroid_shift_px"] == 0.0 and same["input_dependence"] == 1.0
    with pytest.raises(InputError, match="IST"):
        restyle_metrics(root / "cells.h5", OOD, cfg, FOLD, gens["stargan"], tmp_path / "x.tsv")
    assert ist_config(cfg)["n_restyle_cells"] == 8
