"""MGRS tiles and subtiles: geometry checked against a real Sentinel-2 item and known tile names."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from shapely.geometry import Point, box
from shapely.ops import unary_union
from terracover import grid

CROSS_ZONE_AOI = box(-0.045, 39.94, 0.035, 39.975)  # straddles the UTM 30/31 boundary at 0 deg


def test_tile_geometry_matches_real_item(shared_data: Path) -> None:
    item = json.loads(
        (shared_data / "rio_tiler_pds_s2l2a_29RKH/S2A_29RKH_20200219_0_L2A/S2A_29RKH_20200219_0_L2A.json").read_text()
    )
    t = grid.tile("29RKH")
    assert t.epsg == item["properties"]["proj:epsg"]
    assert list(t.transform)[:6] == item["assets"]["blue"]["proj:transform"]
    assert list(t.shape) == item["assets"]["blue"]["proj:shape"]
    west, south, east, north = t.footprint_wgs84.bounds
    for ours, theirs in zip((west, south, east, north), item["bbox"], strict=True):
        assert ours == pytest.approx(theirs, abs=1e-3)


@pytest.mark.parametrize(
    ("lon", "lat", "name"),
    [
        (2.35, 48.85, "31UDQ"),  # Paris
        (-3.70, 40.42, "30TVK"),  # Madrid
        (10.75, 59.91, "32VNM"),  # Oslo: the 32V exception zone
        (-70.65, -33.45, "19HCC"),  # Santiago de Chile: southern hemisphere
        (-11.5, 24.8, "29RKH"),
    ],
)
def test_points_belong_to_their_known_tile(lon: float, lat: float, name: str) -> None:
    t = grid.tile_of_point(lon, lat)
    assert t.name == name
    assert t.owned_wgs84.contains(Point(lon, lat))
    assert t.footprint_wgs84.contains(Point(lon, lat))
    assert [x.name for x in grid.tiles_for_geometry(Point(lon, lat).buffer(1e-4))] == [name]


def test_tile_origin_is_its_square_snapped_out_to_60m() -> None:
    for name in ("31UDQ", "30TVK", "19HCC", "29RKH", "33UUP"):
        t = grid.tile(name)
        e0, _, _, n1 = t.square_bounds
        assert t.ulx % 60 == 0 and t.uly % 60 == 0
        assert 0 <= e0 - t.ulx < 60 and 0 <= t.uly - n1 < 60
        assert grid.tile(f"T{name.lower()}") == t


@pytest.mark.parametrize("bad", ["", "30", "30SY", "99SYJ", "30IYJ", "30SYZ", "30SIJ", "31SYJ"])
def test_bad_tile_names_say_what_is_expected(bad: str) -> None:
    with pytest.raises(ValueError, match=r"MGRS tile like 30SYJ|does not exist"):
        grid.tile(bad)


def test_cross_zone_aoi_is_partitioned_without_gaps_or_overlaps() -> None:
    tiles = grid.tiles_for_geometry(CROSS_ZONE_AOI)
    assert {t.epsg for t in tiles} == {32630, 32631}
    for size in (1098, 366):
        subs = grid.subtiles_for_geometry(CROSS_ZONE_AOI, size)
        assert {s.tile.name for s in subs} == {t.name for t in tiles}
        parts = [s.owned_wgs84.intersection(CROSS_ZONE_AOI) for s in subs]
        assert sum(p.area for p in parts) == pytest.approx(CROSS_ZONE_AOI.area, rel=1e-6)
        assert unary_union(parts).area == pytest.approx(CROSS_ZONE_AOI.area, rel=1e-6)
        for a, b in itertools.combinations(parts, 2):
            assert a.intersection(b).area < 1e-12


def test_subtiles_tile_the_tile_exactly() -> None:
    t = grid.tile("30SYK")
    subs = grid.subtiles_of(t, 1098)
    assert len(subs) == 100
    assert box(*t.bounds).equals(unary_union([box(*s.bounds) for s in subs]))
    s = grid.subtile("30SYK", "r003c007", 1098)
    assert s.transform.c == t.ulx + 7 * 10980 and s.transform.f == t.uly - 3 * 10980
    assert s.shape == (1098, 1098) and s.crs == t.crs
    with pytest.raises(ValueError, match="must divide"):
        grid.subtiles_of(t, 1000)
    with pytest.raises(ValueError, match="r<row>c<col>"):
        grid.subtile("30SYK", "r010c000", 1098)


def test_point_on_the_zone_edge_has_exactly_one_owner() -> None:
    owners = grid.subtiles_for_geometry(Point(0.0, 39.95), 366)
    assert len(owners) == 1 and owners[0].tile.zone == 31


def test_utm_epsg_for() -> None:
    assert grid.utm_epsg_for(-0.01, 39.9) == 32630
    assert grid.utm_epsg_for(0.01, 39.9) == 32631
    assert grid.utm_epsg_for(-70.6, -33.4) == 32719


@pytest.mark.parametrize("lon0", [179.5, -179.9])
def test_ownership_is_valid_where_zones_60_and_1_meet_the_antimeridian(lon0: float) -> None:
    """MGRS squares and subtiles crossing ±180° come back from pyproj folded; ownership must still be valid
    geometry (a fuzzed AOI at 179.75°E once got a 500 from a GEOS TopologyException here)."""
    for lat in (-7.3, 0.0, 45.0):
        aoi = box(lon0, lat, lon0 + 0.4, lat + 0.3)
        subtiles = grid.subtiles_for_geometry(aoi, 1098)
        assert subtiles
        assert all(st.owned_wgs84.is_valid and st.tile.owned_wgs84.is_valid for st in subtiles)
        covered = sum(aoi.intersection(st.owned_wgs84).area for st in subtiles)
        assert covered == pytest.approx(aoi.area, rel=1e-6)
