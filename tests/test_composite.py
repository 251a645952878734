"""The median kernel against np.nanmedian (bit for bit), SCL masking, the sorting network and the windows."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from rasterio.windows import Window
from terracover.bands import SCL_SNOW, SCL_VEGETATION, valid_scl_lut
from terracover.composite import (
    batcher_network,
    composite,
    composite_bands,
    composite_windows,
    iter_windows,
    scale_to_reflectance,
)

LUT = valid_scl_lut()
SCL_CODES = np.arange(12, dtype=np.uint8)


def nanmedian_reference(
    values: np.ndarray, scl: np.ndarray, lut: np.ndarray, dtype: type[np.floating] = np.float32
) -> np.ndarray:
    """The KHAOS way: a float stack with NaN for every invalid observation, then np.nanmedian."""
    stack = values.astype(dtype)
    stack[~(lut[scl] & (values != 0))] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels
        return np.nanmedian(stack, axis=-3)


def random_stack(rng: np.random.Generator, dates: int, rows: int = 37, cols: int = 53, bands: int = 1):
    values = rng.integers(0, 12000, (bands, dates, rows, cols), dtype=np.uint16)
    values[rng.random(values.shape) < 0.05] = 0  # L2A nodata
    values[..., 0, :4] = 0xFFFF  # the sentinel value itself, valid or not
    scl = rng.choice(SCL_CODES, (dates, rows, cols))
    scl[:, :3, :3] = 9  # pixels that are never valid
    return values, scl


@pytest.mark.parametrize("dates", [1, 2, 3, 4, 5, 12, 17, 24, 40, 64])
def test_equals_nanmedian_bit_for_bit(dates: int) -> None:
    rng = np.random.default_rng(dates)
    values, scl = random_stack(rng, dates, bands=2)
    got = composite_bands(values, scl, LUT)
    want = nanmedian_reference(values, scl, LUT)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)  # NaN == NaN here; every other value exact
    assert np.isnan(got[:, :3, :3]).all()
    counts = (LUT[scl] & (values[0] != 0)).sum(axis=0)
    if dates > 1:  # both branches of the median (odd count, even count) were exercised
        assert (counts % 2 == 0).any() and (counts % 2 == 1).any()


def test_equals_float64_nanmedian_too() -> None:
    values, scl = random_stack(np.random.default_rng(7), 12)
    np.testing.assert_array_equal(composite(values[0], scl, LUT), nanmedian_reference(values[0], scl, LUT, np.float64))


def test_single_band_matches_multi_band() -> None:
    values, scl = random_stack(np.random.default_rng(3), 9, bands=4)
    multi = composite_bands(values, scl, LUT)
    for b in range(4):
        np.testing.assert_array_equal(composite(values[b], scl, LUT), multi[b])


def test_nodata_dn_is_per_band() -> None:
    """The SCL mask is shared by all bands, but DN 0 only removes that band's observation."""
    values = np.array([[[[10]], [[20]], [[30]]], [[[0]], [[20]], [[30]]]], dtype=np.uint16)  # (2, 3, 1, 1)
    scl = np.full((3, 1, 1), SCL_VEGETATION, dtype=np.uint8)
    np.testing.assert_array_equal(composite_bands(values, scl, LUT)[:, 0, 0], [20.0, 25.0])


@pytest.mark.parametrize("code", range(12))
def test_scl_codes(code: int) -> None:
    """Date 0 (DN 100) carries ``code``; date 1 (DN 300) is clear vegetation."""
    values = np.array([[[100]], [[300]]], dtype=np.uint16)
    scl = np.array([[[code]], [[SCL_VEGETATION]]], dtype=np.uint8)
    # docs/architecture.md section 3: no data, saturated, cloud shadow, cloud medium/high, thin cirrus, snow are invalid
    expected = 300.0 if code in {0, 1, 3, 8, 9, 10, 11} else 200.0
    assert composite(values, scl, LUT)[0, 0] == expected


def test_keep_snow() -> None:
    values = np.array([[[100]], [[300]]], dtype=np.uint16)
    scl = np.array([[[SCL_SNOW]], [[SCL_VEGETATION]]], dtype=np.uint8)
    assert composite(values, scl, valid_scl_lut())[0, 0] == 300.0
    assert composite(values, scl, valid_scl_lut(keep_snow=True))[0, 0] == 200.0


def test_non_contiguous_input() -> None:
    values, scl = random_stack(np.random.default_rng(11), 6, rows=40, cols=40)
    view_v, view_s = values[:, :, 5:30, 3:37:2], scl[:, 5:30, 3:37:2]
    np.testing.assert_array_equal(composite_bands(view_v, view_s, LUT), nanmedian_reference(view_v, view_s, LUT))


@pytest.mark.parametrize("n", range(1, 17))
def test_batcher_network_sorts_every_input(n: int) -> None:
    """0-1 principle: a comparator network sorting all 2**n binary inputs sorts every input."""
    keys = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(np.uint8)
    for i, j in batcher_network(n):
        keys[:, i], keys[:, j] = np.minimum(keys[:, i], keys[:, j]), np.maximum(keys[:, i], keys[:, j])
    assert (np.diff(keys.astype(np.int8), axis=1) >= 0).all()


def test_batcher_network_is_pruned_and_shared() -> None:
    pairs = batcher_network(12)
    assert pairs.max() < 12 and (pairs[:, 0] < pairs[:, 1]).all()
    assert len(pairs) < len(batcher_network(16))
    assert not pairs.flags.writeable


@pytest.mark.parametrize(
    ("values", "scl", "lut", "message"),
    [
        (np.zeros((2, 4, 4), np.float32), np.zeros((2, 4, 4), np.uint8), LUT, "uint16"),
        (np.zeros((2, 4, 4), np.uint16), np.zeros((2, 4, 5), np.uint8), LUT, "resample"),
        (np.zeros((2, 4, 4), np.uint16), np.zeros((2, 4, 4), np.int32), LUT, "scl must be uint8"),
        (np.zeros((2, 4, 4), np.uint16), np.zeros((2, 4, 4), np.uint8), LUT[:12], "256 entries"),
        (np.zeros((0, 4, 4), np.uint16), np.zeros((0, 4, 4), np.uint8), LUT, "no dates"),
    ],
)
def test_bad_input_says_what_to_fix(values, scl, lut, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        composite(values, scl, lut)


@pytest.mark.parametrize(("height", "width", "block"), [(1, 1, 1), (5, 7, 3), (1098, 1098, 256), (300, 200, 512)])
def test_windows_tile_the_raster_exactly(height: int, width: int, block: int) -> None:
    cover = np.zeros((height, width), dtype=np.int32)
    for w in iter_windows(height, width, block):
        assert 0 < w.width <= block and 0 < w.height <= block
        rows, cols = w.toslices()
        cover[rows, cols] += 1
    assert (cover == 1).all()


def test_windows_of_a_full_tile() -> None:
    windows = list(iter_windows(10980, 10980, 1024))
    assert len(windows) == 11 * 11
    assert sum(int(w.width * w.height) for w in windows) == 10980 * 10980
    assert windows[-1] == Window(10240, 10240, 740, 740)


def test_windows_reject_a_bad_block() -> None:
    with pytest.raises(ValueError, match="positive"):
        next(iter_windows(10, 10, 0))


def test_composite_windows_equals_whole_raster() -> None:
    values, scl = random_stack(np.random.default_rng(5), 8, rows=45, cols=70, bands=3)
    seen: list[Window] = []

    def read_stack(window: Window) -> tuple[np.ndarray, np.ndarray]:
        seen.append(window)
        rows, cols = window.toslices()
        return values[:, :, rows, cols], scl[:, rows, cols]

    out = np.full((3, 45, 70), -1.0, dtype=np.float32)
    got = composite_windows(read_stack, 45, 70, LUT, block=16, out=out)
    assert got is out
    assert len(seen) == 3 * 5 and all(w.width <= 16 and w.height <= 16 for w in seen)
    np.testing.assert_array_equal(got, composite_bands(values, scl, LUT))
    np.testing.assert_array_equal(composite_windows(read_stack, 45, 70, LUT, block=64), got)


def test_scale_to_reflectance() -> None:
    dn = np.array([1000.0, 11000.0, 500.0, 1234.0, np.nan], dtype=np.float32)
    refl = scale_to_reflectance(dn, offset=-1000)
    assert refl.dtype == np.float32
    np.testing.assert_allclose(refl[:3], [0.0, 1.0, -0.05], atol=1e-7)
    assert np.isnan(refl[4])
    assert scale_to_reflectance(dn)[3] == np.float32(0.1234)
