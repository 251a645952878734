"""Sentinel-2 MGRS tiles and the subtile grid (docs/architecture.md section 3).

A tile is 10980 x 10980 px at 10 m (109.8 km) in its UTM zone. Its upper-left corner is the upper-left corner of
its MGRS 100 km square snapped outward to the 60 m lattice (29RKH: square K at easting 200000 -> ULX 199980;
north edge 2800000 -> ULY 2800020), so every band resolution shares the tile's bounds.

Tiles overlap their neighbours by ~9.8 km, so work is assigned by OWNERSHIP: a point belongs to exactly one
tile, the one named by its own UTM zone, latitude band and 100 km square. Ownership partitions the globe, which
makes mosaics across tile and UTM-zone borders seamless and free of duplicates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS
from shapely.geometry import Point, Polygon, box
from shapely.geometry.base import BaseGeometry

from terracover.mgrs import COLUMN_SETS, TILE_PX, check_subtile_size, parse_tile

RES_M = 10
TILE_M = TILE_PX * RES_M
SQUARE_M = 100_000

_BANDS = "CDEFGHJKLMNPQRSTUVWX"  # 8 degrees each from 80S; X spans 72N..84N
_ROWS = "ABCDEFGHJKLMNPQRSTUV"
# Smallest northing (false northing included in the south) of each latitude band's 100 km rows (NGA tables).
_MIN_NORTHING = dict(
    zip(
        _BANDS,
        (
            1_100_000,
            2_000_000,
            2_800_000,
            3_700_000,
            4_600_000,
            5_500_000,
            6_400_000,
            7_300_000,
            8_200_000,
            9_100_000,
            0,
            800_000,
            1_700_000,
            2_600_000,
            3_500_000,
            4_400_000,
            5_300_000,
            6_200_000,
            7_000_000,
            7_900_000,
        ),
        strict=True,
    )
)
_SUBTILE_RE = re.compile(r"^r(\d{3})c(\d{3})$")


def _band_of(lat: float) -> str:
    if not -80 <= lat <= 84:
        raise ValueError(f"latitude {lat} is outside the MGRS/UTM range [-80, 84]")
    return _BANDS[min(int((lat + 80) // 8), len(_BANDS) - 1)]


def _band_lat_range(band: str) -> tuple[float, float]:
    south = -80 + 8 * _BANDS.index(band)
    return south, (84.0 if band == "X" else south + 8.0)


def utm_zone_of(lon: float, lat: float) -> int:
    """UTM zone number, with the Norway (32V) and Svalbard (31X-37X) exceptions."""
    lon = ((lon + 180) % 360) - 180
    zone = int((lon + 180) // 6) + 1
    if 56 <= lat < 64 and 3 <= lon < 12:
        return 32
    if 72 <= lat <= 84 and lon >= 0:
        for lo, hi, z in ((0, 9, 31), (9, 21, 33), (21, 33, 35), (33, 42, 37)):
            if lo <= lon < hi:
                return z
    return min(zone, 60)


def _zone_lon_range(zone: int, band: str) -> tuple[float, float]:
    """Longitudes a zone covers within a latitude band (irregular in 32V and the X band)."""
    west, east = -180.0 + 6 * (zone - 1), -180.0 + 6 * zone
    if band == "V" and zone == 31:
        east = 3.0
    elif band == "V" and zone == 32:
        west = 3.0
    elif band == "X" and zone in (31, 33, 35, 37):
        west, east = {31: (0.0, 9.0), 33: (9.0, 21.0), 35: (21.0, 33.0), 37: (33.0, 42.0)}[zone]
    return west, east


def utm_epsg(zone: int, band: str) -> int:
    return (32600 if band >= "N" else 32700) + zone


def utm_epsg_for(lon: float, lat: float) -> int:
    """EPSG of the UTM zone a point lies in: the local grid of an output mosaic."""
    return utm_epsg(utm_zone_of(lon, lat), _band_of(lat))


@lru_cache(maxsize=256)
def _transformer(src: int, dst: int) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


@dataclass(frozen=True)
class Tile:
    name: str
    epsg: int
    ulx: float
    uly: float

    @property
    def zone(self) -> int:
        return int(self.name[:2])

    @property
    def band(self) -> str:
        return self.name[2]

    @property
    def crs(self) -> CRS:
        return CRS.from_epsg(self.epsg)

    @property
    def transform(self) -> Affine:
        return Affine(RES_M, 0, self.ulx, 0, -RES_M, self.uly)

    @property
    def shape(self) -> tuple[int, int]:
        return TILE_PX, TILE_PX

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return self.ulx, self.uly - TILE_M, self.ulx + TILE_M, self.uly

    @cached_property
    def square_bounds(self) -> tuple[float, float, float, float]:
        """The MGRS 100 km square (UTM) that names this tile."""
        e0, n0 = _square_origin(self.name)
        return e0, n0, e0 + SQUARE_M, n0 + SQUARE_M

    @cached_property
    def footprint_wgs84(self) -> Polygon:
        return _to_wgs84(box(*self.bounds), self.epsg)

    @cached_property
    def owned_wgs84(self) -> Polygon:
        """Where this tile is the owner: its square within its zone and latitude band."""
        south, north = _band_lat_range(self.band)
        west, east = _zone_lon_range(self.zone, self.band)
        square = _near_meridian(_to_wgs84(box(*self.square_bounds), self.epsg), (west + east) / 2)
        owned = square.intersection(box(west, south, east, north))
        return owned if isinstance(owned, Polygon) else Polygon()

    def owned_utm(self) -> BaseGeometry:
        return _from_wgs84(self.owned_wgs84, self.epsg)


def transform_xy(func: Callable[[Any, Any], tuple[Any, Any]], geom: BaseGeometry) -> BaseGeometry:
    """``geom`` with every x/y passed through ``func`` in one vectorised call (pyproj's ``transform`` takes
    arrays); shapely 2.2 deprecates ``shapely.ops.transform`` for this."""
    return shapely.transform(geom, func, interleaved=False)


def _to_wgs84(geom: BaseGeometry, epsg: int) -> Polygon:
    return transform_xy(_transformer(epsg, 4326).transform, geom.segmentize(1000))


def _near_meridian(geom: BaseGeometry, lon0: float) -> BaseGeometry:
    """Longitudes unwrapped to lon0 ± 180: a zone-60 (or zone-1) square that crosses ±180° comes back from
    pyproj folded into a self-intersecting ring; unwrapped it is valid and clips to its zone as any other."""
    return transform_xy(lambda x, y: (lon0 + (x - lon0 + 180.0) % 360.0 - 180.0, y), geom)


def _from_wgs84(geom: BaseGeometry, epsg: int) -> BaseGeometry:
    return transform_xy(_transformer(4326, epsg).transform, geom.segmentize(0.01))


def _square_origin(name: str) -> tuple[int, int]:
    zone, band, col, row = parse_tile(name)
    easting = (COLUMN_SETS[(zone - 1) % 3].index(col) + 1) * SQUARE_M
    row_offset = 5 if zone % 2 == 0 else 0
    northing = ((_ROWS.index(row) - row_offset) % 20) * SQUARE_M
    while northing < _MIN_NORTHING[band]:
        northing += 2_000_000
    return easting, northing


def _square_name(zone: int, band: str, easting: float, northing: float) -> str:
    col = COLUMN_SETS[(zone - 1) % 3][int(easting // SQUARE_M) - 1]
    row = _ROWS[(int(northing // SQUARE_M) + (5 if zone % 2 == 0 else 0)) % 20]
    return f"{zone:02d}{band}{col}{row}"


@lru_cache(maxsize=4096)
def tile(name: str) -> Tile:
    """The tile of an MGRS name (``30SYJ``, ``T30SYJ`` or ``30syj``)."""
    zone, band, col, row = parse_tile(name)
    canonical = f"{zone:02d}{band}{col}{row}"
    e0, n0 = _square_origin(canonical)
    ulx = math.floor(e0 / 60) * 60
    uly = math.ceil((n0 + SQUARE_M) / 60) * 60
    return Tile(canonical, utm_epsg(zone, band), float(ulx), float(uly))


def tile_of_point(lon: float, lat: float) -> Tile:
    """The tile that owns a point."""
    band = _band_of(lat)
    zone = utm_zone_of(lon, lat)
    e, n = _transformer(4326, utm_epsg(zone, band)).transform(lon, lat)
    return tile(_square_name(zone, band, e, n))


def tiles_for_geometry(geom_wgs84: BaseGeometry) -> list[Tile]:
    """Every tile that owns part of the geometry, across UTM zones and hemispheres, sorted by name."""
    if geom_wgs84.is_empty:
        return []
    minx, miny, maxx, maxy = geom_wgs84.bounds
    found: dict[str, Tile] = {}
    for band in sorted({_band_of(lat) for lat in _steps(miny, maxy, 8.0)}):
        south, north = _band_lat_range(band)
        zones = {
            utm_zone_of(lon, lat)
            for lon in _steps(minx, maxx, 6.0)
            for lat in (max(miny, south), min(maxy, north - 1e-9))
        }
        for zone in sorted(zones):
            west, east = _zone_lon_range(zone, band)
            part = geom_wgs84.intersection(box(west, south, east, north))
            if part.is_empty:
                continue
            epsg = utm_epsg(zone, band)
            ux0, uy0, ux1, uy1 = _from_wgs84(part, epsg).bounds
            for e in range(int(ux0 // SQUARE_M) * SQUARE_M, int(ux1) + 1, SQUARE_M):
                for n in range(int(uy0 // SQUARE_M) * SQUARE_M, int(uy1) + 1, SQUARE_M):
                    if not 100_000 <= e < 900_000:
                        continue
                    name = _square_name(zone, band, e, n)
                    t = tile(name)
                    if t.square_bounds[:2] == (e, n) and t.owned_wgs84.intersects(part):
                        found[name] = t
    return [found[k] for k in sorted(found)]


def _steps(lo: float, hi: float, step: float) -> list[float]:
    """lo, hi and every multiple of step strictly between: enough samples to hit each band/zone."""
    vals = [lo, hi]
    k = math.floor(lo / step) + 1
    while k * step < hi:
        vals += [k * step - 1e-9, k * step + 1e-9]
        k += 1
    return vals


@dataclass(frozen=True)
class Subtile:
    """A square block of a tile: the unit of one composite task and one prediction read."""

    tile: Tile
    row: int
    col: int
    size: int

    @property
    def id(self) -> str:
        """``r{row:03d}c{col:03d}``: sorts row-major and parses back with :func:`subtile`."""
        return f"r{self.row:03d}c{self.col:03d}"

    @property
    def key(self) -> str:
        return f"{self.tile.name}/{self.id}"

    @property
    def crs(self) -> CRS:
        return self.tile.crs

    @property
    def transform(self) -> Affine:
        return Affine(
            RES_M,
            0,
            self.tile.ulx + self.col * self.size * RES_M,
            0,
            -RES_M,
            self.tile.uly - self.row * self.size * RES_M,
        )

    @property
    def shape(self) -> tuple[int, int]:
        return self.size, self.size

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        x0 = self.tile.ulx + self.col * self.size * RES_M
        y1 = self.tile.uly - self.row * self.size * RES_M
        return x0, y1 - self.size * RES_M, x0 + self.size * RES_M, y1

    @cached_property
    def footprint_wgs84(self) -> Polygon:
        return _to_wgs84(box(*self.bounds), self.tile.epsg)

    @cached_property
    def owned_wgs84(self) -> BaseGeometry:
        central = -183.0 + 6 * self.tile.zone  # the zone's central meridian: unwrap a subtile crossing ±180°
        return _near_meridian(self.footprint_wgs84, central).intersection(self.tile.owned_wgs84)


def subtile(tile_name: str, subtile_id: str, size: int) -> Subtile:
    m = _SUBTILE_RE.match(subtile_id)
    n = TILE_PX // check_subtile_size(size)
    if not m or int(m.group(1)) >= n or int(m.group(2)) >= n:
        raise ValueError(f"subtile id {subtile_id!r}: expected r<row>c<col> like r003c007 with row, col < {n}")
    return Subtile(tile(tile_name), int(m.group(1)), int(m.group(2)), size)


def subtile_of_point(lon: float, lat: float, size: int) -> Subtile:
    """The subtile owning a point (exact even on zone and tile edges, where polygon tests are fragile)."""
    t = tile_of_point(lon, lat)
    x, y = _transformer(4326, t.epsg).transform(lon, lat)
    step = check_subtile_size(size) * RES_M
    return Subtile(t, int((t.uly - y) // step), int((x - t.ulx) // step), size)


def subtiles_of(t: Tile, size: int) -> list[Subtile]:
    n = TILE_PX // check_subtile_size(size)
    return [Subtile(t, r, c, size) for r in range(n) for c in range(n)]


def subtiles_for_geometry(geom_wgs84: BaseGeometry, size: int) -> list[Subtile]:
    """Only the subtiles whose OWNED area intersects the geometry, sorted by tile then id."""
    check_subtile_size(size)
    if isinstance(geom_wgs84, Point):
        return [subtile_of_point(geom_wgs84.x, geom_wgs84.y, size)]
    n = TILE_PX // size
    out: list[Subtile] = []
    for t in tiles_for_geometry(geom_wgs84):
        part_utm = _from_wgs84(geom_wgs84.intersection(t.owned_wgs84), t.epsg)
        if part_utm.is_empty:
            continue
        x0, y0, x1, y1 = part_utm.bounds
        step = size * RES_M
        c0, c1 = max(0, int((x0 - t.ulx) // step)), min(n - 1, int((x1 - t.ulx) // step))
        r0, r1 = max(0, int((t.uly - y1) // step)), min(n - 1, int((t.uly - y0) // step))
        owned_utm = t.owned_utm()
        for r in range(r0, r1 + 1):
            for c in range(c0, c1 + 1):
                st = Subtile(t, r, c, size)
                inter = box(*st.bounds).intersection(owned_utm).intersection(part_utm)
                # areas must overlap for polygons; points and lines only need to touch
                if not inter.is_empty and (part_utm.area == 0 or inter.area > 0):
                    out.append(st)
    return out


COARSEST_M = 60  # the coarsest band's pixel: windows on this lattice give every band resolution the same bounds


def region_bounds(
    tile_name: str, region_bbox: tuple[float, float, float, float], subtile_size: int
) -> tuple[float, float, float, float] | None:
    """UTM bounds of the subtiles of ``tile_name`` that the region touches, snapped out to 60 m; None if none."""
    t = tile(tile_name)
    part = box(*region_bbox).intersection(t.owned_wgs84)  # only this tile's share: cheap for a continent
    subs = [s for s in subtiles_for_geometry(part, subtile_size) if s.tile.name == t.name] if not part.is_empty else []
    if not subs:
        return None
    minx = min(s.bounds[0] for s in subs)
    miny = min(s.bounds[1] for s in subs)
    maxx = max(s.bounds[2] for s in subs)
    maxy = max(s.bounds[3] for s in subs)
    # snap outward on the tile's own 60 m lattice (its origin is 60 m aligned)
    minx = t.ulx + math.floor((minx - t.ulx) / COARSEST_M) * COARSEST_M
    maxx = t.ulx + math.ceil((maxx - t.ulx) / COARSEST_M) * COARSEST_M
    maxy = t.uly - math.floor((t.uly - maxy) / COARSEST_M) * COARSEST_M
    miny = t.uly - math.ceil((t.uly - miny) / COARSEST_M) * COARSEST_M
    return minx, miny, maxx, maxy


def bounds_wgs84(bounds: tuple[float, float, float, float], epsg: int) -> Polygon:
    """A UTM box as a WGS84 polygon, densified so its edges follow the projection (STAC item footprints)."""
    return _to_wgs84(box(*bounds), epsg)
