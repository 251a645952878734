"""The index table against textbook formulas written out independently, on known reflectances."""

from __future__ import annotations

import math

import numpy as np
import pytest
from terracover.indices import INDEX_BY_NAME, INDICES, compute_index

# A vegetated pixel (reflectance): blue, green, red, red edge 1, NIR, narrow NIR, SWIR1.
PIXEL = {"B02": 0.04, "B03": 0.07, "B04": 0.05, "B05": 0.12, "B08": 0.40, "B8A": 0.42, "B11": 0.20}
b2, b3, b4, b5, b8, b8a, b11 = (PIXEL[k] for k in ("B02", "B03", "B04", "B05", "B08", "B8A", "B11"))

TEXTBOOK = {
    "ndvi": (b8 - b4) / (b8 + b4),
    "ndwi": (b3 - b8) / (b3 + b8),
    "mndwi": (b3 - b11) / (b3 + b11),
    "ndbi": (b11 - b8) / (b11 + b8),
    "ndyi": (b3 - b2) / (b3 + b2),
    "ndre": (b8a - b5) / (b8a + b5),
    "evi2": 2.5 * (b8 - b4) / (b8 + 2.4 * b4 + 1),
    "osavi": (1 + 0.16) * (b8 - b4) / (b8 + b4 + 0.16),
    "moisture": (b8a - b11) / (b8a + b11),
    "ri": (b4 - b3) / (b4 + b3),
    "cri1": 1 / b2 - 1 / b3,
}


def test_every_index_has_a_textbook_check() -> None:
    assert set(TEXTBOOK) == set(INDEX_BY_NAME)


@pytest.mark.parametrize("name", sorted(TEXTBOOK))
def test_known_values(name: str) -> None:
    bands = {k: np.full((2, 3), v, dtype=np.float32) for k, v in PIXEL.items()}
    got = compute_index(name, bands)
    assert got.dtype == np.float32 and got.shape == (2, 3)
    np.testing.assert_allclose(got, TEXTBOOK[name], rtol=2e-6)


def test_hand_computed_ndvi() -> None:
    assert math.isclose(
        float(compute_index("ndvi", {"B08": np.float32(0.5), "B04": np.float32(0.1)})), 2 / 3, rel_tol=1e-6
    )


@pytest.mark.parametrize("index", INDICES, ids=lambda i: i.name)
def test_declared_bands_are_exactly_the_bands_read(index) -> None:
    read: set[str] = set()

    class Recording(dict):
        def __getitem__(self, key: str) -> np.ndarray:
            read.add(key)
            return super().__getitem__(key)

    index.formula(Recording({k: np.float32(v) for k, v in PIXEL.items()}))
    assert read == set(index.bands)


@pytest.mark.parametrize("index", INDICES, ids=lambda i: i.name)
def test_declared_range_holds_for_land_reflectances(index) -> None:
    rng = np.random.default_rng(0)
    bands = {b: rng.uniform(0.01, 1.0, 100_000).astype(np.float32) for b in index.bands}
    # include the extremes, where ratios reach their bounds
    for b in index.bands:
        bands[b][:2] = (0.01, 1.0)
    values = compute_index(index.name, bands)
    lo, hi = index.value_range
    assert np.isfinite(values).all()
    assert values.min() >= lo - 1e-6 and values.max() <= hi + 1e-6


def test_zero_denominator_is_nan_not_inf() -> None:
    zero = np.zeros(3, dtype=np.float32)
    assert np.isnan(compute_index("ndvi", {"B08": zero, "B04": zero})).all()
    cri1 = compute_index("cri1", {"B02": zero, "B03": np.full(3, 0.1, np.float32)})
    assert np.isnan(cri1).all()
    assert np.isnan(compute_index("evi2", {"B08": np.float32(0.0), "B04": np.float32(-1 / 2.4)}))


def test_nan_propagates() -> None:
    refl = np.array([np.nan, 0.3], dtype=np.float32)
    got = compute_index("ndvi", {"B08": refl, "B04": np.float32(0.1)})
    assert np.isnan(got[0]) and math.isclose(float(got[1]), 0.5, rel_tol=1e-6)


def test_inputs_are_not_modified() -> None:
    b02 = np.zeros(2, dtype=np.float32)
    compute_index("cri1", {"B02": b02, "B03": np.ones(2, np.float32)})
    assert (b02 == 0).all()


def test_unknown_index_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="ndvi, ndwi"):
        compute_index("ndvvi", PIXEL)


def test_missing_band_is_named() -> None:
    with pytest.raises(KeyError, match=r"missing \['B11'\]"):
        compute_index("mndwi", {"B03": np.float32(0.1)})
