"""The feature catalogue: names, seasons, value scales, normalisation and stacking."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import pairwise

import numpy as np
import pytest
from terracover.bands import SPECTRAL_BANDS
from terracover.composite import scale_to_reflectance
from terracover.features import (
    DEFAULT_FEATURES,
    SEASON_BY_NAME,
    SEASONS,
    VALUE_SCALES,
    FeatureSpec,
    all_features,
    composite_to_values,
    compute_feature_stack,
    normalise,
    parse_feature,
    select_bands,
)
from terracover.indices import INDICES, compute_index

KHAOS_RFE_FEATURES = (
    "slope", "summer_AOT", "spring_B01", "spring_ndyi", "autumn_B01", "summer_ri", "summer_mndwi",
    "autumn_AOT", "spring_cri1", "dem", "summer_B11", "spring_ndvi", "summer_B01", "summer_moisture",
    "summer_B12",
)  # fmt: skip


@pytest.mark.parametrize(
    ("season", "year", "start", "end"),
    [
        ("winter", 2024, date(2023, 12, 1), date(2024, 2, 29)),
        ("winter", 2023, date(2022, 12, 1), date(2023, 2, 28)),
        ("spring", 2023, date(2023, 3, 1), date(2023, 5, 31)),
        ("summer", 2023, date(2023, 6, 1), date(2023, 8, 31)),
        ("autumn", 2023, date(2023, 9, 1), date(2023, 11, 30)),
    ],
)
def test_season_windows(season: str, year: int, start: date, end: date) -> None:
    assert SEASON_BY_NAME[season].window(year) == (start, end)


def test_seasons_follow_each_other_without_gap() -> None:
    windows = [s.window(2023) for s in SEASONS]
    for (_, end), (start, _) in pairwise(windows):
        assert start == end + timedelta(days=1)
    assert windows[-1][1] + timedelta(days=1) == SEASONS[0].window(2024)[0]


def test_catalogue_size_and_order() -> None:
    names = all_features()
    assert len(names) == 3 + len(SEASONS) * (len(SPECTRAL_BANDS) + len(INDICES)) == 103
    assert len(set(names)) == len(names)
    assert names[:5] == ["dem", "slope", "aspect", "winter_B01", "winter_B02"]
    assert names[-1] == "autumn_cri1"
    assert tuple(names) == DEFAULT_FEATURES and all_features() == names  # stable: the COG band order
    assert names.index("spring_WVP") < names.index("spring_ndvi") < names.index("summer_B01")


def test_every_feature_round_trips() -> None:
    for name in all_features():
        spec = parse_feature(name)
        assert spec.name == name and spec.scale is VALUE_SCALES[spec.source]


def test_khaos_rfe_features_parse() -> None:
    specs = [parse_feature(n) for n in KHAOS_RFE_FEATURES]
    assert [s.kind for s in specs].count("terrain") == 2
    assert parse_feature("summer_AOT") == FeatureSpec("summer_AOT", "band", "AOT", "summer")


@pytest.mark.parametrize(
    ("name", "spec"),
    [
        ("summer_ndvi", FeatureSpec("summer_ndvi", "index", "ndvi", "summer")),
        ("spring_B04", FeatureSpec("spring_B04", "band", "B04", "spring")),
        ("winter_B8A", FeatureSpec("winter_B8A", "band", "B8A", "winter")),
        ("slope", FeatureSpec("slope", "terrain", "slope", None)),
    ],
)
def test_parse_examples(name: str, spec: FeatureSpec) -> None:
    assert parse_feature(name) == spec


@pytest.mark.parametrize("name", ["summer_b04", "fall_ndvi", "summer_B10", "ndvi", "summer_SCL", ""])
def test_unknown_feature_lists_what_is_valid(name: str) -> None:
    with pytest.raises(KeyError, match="Valid: dem, slope, aspect") as err:
        parse_feature(name)
    assert "'winter', 'spring', 'summer', 'autumn'" in str(err.value) and "cri1" in str(err.value)


def test_unknown_feature_suggests_the_close_one() -> None:
    with pytest.raises(KeyError, match="Did you mean summer_B04"):
        parse_feature("summer_b04")


@pytest.mark.parametrize(
    ("name", "values", "expected"),
    [
        ("spring_B04", [0.0, 0.35, 0.7, 1.05], [-1.0, 0.0, 1.0, 2.0]),  # out of range: not clipped
        ("slope", [0.0, 35.0, 70.0], [-1.0, 0.0, 1.0]),
        ("aspect", [0.0, 180.0, 360.0], [-1.0, 0.0, 1.0]),
        ("dem", [0.0, 1000.0, 2000.0], [-1.0, 0.0, 1.0]),
        ("summer_ndvi", [-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]),
        ("summer_AOT", [0.0, 0.5], [-1.0, 0.0]),
    ],
)
def test_normalise(name: str, values: list[float], expected: list[float]) -> None:
    got = normalise(name, np.array(values))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_normalise_keeps_nan() -> None:
    assert np.isnan(normalise("slope", np.array([np.nan]))).all()


def test_select_bands_is_one_based_and_ordered_as_wanted() -> None:
    stack = ["dem", "slope", "summer_ndvi", "spring_B04"]
    assert select_bands(stack, ["spring_B04", "dem"]) == [4, 1]


def test_select_bands_names_the_missing_features() -> None:
    with pytest.raises(KeyError, match=r"\['summer_B11', 'aspect'\] are not in the stack"):
        select_bands(["dem", "slope"], ["summer_B11", "slope", "aspect"])


def test_composite_to_values() -> None:
    dn = np.array([1234.0, np.nan], dtype=np.float32)
    values = composite_to_values({"B04": dn, "AOT": np.float32(150), "WVP": np.float32(2500)})
    assert values["B04"].dtype == np.float32
    np.testing.assert_array_equal(values["B04"], scale_to_reflectance(dn))  # one definition of reflectance
    assert values["B04"][0] == np.float32(0.1234) and np.isnan(values["B04"][1])
    assert values["AOT"] == np.float32(0.15) and values["WVP"] == np.float32(2.5)


@pytest.mark.parametrize("band", ["SCL", "ndvi", "dem", "B10"])
def test_composite_to_values_rejects_non_bands(band: str) -> None:
    with pytest.raises(KeyError, match="not an L2A band"):
        composite_to_values({band: np.zeros(1, np.float32)})


def test_compute_feature_stack() -> None:
    shape = (4, 5)
    rng = np.random.default_rng(1)
    seasons = {
        s: {b: rng.uniform(0.01, 0.6, shape).astype(np.float32) for b in SPECTRAL_BANDS} for s in ("spring", "summer")
    }
    seasons["summer"]["B04"][0, 0] = np.nan
    dem, slope, aspect = (rng.uniform(0, 90, shape).astype(np.float32) for _ in range(3))
    names = ["summer_ndvi", "aspect", "spring_B04", "dem", "summer_B04", "slope"]
    stack = compute_feature_stack(seasons, dem, slope, aspect, names)
    assert stack.shape == (6, *shape) and stack.dtype == np.float32
    np.testing.assert_array_equal(stack[0], compute_index("ndvi", seasons["summer"]))
    np.testing.assert_array_equal(stack[1], aspect)
    np.testing.assert_array_equal(stack[2], seasons["spring"]["B04"])
    np.testing.assert_array_equal(stack[3], dem)
    np.testing.assert_array_equal(stack[4], seasons["summer"]["B04"])
    np.testing.assert_array_equal(stack[5], slope)
    assert np.isnan(stack[0, 0, 0]) and np.isnan(stack[4, 0, 0])


def test_compute_feature_stack_names_the_missing_season() -> None:
    z = np.zeros((2, 2), np.float32)
    with pytest.raises(KeyError, match="needs the autumn composite"):
        compute_feature_stack({"summer": {}}, z, z, z, ["autumn_ndvi"])
    with pytest.raises(KeyError, match="needs band B11"):
        compute_feature_stack({"summer": {"B04": z}}, z, z, z, ["summer_B11"])
