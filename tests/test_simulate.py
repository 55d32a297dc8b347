"""The simulated demo screen (opsembed.simulate): design, rendering, outputs."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tifffile
from scipy import stats

from conftest import REPO
from opsembed.io.cells import read_cells
from opsembed.io.errors import InputError
from opsembed.io.ground_truth import read_complexes
from opsembed.io.tables import read_table
from opsembed.simulate.batch import PlateEffects, plate_effects
from opsembed.simulate.complexes import COMPLEXES, gene_library
from opsembed.simulate.design import assign_cells, plate_genes, screen_layout
from opsembed.simulate.phenotypes import gene_effects, sample_factors, sgrna_efficacy
from opsembed.simulate.render import CAMERA_OFFSET, READ_NOISE, render_tile
from opsembed.simulate.screen import BAND, SPACING, place_cells, simulate_screen

DEFAULT = {"seed": 0, "n_plates": 3, "wells_per_plate": 2, "tiles_per_well": 9, "tile_size": 512,
           "cells_per_tile": 45, "plate_gene_fraction": 0.7, "control_fraction": 0.12}
TINY = dict(DEFAULT, n_plates=2, wells_per_plate=1, tiles_per_well=2, tile_size=128, cells_per_tile=6)
CHANNELS = ["DNA", "gH2AX", "tubulin", "actin"]
CONTROLS = "nontargeting"
PATTERN = "tiles/{plate}/{well}/{tile}.tif"


def _simulate(folder, sim=TINY, channels=CHANNELS):
    simulate_screen(sim, channels, CONTROLS, str(folder / PATTERN), folder / "cells.csv",
                    folder / "complexes.tsv", folder / "factors.tsv")
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return _simulate(tmp_path_factory.mktemp("tiny"))


def _flat_plate(gain=1.0, background=0.0, psf=1.0):
    """Plate effects with flat illumination and the same gain/background in every channel."""
    return PlateEffects(gains=np.full(4, gain), background=np.full(4, background), psf_sigma=psf,
                        field_centre=(0.0, 0.0), field_floor=1.0, shift={})


def _cell(**overrides):
    """One neutral interphase cell in the middle of a 96 px tile, as a factor row."""
    row = {"y": 48.0, "x": 48.0, "nucleus_radius": 11.0, "nucleus_aspect": 1.3, "dna_intensity": 1.0,
           "dna_texture": 0.3, "foci_rate": 1.0, "foci_count": 0, "tubulin_intensity": 1.0,
           "tubulin_filaments": 0.6, "actin_intensity": 1.0, "stress_fibres": 0.35, "cell_radius": 24.0,
           "cell_elongation": 1.3, "cell_angle": 0.3, "nucleus_angle": 0.3, "cell_dy": 0.0,
           "cell_dx": 0.0, "mitotic": 0}
    row.update(overrides)
    return pd.DataFrame([row])


def _disk_sum(image, y, x, radius):
    yy, xx = np.mgrid[:image.shape[0], :image.shape[1]]
    return float((image[(yy - y) ** 2 + (xx - x) ** 2 <= radius ** 2] - CAMERA_OFFSET).sum())


# ----- design -----

def test_screen_layout_names_and_order():
    layout = screen_layout(DEFAULT)
    assert list(layout.columns) == ["plate", "well", "tile"]
    assert len(layout) == 3 * 2 * 9
    assert sorted(layout["plate"].unique()) == ["P1", "P2", "P3"]
    assert list(layout["well"].unique()) == ["A1", "A2"]
    assert list(layout["tile"].unique()) == [str(t) for t in range(9)]
    assert all(layout[c].map(type).eq(str).all() for c in layout.columns)
    assert screen_layout(dict(DEFAULT, wells_per_plate=14))["well"].unique()[12:].tolist() == ["B1", "B2"]


def test_screen_layout_imports_nothing_heavy():
    code = ("import sys; import opsembed.simulate.design as d; d.screen_layout({'n_plates': 2, "
            "'wells_per_plate': 1, 'tiles_per_well': 1}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'skimage', 'scipy')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO / "workflow" / "scripts",
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_plate_genes_sparse_and_covering():
    pools = plate_genes(DEFAULT)
    library = set(gene_library())
    assert all(len(genes) == round(0.7 * len(library)) for genes in pools.values())
    assert all(set(genes) != library for genes in pools.values())  # sparse: no plate has all
    counts = pd.Series([g for genes in pools.values() for g in genes]).value_counts()
    assert set(counts.index) == library and counts.min() >= 2  # every gene on >= 2 of 3 plates
    assert plate_genes(dict(DEFAULT, n_plates=1))["P1"] == gene_library()
    assert all(g == gene_library() for g in plate_genes(dict(DEFAULT, plate_gene_fraction=1.0)).values())
    # two plates cannot each hold 70% of the genes twice: every gene on at least one
    two = plate_genes(dict(DEFAULT, n_plates=2))
    assert set(two["P1"]) | set(two["P2"]) == library and set(two["P1"]) != set(two["P2"])


def test_assign_cells_pooled_balanced_with_controls():
    cells = assign_cells(DEFAULT, CONTROLS)
    assert len(cells) == 3 * 2 * 9 * 45
    pools = plate_genes(DEFAULT)
    for plate, part in cells.groupby("plate"):
        n_ctrl = int((part["gene"] == CONTROLS).sum())
        assert n_ctrl == round(0.12 * len(part))
        genes = part.loc[part["gene"] != CONTROLS, "gene"].value_counts()
        assert set(genes.index) == set(pools[plate])  # every plate gene, nothing else
        assert genes.max() - genes.min() <= 1
        assert part["well"].nunique() == 2 and part.groupby("well")["gene"].nunique().min() > 30
    assert cells["sgRNA"].str.split("_sg").str[0].equals(cells["gene"])


def test_complex_table_is_a_valid_ground_truth(tiny):
    sizes = [len(genes) for genes in COMPLEXES.values()]
    assert 8 <= len(COMPLEXES) <= 12 and min(sizes) >= 5 and max(sizes) <= 6
    assert len(set(gene_library())) == len(gene_library())  # no gene in two complexes
    truth = read_complexes(tiny / "complexes.tsv")
    assert truth.groupby("complex")["gene"].apply(list).to_dict() == COMPLEXES
    cells = read_cells(tiny / "cells.csv")
    assert set(cells["gene"]) - {CONTROLS} <= set(truth["gene"])


# ----- phenotypes and batch effects -----

def test_gene_phenotype_shifts_factors():
    effects, efficacy = gene_effects(DEFAULT, CONTROLS), sgrna_efficacy(DEFAULT, CONTROLS)
    assert (effects.loc[CONTROLS] == 0).all()
    rng = np.random.default_rng(1)
    n = 3000
    mcm = sample_factors(["MCM2"] * n, ["MCM2_sg1"] * n, effects, efficacy, {}, rng)
    ctrl = sample_factors([CONTROLS] * n, [f"{CONTROLS}_sg1"] * n, effects, efficacy, {}, rng)
    assert ctrl["penetrant"].sum() == 0
    p = efficacy["MCM2_sg1"]
    assert abs(mcm["penetrant"].mean() - p) < 4 * np.sqrt(p * (1 - p) / n)
    hit = mcm[mcm["penetrant"] == 1]
    assert hit["nucleus_radius"].mean() > 1.1 * ctrl["nucleus_radius"].mean()
    assert hit["foci_count"].mean() > 2 * ctrl["foci_count"].mean()
    assert abs(ctrl["mitotic"].mean() - 0.04) < 0.015
    # APC/C knockouts arrest in mitosis
    apc = sample_factors(["CDC27"] * n, ["CDC27_sg1"] * n, effects, efficacy, {}, rng)
    assert apc["mitotic"].mean() > 3 * ctrl["mitotic"].mean()


def test_render_noise_model_known_answer():
    rng = np.random.default_rng(0)
    empty = _cell().iloc[:0]
    dark = render_tile(empty, 128, 4, _flat_plate(), rng)
    assert dark.dtype == np.uint16 and dark.shape == (4, 128, 128)
    dark = dark.astype(float)
    assert abs(dark.mean() - CAMERA_OFFSET) < 0.05
    assert abs(dark.std() - READ_NOISE) < 0.05
    # background b photons at gain g: mean offset + b g, variance b g (Poisson) + read^2
    lit = render_tile(empty, 128, 4, _flat_plate(gain=2.0, background=50.0), rng).astype(float)
    assert abs(lit.mean() - (CAMERA_OFFSET + 100.0)) < 0.3
    assert abs(lit.var() - (100.0 + READ_NOISE ** 2)) < 4.0


def test_render_larger_nucleus_gives_more_dna_signal():
    def dna(radius):
        image = render_tile(_cell(nucleus_radius=radius), 96, 1, _flat_plate(), np.random.default_rng(3))
        return _disk_sum(image[0], 48, 48, 20)

    ratio = dna(14.0) / dna(9.0)
    assert 2.2 < ratio < 2.8  # the area ratio (14 / 9)^2 = 2.42, up to texture and nucleoli


def test_render_applies_gain_and_channel_count():
    rng = np.random.default_rng
    low = render_tile(_cell(), 96, 4, _flat_plate(gain=1.0), rng(5)).astype(float) - CAMERA_OFFSET
    high = render_tile(_cell(), 96, 4, _flat_plate(gain=1.5), rng(5)).astype(float) - CAMERA_OFFSET
    ratio = high.sum(axis=(1, 2)) / low.sum(axis=(1, 2))
    assert np.allclose(ratio, 1.5, rtol=0.02)
    assert render_tile(_cell(), 96, 2, _flat_plate(), rng(5)).shape == (2, 96, 96)
    with pytest.raises(InputError, match="1 to 4 channels"):
        render_tile(_cell(), 96, 5, _flat_plate(), rng(5))


def test_plate_effects_differ_between_plates():
    effects = plate_effects(TINY)
    p1, p2 = effects["P1"], effects["P2"]
    assert np.all(np.abs(np.log(p1.gains / p2.gains)) > 0.6)  # gains 0.8 apart in log space
    assert abs(p1.psf_sigma - p2.psf_sigma) > 0.7
    assert p1.field_centre != p2.field_centre
    for plate in (p1, p2):
        field = plate.field(128)
        assert field.max() <= 1.0 and 0.5 <= field.min() < 0.66


def test_batch_scale_multiplies_only_the_plate_shifts():
    base, tripled = plate_effects({**TINY, "batch_scale": 1.0}), plate_effects({**TINY, "batch_scale": 3.0})
    for plate in base:
        assert set(tripled[plate].shift) == set(base[plate].shift)
        for name, value in base[plate].shift.items():
            assert tripled[plate].shift[name] == pytest.approx(3.0 * value)
        np.testing.assert_array_equal(tripled[plate].gains, base[plate].gains)
        assert tripled[plate].psf_sigma == base[plate].psf_sigma
    assert all(v == 0 for v in plate_effects({**TINY, "batch_scale": 0.0})["P1"].shift.values())
    with pytest.raises(InputError, match="batch_scale"):
        plate_effects({**TINY, "batch_scale": -1.0})


def test_place_cells_spacing_and_edges():
    rng = np.random.default_rng(0)
    radii = np.full(60, 24.0)
    pos = place_cells(radii, 45, 512, rng)
    inside, band = pos[:45], pos[45:]
    assert ((inside >= 0) & (inside <= 511)).all()
    assert (((band < 0) | (band > 511)).any(axis=1) & (band >= -BAND).all(axis=1)
            & (band <= 511 + BAND).all(axis=1)).all()
    dist = np.linalg.norm(pos[:, None] - pos[None], axis=2) + np.eye(len(pos)) * 1e9
    assert dist.min() >= SPACING * 48.0
    near_edge = np.minimum(inside, 511 - inside).min(axis=1) < 48  # within crop_size / 2
    assert 0 < near_edge.sum() < 45


# ----- the written screen -----

def test_outputs_are_deterministic(tiny, tmp_path):
    again = _simulate(tmp_path)
    for name in ("cells.csv", "complexes.tsv", "factors.tsv"):
        assert (tiny / name).read_bytes() == (again / name).read_bytes(), name
    for row in screen_layout(TINY).itertuples():
        path = PATTERN.format(plate=row.plate, well=row.well, tile=row.tile)
        assert (tiny / path).read_bytes() == (again / path).read_bytes(), path
    other = _simulate(tmp_path / "seed1", dict(TINY, seed=1))
    assert (tiny / "cells.csv").read_bytes() != (other / "cells.csv").read_bytes()


def test_tiles_are_uint16_cyx_with_camera_offset(tiny):
    files = sorted((tiny / "tiles").rglob("*.tif"))
    assert len(files) == len(screen_layout(TINY))
    for path in files:
        image = tifffile.imread(path)
        assert image.dtype == np.uint16 and image.shape == (4, 128, 128)
        floor = np.percentile(image, 1, axis=(1, 2))
        assert (floor > CAMERA_OFFSET - 3 * READ_NOISE).all() and (floor < CAMERA_OFFSET + 80).all()
        assert (image.max(axis=(1, 2)) > CAMERA_OFFSET + 200).all()  # cells are there


def test_fewer_channels_render_the_first_ones(tmp_path):
    folder = _simulate(tmp_path, dict(TINY, n_plates=1, tiles_per_well=1), channels=["Hoechst"])
    assert tifffile.imread(folder / "tiles/P1/A1/0.tif").shape == (1, 128, 128)
    assert "gain_Hoechst" in read_table(folder / "factors.tsv").columns
    with pytest.raises(InputError, match="1 to 4 channels"):
        _simulate(tmp_path, TINY, channels=CHANNELS + ["extra"])


def test_cell_table_contract(tiny):
    cells = read_cells(tiny / "cells.csv")
    assert len(cells) == 2 * 1 * 2 * 6 and cells["cell_id"].is_unique
    assert list(cells.columns) == ["plate", "well", "tile", "y", "x", "gene", "sgRNA", "cell_id"]
    assert ((cells[["y", "x"]] >= 0) & (cells[["y", "x"]] <= 127)).all().all()
    assert (cells.groupby("plate")["gene"].apply(lambda g: (g == CONTROLS).sum()) >= 1).all()
    pools = plate_genes(TINY)
    for plate, part in cells.groupby("plate"):
        assert set(part["gene"]) - {CONTROLS} <= set(pools[plate])
    factors = read_table(tiny / "factors.tsv")
    assert factors["cell_id"].astype(str).tolist() == cells["cell_id"].tolist()
    for col in ("nucleus_radius", "cell_radius", "cell_angle", "foci_count", "mitotic", "penetrant",
                "illumination", "psf_sigma", "gain_DNA", "gain_actin", "dna_intensity"):
        assert col in factors.columns
    assert factors.groupby("plate")["gain_DNA"].nunique().eq(1).all()
    assert factors.groupby("plate")["gain_DNA"].first().nunique() == 2


def test_dna_image_follows_the_factors(tmp_path):
    """Per cell, integrated DNA signal / (gain x illumination) tracks radius^2 x intensity."""
    folder = _simulate(tmp_path, dict(TINY, tiles_per_well=4, tile_size=192, cells_per_tile=10))
    cells = read_cells(folder / "cells.csv")
    factors = read_table(folder / "factors.tsv")
    measured, expected = [], []
    for cell, fac in zip(cells.itertuples(), factors.itertuples()):
        inside = min(cell.y, cell.x, 191 - cell.y, 191 - cell.x) > 20
        if not inside or fac.mitotic:
            continue
        image = tifffile.imread(folder / PATTERN.format(plate=cell.plate, well=cell.well, tile=cell.tile))
        background = (fac.background_DNA * fac.gain_DNA * fac.illumination) * np.pi * 18 ** 2
        signal = _disk_sum(image[0].astype(float), round(cell.y), round(cell.x), 18) - background
        measured.append(signal / (fac.gain_DNA * fac.illumination))
        expected.append(fac.nucleus_radius ** 2 * fac.dna_intensity)
    assert len(measured) >= 15
    assert stats.spearmanr(measured, expected).statistic > 0.9


def test_effect_scale_multiplies_every_gene_effect_and_leaves_controls_neutral():
    from opsembed.simulate.phenotypes import gene_effects

    sim = {"seed": 3, "n_plates": 2}
    base = gene_effects({**sim, "effect_scale": 1.0}, "nontargeting")
    doubled = gene_effects({**sim, "effect_scale": 2.0}, "nontargeting")
    np.testing.assert_allclose(doubled.to_numpy(), 2.0 * base.to_numpy())
    assert (doubled.loc["nontargeting"] == 0).all()
    assert (gene_effects({**sim, "effect_scale": 0.0}, "nontargeting").to_numpy() == 0).all()
    assert np.abs(base.drop(index="nontargeting").to_numpy()).sum() > 0
