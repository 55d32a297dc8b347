"""Technical batch effects of the simulator (opsembed.simulate.technical): each one changes
the images as documented, and ``simulate.technical_scale: 0`` turns all of them off."""

import hashlib

import numpy as np
import pytest

from opsembed.simulate import render
from opsembed.simulate.batch import PlateEffects
from opsembed.simulate.render import CAMERA_OFFSET, render_tile
from opsembed.simulate.screen import simulate_screen
from opsembed.simulate.technical import (REF, TechnicalEffects, background_field, bleed_through, stain_response,
                                         technical_effects, well_gains)

TINY = {"seed": 0, "n_plates": 2, "wells_per_plate": 1, "tiles_per_well": 2, "tile_size": 128,
        "cells_per_tile": 6, "plate_gene_fraction": 0.7, "control_fraction": 0.12}
TINY_SHA256 = "fd81d4588e73c06dca578e069e2e6dea5c822f3381317391e4966d79022bcfab"
"""Every output file of TINY, rendered by main@8ee13c4, before technical effects existed."""
FLAT = PlateEffects(gains=np.ones(4), background=np.zeros(4), psf_sigma=1.0, field_centre=(0.0, 0.0),
                    field_floor=1.0, shift={})
NONE = TechnicalEffects(extra_blur=0.0, gamma=np.ones(4), bleed=np.zeros(4), background_amp=np.zeros(4),
                        read_noise=0.0)


@pytest.fixture
def point(monkeypatch):
    """render_tile draws, instead of cells, one point of 2e5 photons in channel 0 at (32, 32)."""
    def draw(canvas, textures, cell, rng):
        canvas[0, 32 + render.PAD, 32 + render.PAD] += 2e5
    monkeypatch.setattr(render, "_draw_cell", draw)
    return render.pd.DataFrame([{"y": 32.0, "x": 32.0}])


def _render(cells, technical=None, well_gain=None, seed=0):
    rng = np.random.default_rng(seed)
    img = render_tile(cells, 64, 4, FLAT, rng, technical, well_gain,
                      None if technical is None else np.random.default_rng(9))
    return img.astype(float) - CAMERA_OFFSET


def _width(image):
    """RMS radius (px) of a spot centred at (32, 32)."""
    yy, xx = np.mgrid[:64, :64]
    w = np.clip(image, 0, None)
    return float(np.sqrt((w * ((yy - 32) ** 2 + (xx - 32) ** 2)).sum() / w.sum() / 2))


def test_blur_widens_a_point(point):
    sharp = _width(_render(point, NONE)[0])
    blurred = _width(_render(point, TechnicalEffects(1.5, np.ones(4), np.zeros(4), np.zeros(4), 0.0))[0])
    assert sharp == pytest.approx(1.0, abs=0.05)                  # the plate's PSF sigma
    assert blurred == pytest.approx(np.hypot(1.0, 1.5), abs=0.07)  # in quadrature: 1.80 px


def test_gamma_bends_a_ramp():
    ramp = np.linspace(0, 2 * REF, 101)[None, None, :].repeat(2, axis=0)
    out = stain_response(ramp, np.array([1.0, 0.5]))
    np.testing.assert_allclose(out[0], ramp[0])                     # gamma 1: a straight line
    np.testing.assert_allclose(out[1, 0, [0, 50, 100]], [0.0, REF, REF * np.sqrt(2)])   # fixed at REF
    assert (out[1, 0, 1:50] > ramp[1, 0, 1:50]).all()               # gamma < 1: concave, above the line


def test_bleed_through_adds_channel_a_to_b(point):
    x = np.zeros((3, 2, 2))
    x[0] = 100.0
    x[1] = 10.0
    np.testing.assert_allclose(bleed_through(x, np.array([0.0, 0.05, 0.5]))[:, 0, 0], [100.0, 15.0, 5.0])
    img = _render(point, TechnicalEffects(0.0, np.ones(4), np.array([0.0, 0.1, 0.0, 0.0]), np.zeros(4), 0.0))
    assert img[1].sum() == pytest.approx(0.1 * img[0].sum(), rel=0.02)   # 10 % of the DNA spot in gH2AX
    assert abs(img[2].sum()) < 0.002 * img[0].sum()


def test_well_gain_scales_a_well(point):
    base = _render(point, NONE)
    twice = _render(point, NONE, well_gain=np.array([2.0, 1.0, 1.0, 1.0]))
    assert twice[0].sum() == pytest.approx(2 * base[0].sum(), rel=0.01)
    wells = [("P1", "A1"), ("P1", "A2"), ("P2", "A1")]
    gains = well_gains(dict(TINY, technical_scale=1.0), wells)
    assert len({tuple(g) for g in gains.values()}) == 3 and all(0.6 < g.min() and g.max() < 1.6 for g in gains.values())
    half = well_gains(dict(TINY, technical_scale=0.5), wells)
    for w in wells:      # the same draws, log gain times the scale
        np.testing.assert_allclose(np.log(half[w]), 0.5 * np.log(gains[w]))


def test_low_frequency_background_is_smooth_and_scaled():
    f = background_field((128, 128), 0.3, np.random.default_rng(0))
    assert (f > 0).all()
    assert np.log(f).std() == pytest.approx(0.3, rel=1e-6) and np.log(f).mean() == pytest.approx(-0.045)
    assert np.corrcoef(f[:, :-1].ravel(), f[:, 1:].ravel())[0, 1] > 0.99    # neighbours alike


def test_plate_effects_scale_and_are_off_at_zero(tmp_path):
    assert technical_effects(dict(TINY, technical_scale=0.0), 2.0) is None
    assert all((g == 1).all() for g in well_gains(dict(TINY, technical_scale=0.0), [("P1", "A1")]).values())
    one, two = (technical_effects(dict(TINY, technical_scale=s), 2.0) for s in (1.0, 2.0))
    assert one["P1"] != one["P2"]
    np.testing.assert_allclose(np.log(two["P1"].gamma), 2 * np.log(one["P1"].gamma))
    np.testing.assert_allclose(two["P1"].bleed, 2 * one["P1"].bleed)
    assert two["P1"].extra_blur == pytest.approx(2 * one["P1"].extra_blur)
    assert 2.0 <= one["P1"].read_noise <= 8.0 and one["P1"].bleed[0] == 0


def _digest(folder):
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(folder)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _simulate(folder, sim):
    simulate_screen(sim, ["DNA", "gH2AX", "tubulin", "actin"], "nontargeting",
                    str(folder / "tiles/{plate}/{well}/{tile}.tif"), folder / "cells.csv",
                    folder / "complexes.tsv", folder / "factors.tsv")
    return folder


def test_technical_scale_zero_renders_the_screen_of_before(tmp_path):
    assert _digest(_simulate(tmp_path / "zero", dict(TINY, technical_scale=0.0))) == TINY_SHA256
    on = _simulate(tmp_path / "on", dict(TINY, technical_scale=1.0))
    assert _digest(on) != TINY_SHA256
    factors = render.pd.read_csv(on / "factors.tsv", sep="\t")
    assert {"read_noise", "gamma_DNA", "bleed_gH2AX", "well_gain_actin"} <= set(factors.columns)
    assert (on / "cells.csv").read_bytes() == (tmp_path / "zero" / "cells.csv").read_bytes()  # same cells
