"""Real Sentinel-2 (eo-learn TestEOPatch, Slovenia 2015): the cloud-masked median of five scenes, two of them
fully cloudy, must be the median of the three clear ones; NDVI must match eo-learn's own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from terracover.bands import SCL_CLOUD_HIGH, SCL_VEGETATION, valid_scl_lut
from terracover.composite import composite_bands, scale_to_reflectance
from terracover.indices import compute_index

from tests.eolearn_patch import load_scenes

pytestmark = pytest.mark.realdata

CLEAR_DATES = ("2015-07-11", "2015-08-30", "2015-09-09")
CLOUDY_DATES = ("2015-07-31", "2015-08-20")


@pytest.fixture(scope="module")
def patch(shared_data: Path) -> Path:
    root = shared_data / "eolearn_testeopatch"
    if not (root / "geotiff_derived").is_dir():
        pytest.skip(f"eo-learn test patch not found under {root}")
    return root


@pytest.fixture(scope="module")
def scenes(patch: Path) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Dates in order, band names, (13, 5, H, W) uint16 DNs and (5, H, W) SCL made from the cloud masks."""
    return load_scenes(patch)


@pytest.fixture(scope="module")
def reflectance_by_date(patch: Path) -> dict[str, np.ndarray]:
    """The upstream float32 array, (H, W, 13) per date; its axis 0 is not in date order."""
    meta = json.loads((patch / "data" / "BANDS_S2_L1C_5DATES_2015.json").read_text())
    array = np.load(patch / "data" / "BANDS_S2_L1C_5DATES_2015.npy")
    return {d[:10]: array[i] for i, d in enumerate(meta["dates"])}


def test_the_patch_is_what_the_test_assumes(scenes) -> None:
    dates, bands, values, scl = scenes
    assert dates == sorted([*CLEAR_DATES, *CLOUDY_DATES])
    assert values.dtype == np.uint16 and values.shape[:2] == (13, 5) and bands[7] == "B08"
    for t, day in enumerate(dates):
        assert (scl[t] == (SCL_CLOUD_HIGH if day in CLOUDY_DATES else SCL_VEGETATION)).all()


def test_masked_median_is_the_median_of_the_clear_dates(scenes, reflectance_by_date) -> None:
    dates, _, values, scl = scenes
    median = composite_bands(values, scl, valid_scl_lut())
    clear = [dates.index(d) for d in CLEAR_DATES]
    np.testing.assert_array_equal(median, np.median(values[:, clear].astype(np.float32), axis=1))  # exact on DNs

    upstream = np.median(np.stack([reflectance_by_date[d] for d in CLEAR_DATES]), axis=0).transpose(2, 0, 1)
    np.testing.assert_allclose(scale_to_reflectance(median), upstream, rtol=0, atol=1e-6)

    unmasked = np.median(values.astype(np.float32), axis=1)
    assert (unmasked != median).mean() > 0.9  # without the mask the clouds would have changed the answer


def test_ndvi_matches_eolearn(patch: Path, scenes, reflectance_by_date) -> None:
    meta = json.loads((patch / "data" / "BANDS_S2_L1C_5DATES_2015.json").read_text())
    eolearn_ndvi = np.load(patch / "data" / "NDVI.npy")[..., 0]  # (68, H, W), frame i = 68-date series index
    b04, b08 = meta["band_order"].index("B04"), meta["band_order"].index("B08")
    for i, day in enumerate(meta["dates"]):
        refl = reflectance_by_date[day[:10]]
        ours = compute_index("ndvi", {"B04": refl[..., b04], "B08": refl[..., b08]})
        np.testing.assert_allclose(ours, eolearn_ndvi[meta["frame_index_in_68"][i]], rtol=0, atol=1e-6)

    _, bands, values, scl = scenes
    composite = scale_to_reflectance(composite_bands(values, scl, valid_scl_lut()))
    red, nir = composite[bands.index("B04")], composite[bands.index("B08")]
    ndvi = compute_index("ndvi", {"B04": red, "B08": nir})
    np.testing.assert_allclose(ndvi, (nir - red) / (nir + red), rtol=1e-6)
    assert 0.3 < np.median(ndvi) < 0.95  # forest and grassland in summer
