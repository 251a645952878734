"""``validate_aoi`` under generated GeoJSON (valid, subtly invalid, hostile): it accepts a valid (Multi)Polygon
within every limit or raises a :class:`BadRequestError` that names the fix; nothing else ever escapes.

The seed is printed (and settable with ``TERRACOVER_FUZZ_SEED``) so a failure found in CI reproduces."""

from __future__ import annotations

import math
import os
import random

import pytest
from hypothesis import HealthCheck, given, seed
from hypothesis import settings as hsettings
from pyproj import Geod
from shapely.geometry import MultiPolygon, Polygon, mapping
from terracover.predict import AoiLimitError, AoiTooLargeError, BadRequestError, validate_aoi
from terracover.settings import Settings

from tests import geojson_strategies as gs

SEED = int(os.environ.get("TERRACOVER_FUZZ_SEED") or random.randrange(2**32))
print(f"fuzz seed: TERRACOVER_FUZZ_SEED={SEED}")
LIMITS = Settings()

# The three bodies that answered 500 before: a NaN coordinate, an unknown type, the antimeridian.
NAN_POLYGON = {"type": "Polygon", "coordinates": [[[0.0, 39.95], [math.nan, 39.95], [0.01, 39.96], [0.0, 39.95]]]}
TOPOLOGY = {"type": "Topology", "objects": {"aoi": {"type": "Polygon", "arcs": [[0]]}}, "arcs": [[[0, 0], [1, 1]]]}
ANTIMERIDIAN = {
    "type": "Polygon",
    "coordinates": [[[179.9, 10], [-179.9, 10], [-179.9, 10.1], [179.9, 10.1], [179.9, 10]]],
}


def _accepted_or_named(aoi: object) -> Polygon | MultiPolygon | None:
    try:
        geom = validate_aoi(aoi, settings=LIMITS)
    except BadRequestError as exc:
        assert len(str(exc)) > 30, f"error without a fix: {exc!r}"
        return None
    assert isinstance(geom, Polygon | MultiPolygon) and geom.is_valid and not geom.is_empty
    minx, miny, maxx, maxy = geom.bounds
    assert all(math.isfinite(v) for v in geom.bounds)
    assert -180 <= minx <= maxx <= 180 and -80 <= miny <= maxy <= 84 and maxx - minx <= 180
    assert abs(Geod(ellps="WGS84").geometry_area_perimeter(geom)[0]) / 1e6 <= LIMITS.max_aoi_km2
    return geom


@seed(SEED)
@hsettings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(aoi=gs.aois((-0.012, 39.950, 0.012, 39.962)))
def test_any_geojson_is_accepted_valid_or_rejected_with_a_fix(aoi: object) -> None:
    _accepted_or_named(aoi)


@seed(SEED)
@hsettings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(aoi=gs.hostile())
def test_hostile_geojson_is_rejected_or_harmless(aoi: object) -> None:
    _accepted_or_named(aoi)


@seed(SEED)
@hsettings(max_examples=100, deadline=None, database=None)
@given(aoi=gs.wrapped(gs.small_polygon((-170, -70, 170, 80)).filter(lambda g: len(g["coordinates"][0]) == 5)))
def test_small_boxes_anywhere_are_accepted(aoi: object) -> None:
    assert _accepted_or_named(aoi) is not None


@pytest.mark.parametrize(
    ("aoi", "needle"),
    [(NAN_POLYGON, "finite"), (TOPOLOGY, "'Topology'"), (ANTIMERIDIAN, "antimeridian")],
    ids=["nan", "topology", "antimeridian"],
)
def test_the_three_former_500s_are_named_400s(aoi: object, needle: str) -> None:
    with pytest.raises(BadRequestError, match=needle) as info:
        validate_aoi(aoi, settings=LIMITS)
    assert not isinstance(info.value, AoiTooLargeError)


def test_limits_name_their_setting() -> None:
    ring = gs.ring_from((0.0, 39.95), 0.005, 200, 0)
    poly = {"type": "Polygon", "coordinates": [ring]}
    tight = Settings(max_aoi_vertices=100, max_aoi_features=3)
    with pytest.raises(AoiLimitError, match="TERRACOVER_MAX_AOI_VERTICES"):
        validate_aoi(poly, settings=tight)
    feats = [{"type": "Feature", "geometry": poly, "properties": {}}] * 4
    with pytest.raises(AoiLimitError, match="TERRACOVER_MAX_AOI_FEATURES"):
        validate_aoi({"type": "FeatureCollection", "features": feats}, settings=Settings(max_aoi_features=3))
    strip = mapping(Polygon([(0, 0), (5, 10), (5, 10.00001), (0, 0.00001)]))  # a thin diagonal: tiny area, huge box
    with pytest.raises(AoiLimitError, match="TERRACOVER_MAX_AOI_BBOX_KM2"):
        validate_aoi(strip, settings=LIMITS)
    assert validate_aoi(poly, settings=LIMITS).is_valid  # the same shapes within the limits are fine
