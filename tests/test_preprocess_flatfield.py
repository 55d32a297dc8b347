"""BaSiC flatfield fitting recovers a known vignetting field; the model file and correction."""

import numpy as np
import pytest
import tifffile
from scipy.ndimage import gaussian_filter

from opsembed.io.errors import InputError
from opsembed.preprocess.flatfield import (correct, fit_basic, load_model, run_fit_flatfield, sample_paths,
                                           save_model)

SIZE = 128  # BaSiC's working size: no resampling inside the fit


def _vignetting() -> np.ndarray:
    """Smooth off-centre field, 1.0 at its peak falling to about 0.45 in the far corner."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    return (1.0 - 0.6 * ((yy - 0.4) ** 2 + (xx - 0.6) ** 2) / 0.52).astype(np.float32)


def _tiles(n: int, field: np.ndarray, offset: float, seed: int = 0) -> np.ndarray:
    """(n, 1, Y, X) random cell-like texture times ``field`` plus a constant dark ``offset``."""
    rng = np.random.default_rng(seed)
    texture = np.stack([gaussian_filter(rng.gamma(2.0, 100.0, (SIZE, SIZE)), 2) for _ in range(n)])
    return (texture * field + offset).astype(np.float32)[:, None]


def test_known_vignetting_field_is_recovered():
    field = _vignetting()
    flat, dark = fit_basic(_tiles(24, field, 0.0), get_darkfield=False)
    assert flat.shape == dark.shape == (1, SIZE, SIZE) and flat.dtype == np.float32
    assert flat.mean() == pytest.approx(1.0, abs=1e-5)
    assert not dark.any()
    truth = field / field.mean()
    assert np.corrcoef(flat[0].ravel(), truth.ravel())[0, 1] > 0.98
    relative_error = np.abs(flat[0] / truth - 1)
    assert relative_error.mean() < 0.03 and relative_error.max() < 0.2  # worst in the far corner


def test_darkfield_is_in_raw_units_and_correction_flattens():
    field = _vignetting()
    tiles = _tiles(24, field, offset=40.0, seed=3)
    flat, dark = fit_basic(tiles, get_darkfield=True)
    truth = field / field.mean()
    assert np.corrcoef(flat[0].ravel(), truth.ravel())[0, 1] > 0.95
    assert 0 < dark.mean() < 100  # the true offset is 40 raw units; BaSiC's estimate is rough
    # the corrected mean image is much flatter than the raw one (coefficient of variation)
    raw_mean = tiles[:, 0].mean(0)
    fixed_mean = np.mean([correct(t, flat, dark)[0] for t in tiles], axis=0)
    cv = lambda im: gaussian_filter(im, 4).std() / im.mean()  # noqa: E731
    assert cv(fixed_mean) < 0.3 * cv(raw_mean)


def test_correct_is_dark_subtracted_then_divided():
    raw = np.full((2, 2, 2), 10.0, np.float32)
    flat = np.array([[[1.0, 2.0], [0.5, 1.0]]] * 2, np.float32)
    dark = np.full((2, 2, 2), 2.0, np.float32)
    np.testing.assert_allclose(correct(raw, flat, dark)[0], [[8.0, 4.0], [16.0, 8.0]])


def test_sample_paths_is_seeded_and_order_free():
    paths = [f"t{i}.tif" for i in range(10)]
    a = sample_paths(paths, 4, seed=5)
    assert a == sample_paths(list(reversed(paths)), 4, seed=5)
    assert len(set(a)) == 4 and set(a) <= set(paths)
    assert sample_paths(paths, 40, seed=5) == sorted(paths)


def test_run_fit_flatfield_writes_model_and_qc(tmp_path):
    field = _vignetting()
    tiles = np.concatenate([_tiles(6, field, 0.0), _tiles(6, field[::-1], 0.0, seed=1)], axis=1)
    paths = []
    for i, tile in enumerate(tiles):
        paths.append(tmp_path / f"t{i}.tif")
        tifffile.imwrite(paths[-1], tile.astype(np.uint16))
    cfg = {"enabled": True, "n_tiles": 5, "get_darkfield": False, "offset": 0.0}
    run_fit_flatfield(paths, tmp_path / "ff.npz", tmp_path / "ff.png", cfg, ["a", "b"], 0, "P1")
    flat, dark, channels = load_model(tmp_path / "ff.npz")
    assert channels == ["a", "b"] and flat.shape == (2, SIZE, SIZE) and not dark.any()
    with np.load(tmp_path / "ff.npz") as data:
        assert len(data["tiles"]) == 5
    # channel b saw the field flipped upside down
    assert np.corrcoef(flat[0].ravel(), field.ravel())[0, 1] > 0.9
    assert np.corrcoef(flat[1].ravel(), field[::-1].ravel())[0, 1] > 0.9
    assert (tmp_path / "ff.png").read_bytes()[:4] == b"\x89PNG"


def test_disabled_flatfield_is_identity(tmp_path):
    tifffile.imwrite(tmp_path / "t.tif", np.zeros((3, 20, 30), np.uint8), photometric="minisblack")
    cfg = {"enabled": False, "n_tiles": 5, "get_darkfield": True, "offset": 0.0}
    run_fit_flatfield([tmp_path / "t.tif"], tmp_path / "ff.npz", tmp_path / "ff.png", cfg, ["a", "b", "c"], 0, "P")
    flat, dark, _ = load_model(tmp_path / "ff.npz")
    assert flat.shape == (3, 20, 30) and (flat == 1).all() and (dark == 0).all()


def _sparse_cells(n: int, field: np.ndarray, offset: float, seed: int = 0) -> np.ndarray:
    """(n, 1, Y, X) sparse bright blobs on a dark background, times ``field``, plus ``offset``."""
    rng = np.random.default_rng(seed)
    tiles = []
    for _ in range(n):
        spots = np.zeros((SIZE, SIZE))
        spots[rng.integers(0, SIZE, 25), rng.integers(0, SIZE, 25)] = rng.gamma(4.0, 2000.0, 25)
        tiles.append(gaussian_filter(spots, 4) + 5.0)
    return (np.stack(tiles) * field + offset).astype(np.float32)[:, None]


def test_configured_camera_offset_restores_the_vignetting_amplitude(tmp_path):
    field = _vignetting()
    paths = []
    for i, tile in enumerate(_sparse_cells(24, field, offset=100.0, seed=1)):
        paths.append(tmp_path / f"t{i}.tif")
        tifffile.imwrite(paths[-1], tile.astype(np.uint16), photometric="minisblack")
    cfg = {"enabled": True, "n_tiles": 24, "get_darkfield": False, "offset": 100.0}
    run_fit_flatfield(paths, tmp_path / "ff.npz", tmp_path / "ff.png", cfg, ["DNA"], 0, "P1")
    flat, dark, _ = load_model(tmp_path / "ff.npz")
    truth = field / field.mean()
    np.testing.assert_allclose(dark, 100.0)  # the offset lives in the darkfield
    amplitude = np.ptp(gaussian_filter(flat[0], 4)) / np.ptp(gaussian_filter(truth, 4))
    assert 0.8 < amplitude < 1.2


def _write_tiles(tmp_path, stack, name="t"):
    paths = []
    for i, tile in enumerate(stack):
        paths.append(tmp_path / f"{name}{i}.tif")
        tifffile.imwrite(paths[-1], tile, photometric="minisblack")
    return paths


ENABLED = {"enabled": True, "n_tiles": 24, "get_darkfield": False, "offset": 0.0}


def test_one_tile_plate_or_n_tiles_1_is_a_clear_error_not_an_index_error(tmp_path):
    """Case 13: BaSiC raises IndexError on one tile; the fit refuses first, naming the key."""
    paths = _write_tiles(tmp_path, _tiles(2, _vignetting(), 0.0).astype(np.uint16))
    with pytest.raises(InputError, match=r"plate P1: 1 tile\(s\); BaSiC needs at least 2 .*"
                                         r"preprocess\.flatfield\.enabled: false"):
        run_fit_flatfield(paths[:1], tmp_path / "ff.npz", tmp_path / "ff.png", ENABLED, ["a"], 0, "P1")
    with pytest.raises(InputError, match=r"preprocess\.flatfield\.n_tiles = 1: BaSiC needs at least 2"):
        run_fit_flatfield(paths, tmp_path / "ff.npz", tmp_path / "ff.png", dict(ENABLED, n_tiles=1), ["a"], 0, "P1")
    assert not (tmp_path / "ff.npz").exists()


def test_constant_tiles_are_left_out_of_the_fit():
    """Case 2: an all-zero tile in the sample does not enter the channel's fit."""
    tiles = _tiles(6, _vignetting(), 0.0, seed=4)
    with_zero = np.concatenate([tiles[:3], np.zeros((1, 1, SIZE, SIZE), np.float32), tiles[3:]])
    flat, dark = fit_basic(with_zero, get_darkfield=False)
    np.testing.assert_array_equal(flat, fit_basic(tiles, get_darkfield=False)[0])


def test_a_channel_constant_in_every_tile_is_an_error_and_no_nan_model_is_written(tmp_path, caplog):
    """Case 2: all-zero tiles made BaSiC write an all-NaN flatfield."""
    stack = np.concatenate([_tiles(4, _vignetting(), 0.0), np.zeros((4, 1, SIZE, SIZE), np.float32)], axis=1)
    paths = _write_tiles(tmp_path, stack.astype(np.uint16))
    with caplog.at_level("WARNING"), pytest.raises(
            InputError, match=r"plate P1, channel 'b': 0 of 4 sampled tiles are not constant; BaSiC needs at least 2"):
        run_fit_flatfield(paths, tmp_path / "ff.npz", tmp_path / "ff.png", ENABLED, ["a", "b"], 0, "P1")
    assert not (tmp_path / "ff.npz").exists()
    assert any("t0.tif: channel(s) ['b'] are constant (every pixel 0)" in r.getMessage() for r in caplog.records)


def test_non_finite_basic_output_is_an_error(monkeypatch):
    import basicpy

    class NaNBaSiC:
        def __init__(self, **kw):
            pass

        def fit(self, images):
            self.flatfield = np.full(images.shape[1:], np.nan, np.float32)
            self.darkfield = np.zeros(images.shape[1:], np.float32)

    monkeypatch.setattr(basicpy, "BaSiC", NaNBaSiC)
    with pytest.raises(InputError, match=r"channel 'DNA': BaSiC returned a non-finite flatfield or darkfield "
                                         r"from 3 tiles"):
        fit_basic(_tiles(3, _vignetting(), 0.0), get_darkfield=False, channels=["DNA"])


def test_nan_pixels_in_a_sampled_tile_name_the_tile(tmp_path):
    """Case 1: a float tile with NaN fails the fit naming the tile, not the channel."""
    stack = _tiles(3, _vignetting(), 0.0)
    stack[1, 0, 5, 5] = np.nan
    paths = _write_tiles(tmp_path, stack)
    with pytest.raises(InputError, match=r"t1\.tif: 1 pixel\(s\) are NaN or infinite"):
        run_fit_flatfield(paths, tmp_path / "ff.npz", tmp_path / "ff.png", ENABLED, ["a"], 0, "P1")


def test_a_non_finite_model_file_is_refused_naming_it(tmp_path):
    flat = np.ones((1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="non-finite"):
        save_model(tmp_path / "ff.npz", flat * np.nan, flat, ["a"], [])
    np.savez(tmp_path / "old.npz", flatfield=flat * np.nan, darkfield=flat, channels=np.array(["a"]),
             tiles=np.array([], dtype=str))
    with pytest.raises(InputError, match=r"old\.npz: the flatfield model holds non-finite"):
        load_model(tmp_path / "old.npz")


def test_fit_reads_one_file_per_channel(tmp_path):
    field = _vignetting()
    stack = np.concatenate([_tiles(6, field, 0.0), _tiles(6, field[::-1], 0.0, seed=1)], axis=1).astype(np.uint16)
    refs = []
    for i, tile in enumerate(stack):
        for token, plane in zip(("5", "2"), tile):
            tifffile.imwrite(tmp_path / f"f{i}-ch{token}.tiff", plane, compression="lzw")
        refs.append(str(tmp_path / f"f{i}-ch{{channel}}.tiff"))
    pattern = str(tmp_path / "{plate}{well}{tile}-ch{channel}.tiff")
    cfg = dict(ENABLED, n_tiles=6)
    run_fit_flatfield(refs, tmp_path / "ff.npz", tmp_path / "ff.png", cfg, ["DNA", "ER"], 0, "P1",
                      channel_tokens={"DNA": "5", "ER": "2"}, tiles_pattern=pattern)
    flat, _, channels = load_model(tmp_path / "ff.npz")
    assert channels == ["DNA", "ER"] and flat.shape == (2, SIZE, SIZE)
    assert np.corrcoef(flat[0].ravel(), field.ravel())[0, 1] > 0.9
    assert np.corrcoef(flat[1].ravel(), field[::-1].ravel())[0, 1] > 0.9


def test_dim_channel_with_pixels_below_the_offset_fits_a_finite_field():
    """A dim channel whose read noise dips below 0 (after the offset is subtracted) in a third
    of its pixels: BaSiC's darkfield fit alone returns NaN there; the fit clips at 0 first."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:256, 0:256]
    field = 1 + 0.3 * np.exp(-((yy - 128) ** 2 + (xx - 128) ** 2) / 20000)
    cells = np.zeros((4, 256, 256))
    for tile in cells:
        for cy, cx in rng.integers(0, 256, (30, 2)):
            tile += 80 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 60)
    stack = (cells * field + rng.normal(0, 8, cells.shape)).astype(np.float32)[:, None]
    assert (stack < 0).mean() > 0.3
    flat, dark = fit_basic(stack, get_darkfield=True)
    assert np.isfinite(flat).all() and np.isfinite(dark).all()
    assert flat.mean() == pytest.approx(1.0, abs=1e-4)
