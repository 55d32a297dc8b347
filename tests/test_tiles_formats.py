"""Real-world tile files: compression, channel layouts, OME / ImageJ axes, one file per
channel, and the cheap header checks (codec, truncation) validation runs on every tile."""

import numpy as np
import pytest
import tifffile

from opsembed.io import tiles
from opsembed.io.errors import InputError
from opsembed.io.tiles import (channel_files, check_pattern, read_tile, resolve_tokens, tile_files, tile_path,
                               tile_shape)

RNG = np.random.default_rng(7)
CYX = RNG.integers(0, 4000, (4, 40, 48), dtype=np.uint16)  # 4 channels of 40 x 48 pixels


def _write(path, data, **kw):
    tifffile.imwrite(path, data, **kw)
    return path


@pytest.mark.parametrize("compression", ["lzw", "zlib", "zstd", "lzma", "packbits"])
def test_compressed_tiles_read_exactly(tmp_path, compression):
    path = _write(tmp_path / "t.tif", CYX, compression=compression, photometric="minisblack")
    assert tile_shape(path, 4) == (4, 40, 48)
    np.testing.assert_array_equal(read_tile(path, 4), CYX)


def test_lzw_with_horizontal_predictor_reads(tmp_path):
    path = _write(tmp_path / "t.tif", CYX, compression="lzw", predictor=True, photometric="minisblack")
    np.testing.assert_array_equal(read_tile(path, 4), CYX)


def _without_imagecodecs(monkeypatch):
    """tifffile as it runs where imagecodecs is not installed (its pure-Python fallback)."""
    from tifffile import _imagecodecs
    from tifffile.tifffile import CompressionCodec, PredictorCodec

    monkeypatch.setattr(tifffile.tifffile, "imagecodecs", _imagecodecs)
    monkeypatch.setitem(tifffile.TIFF.__dict__, "DECOMPRESSORS", CompressionCodec(encode=False))
    monkeypatch.setitem(tifffile.TIFF.__dict__, "UNPREDICTORS", PredictorCodec(encode=False))
    monkeypatch.setattr(tiles, "_has_imagecodecs", lambda: False)


def test_missing_codec_is_named_at_the_header_check_and_at_reading(tmp_path, monkeypatch):
    path = _write(tmp_path / "t.tif", CYX, compression="lzw", photometric="minisblack")
    _without_imagecodecs(monkeypatch)
    for check in (tile_shape, read_tile):
        with pytest.raises(InputError, match=r"t\.tif: the tile uses compression LZW .*needs the Python "
                                             r"package imagecodecs"):
            check(path)
    plain = _write(tmp_path / "plain.tif", CYX, photometric="minisblack")  # uncompressed still reads
    np.testing.assert_array_equal(read_tile(plain, 4), CYX)


def test_undecodable_compression_is_named(tmp_path):
    path = _write(tmp_path / "t.tif", CYX[0], photometric="minisblack")
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags["Compression"]
        data[tag.valueoffset:tag.valueoffset + 2] = (34661).to_bytes(2, "little")  # JBIG, no decoder here
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"t\.tif: the tile uses compression JBIG .*cannot decode"):
        tile_shape(path)


@pytest.mark.parametrize("pages", [1, 4])
def test_truncated_tile_fails_the_header_check(tmp_path, pages):
    data = CYX[0] if pages == 1 else CYX
    path = _write(tmp_path / "t.tif", data, compression="lzw", photometric="minisblack")
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(InputError, match=r"t\.tif: .*truncated"):
        tile_shape(path)
    with pytest.raises(InputError, match=r"t\.tif: .*truncated"):
        read_tile(path)


def test_nan_and_inf_pixels_name_the_tile(tmp_path):
    image = CYX.astype(np.float32)
    image[2, 5, 7] = np.nan
    image[3, 0, 0] = np.inf
    path = _write(tmp_path / "t.tif", image, photometric="minisblack")
    assert tile_shape(path, 4) == (4, 40, 48)  # headers only: pixels are checked where they are read
    with pytest.raises(InputError, match=r"t\.tif: 2 pixel\(s\) are NaN or infinite \(the first at channel 2, "
                                         r"y 5, x 7\)"):
        read_tile(path, 4)


def test_yxc_tile_with_rgb_style_samples_is_read_channels_last(tmp_path):
    yxc = np.ascontiguousarray(CYX[:3].transpose(1, 2, 0))
    path = _write(tmp_path / "rgb.tif", yxc)  # tifffile stores (Y, X, 3) as RGB samples
    assert tile_shape(path, 3) == (3, 40, 48)
    np.testing.assert_array_equal(read_tile(path, 3), CYX[:3])


def test_yxc_tile_whose_last_axis_matches_channels_is_read_channels_last(tmp_path):
    cyx = RNG.integers(0, 4000, (5, 40, 48), dtype=np.uint16)
    path = _write(tmp_path / "yxc.tif", np.ascontiguousarray(cyx.transpose(1, 2, 0)))  # 40 pages of (48, 5)
    assert tile_shape(path, 5) == (5, 40, 48)
    np.testing.assert_array_equal(read_tile(path, 5), cyx)


def test_yxc_tile_of_other_channel_count_is_named_not_read_as_many_channels(tmp_path):
    path = _write(tmp_path / "yxc.tif", np.zeros((256, 256, 5), np.uint16))
    with pytest.raises(InputError, match=r"yxc\.tif: tile has 256 channel\(s\) but config `channels` lists 4 .*"
                                         r"last axis \(5\) looks like channels stored last, \(Y, X, C\)"):
        tile_shape(path, 4)


@pytest.mark.parametrize("kw", [{"ome": True, "metadata": {"axes": "CYX"}},
                                {"imagej": True, "metadata": {"axes": "CYX"}}])
def test_ome_and_imagej_tiles_are_read_by_their_axes(tmp_path, kw):
    path = _write(tmp_path / "t.ome.tif", CYX, **kw)
    assert tile_shape(path, 4) == (4, 40, 48)
    np.testing.assert_array_equal(read_tile(path, 4), CYX)


def test_ome_tile_with_z_planes_is_refused_naming_its_axes(tmp_path):
    path = _write(tmp_path / "z.ome.tif", np.zeros((3, 4, 40, 48), np.uint16), ome=True,
                  metadata={"axes": "ZCYX"})
    with pytest.raises(InputError, match=r"z\.ome\.tif: tile has shape \(3, 4, 40, 48\) \(axes ZCYX\)"):
        tile_shape(path, 4)


def test_pattern_fields_are_checked():
    check_pattern("t/{plate}/{well}/{tile}_{channel}.tif")
    with pytest.raises(InputError, match=r"input.tiles 't/\{plate\}/\{well\}/\{tile\}_\{foo\}.tif': unknown field "
                                         r"\{foo\}; the allowed fields are \{plate\}, \{well\}, \{tile\}, \{channel\}"):
        tile_path("t/{plate}/{well}/{tile}_{foo}.tif", "P1", "A1", "0")
    with pytest.raises(InputError, match="unknown field"):
        tile_path("t/{plate}/{well}/{tile}_{}.tif", "P1", "A1", "0")
    with pytest.raises(InputError, match=r"field \{tile\} has a format spec"):
        tile_path("t/{plate}/{well}/{tile:03d}.tif", "P1", "A1", "0")
    with pytest.raises(InputError, match="input.tiles"):
        tile_path("t/{plate}/{well}/{tile.tif", "P1", "A1", "0")


def test_channel_references_and_tokens():
    pattern = "img/{plate}/{well}{tile}-ch{channel}sk1.tiff"
    ref = tile_path(pattern, "BR1", "r03c03", "f03p01")
    assert ref == "img/BR1/r03c03f03p01-ch{channel}sk1.tiff"
    tokens = resolve_tokens(["DNA", "ER"], {"DNA": 5, "ER": "2"}, pattern)
    assert tokens == ["5", "2"]
    assert channel_files(ref, tokens) == ["img/BR1/r03c03f03p01-ch5sk1.tiff", "img/BR1/r03c03f03p01-ch2sk1.tiff"]
    assert tile_files("a/{plate}_{well}_{tile}_{channel}.tif", "P", "W", "T", ["DAPI", "GFP"]) == \
        ["a/P_W_T_DAPI.tif", "a/P_W_T_GFP.tif"]
    assert resolve_tokens(["DAPI", "GFP"], {}, pattern) == ["DAPI", "GFP"]  # names are the default tokens
    assert tile_files("a/{plate}{well}{tile}.tif", "P", "W", "T", ["DAPI"]) == ["a/PWT.tif"]
    with pytest.raises(InputError, match=r"input.channel_tokens: \['RNA'\] not in `channels`"):
        resolve_tokens(["DNA"], {"RNA": "6"}, pattern)
    with pytest.raises(InputError, match="each channel needs its own file"):
        resolve_tokens(["DNA", "ER"], {"DNA": "ER"}, pattern)
    with pytest.raises(InputError, match=r"input.channel_tokens is set but input.tiles .* has no \{channel\}"):
        resolve_tokens(["DNA"], {"DNA": "5"}, "a/{plate}/{well}/{tile}.tif")


def test_one_file_per_channel_reads_in_channels_order(tmp_path):
    for token, plane in zip("5234", CYX):
        _write(tmp_path / f"f03-ch{token}.tiff", plane, compression="lzw")
    ref = str(tmp_path / "f03-ch{channel}.tiff")
    assert tile_shape(ref, 4, list("5234")) == (4, 40, 48)
    np.testing.assert_array_equal(read_tile(ref, 4, list("5234")), CYX)
    np.testing.assert_array_equal(read_tile(ref, 2, list("32")), CYX[[2, 1]])
    _write(tmp_path / "f03-ch4.tiff", CYX[3, :, :40])
    with pytest.raises(InputError, match=r"f03-ch4\.tiff: channel file of 40x40 pixels differs"):
        tile_shape(ref, 4, list("5234"))
    _write(tmp_path / "f03-ch4.tiff", CYX[:2], photometric="minisblack")
    with pytest.raises(InputError, match=r"f03-ch4\.tiff: tile has shape \(2, 40, 48\).*one 2-D plane"):
        read_tile(ref, 4, list("5234"))
    with pytest.raises(InputError, match=r"f03-ch9\.tiff: tile not found"):
        tile_shape(ref, 1, ["9"])
