"""GRAPE's generative check: planted feature found, table and figure written, restyling, errors."""

import numpy as np
import pandas as pd
import pytest
import torch

from gan_cells import GENES, TINY, write_cells
from opsembed.evaluate.generative import (block_features, decorrelated, feature_geometry, generative_check,
                                         group_summary, per_gene_shifts, restyle)
from opsembed.io.errors import InputError
from opsembed.io.h5 import read_attrs, read_crops, read_obs, write_cells_h5
from opsembed.models.features import cell_features
from opsembed.models.grape import build_grape
from opsembed.train.checkpoint import save_checkpoint
from opsembed.train.data import CellImages
from opsembed.train.grape_trainer import GrapeTrainer, grape_config

CPU = torch.device("cpu")
N = 20
"""Cells per gene; controls ("ctrl", the last gene) have the brightest DNA (channel 0) blob."""


def _model(cells, path):
    """An untrained GRAPE model file (TINY widths, 16 px), written as training writes it."""
    trainer = GrapeTrainer(CellImages(cells, TINY["image_size"], CPU, "auto", 0.5), grape_config(TINY), 0)
    save_checkpoint(trainer.model_payload(0), path)
    return path


def _rewrite(src, dst, keep=None, swap_channels=False):
    """A copy of cells file ``src`` with only rows ``keep`` and/or its two channels swapped."""
    obs, attrs = read_obs(src), read_attrs(src)
    keep = np.arange(len(obs)) if keep is None else keep
    crops = read_crops(src, keep)
    write_cells_h5(dst, obs.iloc[keep], [crops[:, ::-1] if swap_channels else crops],
                   {k: attrs[k] for k in ("channels", "genes", "controls", "crop_size", "batch_key", "seed")})
    return dst


@pytest.fixture
def screen(tmp_path):
    cells = tmp_path / "cells.h5"
    write_cells(cells, n_per_gene=N, size=32, channels=2)
    return cells, _model(cells, tmp_path / "model.pt")


def test_planted_dna_difference_is_the_top_feature(tmp_path, screen, one_thread):
    cells, model = screen
    out = generative_check(model, cells, tmp_path / "metrics.tsv", tmp_path / "gen.png", n_cells=N, seed=0,
                           features_path=tmp_path / "gen.tsv")
    table = out["features"]
    assert table["feature"].iloc[0].startswith(("ch0_nucleus_", "ch0_cytoplasm_"))  # the planted DNA intensity
    assert table["importance_mean"].iloc[0] > 0
    assert table["rf_balanced_accuracy"].iloc[0] > 0.9
    written = pd.read_csv(tmp_path / "gen.tsv", sep="\t")
    assert len(written) == 5 and written["rank"].tolist() == [1, 2, 3, 4, 5]
    for group in ("control", "perturbed", "generated"):
        assert {f"{group}_mean", f"{group}_median"} <= set(written.columns)
    # controls are the brightest: every DNA intensity mean drops from control to perturbed
    row = written.iloc[0]
    assert row["perturbed_mean"] < row["control_mean"]
    assert (written[["n_control", "n_perturbed", "n_generated", "n_genes"]].iloc[0].tolist()
            == [N, 4 * N, 4 * N, 4])                                  # N controls x 4 genes generated
    assert (written["n_genes_compared"] == 4).all()                   # every gene restyled and real
    assert written["per_gene_corr"].dropna().between(-1, 1).all() and "per_gene_slope" in written
    assert (tmp_path / "gen.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = pd.read_csv(tmp_path / "metrics.tsv", sep="\t").set_index("metric")["value"]
    for name in ("nucleus_iou", "centroid_shift_px", "input_dependence", "gap_closed_mean",
                 "class_accuracy_generated", "class_accuracy_inputs", "class_accuracy_chance",
                 "frechet_generated", "frechet_inputs"):
        assert np.isfinite(metrics[name]), name
    assert metrics["n_inputs"] == N and metrics["n_targets"] == 4
    assert metrics["class_accuracy_chance"] == pytest.approx(0.25)    # each gene its own class
    assert metrics["gap_closed_mean"] == pytest.approx(table["gap_closed_feature"].mean())


def test_top_feature_follows_the_planted_channel(tmp_path, screen, one_thread):
    cells, model = screen
    swapped = _rewrite(cells, tmp_path / "swapped.h5", swap_channels=True)  # difference now in channel 1
    table = generative_check(model, swapped, tmp_path / "g.tsv", tmp_path / "g.png", n_cells=N, seed=0)["features"]
    assert table["feature"].iloc[0].startswith(("ch1_nucleus_", "ch1_cytoplasm_"))
    assert table["importance_mean"].iloc[0] > 0


def test_restyle_is_generator_of_gene_style(screen, one_thread):
    _, model = screen
    payload = torch.load(model, weights_only=True)
    nets = build_grape(len(GENES), 2, payload["config"])
    nets.load_state_dict(payload["state"])
    nets.eval()
    x = torch.randn(5, 2, 16, 16)
    out = restyle(nets, x, 2, batch_size=2)                           # split into batches of 2, 2, 1
    with torch.no_grad():
        want = nets["generator"](x, nets["style"].all_styles()[2].expand(5, -1))
    assert out.shape == (5, 2, 16, 16) and out.dtype == np.float32
    np.testing.assert_allclose(out, want.numpy(), rtol=1e-4, atol=1e-4)


def test_group_summary_by_hand():
    groups = {"control": pd.DataFrame({"a": [0.0, 2.0, 4.0], "b": [1.0, 1.0, 1.0]}),
              "perturbed": pd.DataFrame({"a": [4.0, 6.0, 8.0], "b": [1.0, 1.0, 1.0]}),
              "generated": pd.DataFrame({"a": [1.0, np.nan, 5.0], "b": [2.0, 2.0, 2.0]})}
    out = group_summary(groups, ["a", "b"]).set_index("feature")
    assert out.loc["a", "control_mean"] == 2.0 and out.loc["a", "perturbed_median"] == 6.0
    assert out.loc["a", "generated_mean"] == 3.0                      # NaN ignored
    assert out.loc["a", "shift_reproduced"] == pytest.approx(0.25)   # (3 - 2) / (6 - 2)
    assert out.loc["a", "perturbed_shift_sd"] == pytest.approx(2.0)  # (6 - 2) / sd 2 of the controls
    assert out.loc["a", "generated_shift_sd"] == pytest.approx(0.5)
    assert np.isnan(out.loc["b", "shift_reproduced"])                 # no shift to reproduce
    assert np.isnan(out.loc["b", "perturbed_shift_sd"])               # constant controls: no SD unit
    assert out["gap_closed"].tolist() == pytest.approx([0.25, 0.25])  # only "a": 1 - |0.5 - 2| / 2


def test_gap_closed_penalises_wrong_directions():
    control = pd.DataFrame({"a": [-1.0, 1.0], "b": [-1.0, 1.0]})        # sd sqrt(2) for both
    r = np.sqrt(2)
    groups = {"control": control,
              "perturbed": pd.DataFrame({"a": [3 * r] * 2, "b": [4 * r] * 2}),   # shifts (3, 4) SDs
              "generated": pd.DataFrame({"a": [3 * r] * 2, "b": [-4 * r] * 2})}  # (3, -4): b mirrored
    out = group_summary(groups, ["a", "b"])
    assert out["shift_reproduced"].tolist() == pytest.approx([1.0, -1.0])
    assert out["gap_closed"].iloc[0] == pytest.approx(1 - 8 / 5)     # 1 - ||(0, -8)|| / ||(3, 4)||
    groups["generated"] = groups["perturbed"]
    assert group_summary(groups, ["a", "b"])["gap_closed"].iloc[0] == pytest.approx(1.0)
    groups["generated"] = control
    assert group_summary(groups, ["a", "b"])["gap_closed"].iloc[0] == pytest.approx(0.0)


def test_decorrelated_keeps_one_of_each_family():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    x = pd.DataFrame({"a": a, "a_scaled": 3 * a + 1, "b": b, "a_negated": -a, "a_cubed": a ** 3})
    assert decorrelated(x) == ["a", "b"]                              # rank copies, sign ignored
    assert decorrelated(x, max_rho=1.01) == list(x.columns)           # nothing merges above |rho| 1


def test_feature_geometry_scales_with_resizing():
    assert feature_geometry(96, 96) == {"ring_width": 8, "sigma": 1.0}
    assert feature_geometry(32, 96) == {"ring_width": 3, "sigma": pytest.approx(1 / 3)}


def test_no_control_cells_is_an_input_error(tmp_path, screen):
    cells, model = screen
    genes = read_obs(cells)["gene"].to_numpy()
    no_ctrl = _rewrite(cells, tmp_path / "noctrl.h5", keep=np.flatnonzero(genes != "ctrl"))
    with pytest.raises(InputError, match=r"noctrl\.h5.*control label 'ctrl'"):
        generative_check(model, no_ctrl, tmp_path / "g.tsv", tmp_path / "g.png", n_cells=N, seed=0)
    assert not (tmp_path / "g.tsv").exists()


def test_worker_processes_give_the_same_features(one_thread):
    rng = np.random.default_rng(0)
    crops = rng.normal(0, 0.3, (6, 2, 16, 16)).astype(np.float32)
    crops[:, :, 5:11, 5:11] += 2.0                                    # a square "nucleus" in every crop
    geometry = feature_geometry(16, 32)
    blocks = [crops[:2], crops[2:3], crops[3:]]
    serial = block_features(iter(blocks), ["a", "b"], geometry, 6, "test", threads=1)
    parallel = block_features(iter(blocks), ["a", "b"], geometry, 6, "test", threads=2)
    pd.testing.assert_frame_equal(serial, parallel)
    pd.testing.assert_frame_equal(serial, cell_features(crops, ["a", "b"], progress=False, **geometry))


def test_complexes_of_the_curated_table_are_the_classes(tmp_path, screen, one_thread):
    cells, model = screen
    curated = tmp_path / "ground_truth.tsv"
    pd.DataFrame({"gene": ["GENEA", "GENEB", "GENEC", "GENED"], "complex": ["X", "X", "X", "Y"]}).to_csv(
        curated, sep="\t", index=False)                              # as curate_ground_truth writes it
    out = generative_check(model, cells, tmp_path / "m.tsv", tmp_path / "g.png", n_cells=N, seed=0,
                           ground_truth_path=curated)
    m = out["metrics"].set_index("metric")["value"]
    assert m["n_classes"] == 2 and m["n_targets_scored"] == 4
    assert m["class_accuracy_chance"] == pytest.approx(0.75)        # 3 of the 4 targets are in X


def test_per_gene_shifts_by_hand():
    r = np.sqrt(2)
    control = pd.DataFrame({"a": [-1.0, 1.0], "b": [-1.0, 1.0]})                  # mean 0, sd sqrt(2)
    perturbed = pd.DataFrame({"a": [r, r, 2 * r, 2 * r, -r, -r, 9.0],              # shifts 1, 2, -1 SDs
                              "b": [r, r, 2 * r, 2 * r, -r, -r, 9.0]})
    perturbed_genes = np.array(["g1", "g1", "g2", "g2", "g3", "g3", "only_real"])
    generated = pd.DataFrame({"a": [r / 2, np.nan, r, -r / 2],                      # half of each shift
                              "b": [3 * r, 3 * r, 3 * r, 3 * r]})                   # one shift for every gene
    generated_genes = np.array(["g1", "g1", "g2", "g3"])
    out = per_gene_shifts(control, perturbed, perturbed_genes, generated, generated_genes, ["a", "b"])
    out = out.set_index("feature")
    assert out.loc["a", "per_gene_slope"] == pytest.approx(0.5)
    assert out.loc["a", "per_gene_intercept"] == pytest.approx(0.0, abs=1e-9)
    assert out.loc["a", "per_gene_corr"] == pytest.approx(1.0)
    assert out.loc["b", "per_gene_slope"] == pytest.approx(0.0, abs=1e-9)       # the gene makes no difference
    assert out.loc["b", "per_gene_intercept"] == pytest.approx(3.0)              # 3 SDs added to every restyle
    assert np.isnan(out.loc["b", "per_gene_corr"])
    assert out["n_genes_compared"].tolist() == [3, 3]                            # only_real is not generated
    mirrored = per_gene_shifts(control, perturbed, perturbed_genes, -generated, generated_genes, ["a"])
    assert mirrored["per_gene_corr"].iloc[0] == pytest.approx(-1.0)
    assert np.isnan(per_gene_shifts(control, perturbed.iloc[:4], perturbed_genes[:4], generated, generated_genes,
                                    ["a"])["per_gene_slope"].iloc[0])           # 2 genes: too few
