"""XYZ web-map tiles (Web Mercator, 256 px PNG) of the stacks' true colour and of stored maps, with rio-tiler.

A base layer a person can read, offline: the true colour of a year, mosaicked over the subtiles a tile touches
(each pixel from the one subtile that holds it, first valid wins). Each stack's summer true colour is read
from its 8-bit ``true_colour`` asset (:mod:`terracover.truecolour`, written by build_composites); other
seasons, and stacks built before that file existed, are read from the stack's own reflectance bands
(``summer_B04`` ...) and stretched the same way (slow on the first tile: :class:`PreviewCache`). Either is
read once per decimation into an in-memory preview and tiles are reprojected from it onto the
WebMercatorQuad grid.
Predictions and change maps are tiled from their COGs by rio-tiler with their own colour maps. Both use the
same tile matrix set (morecantile's WebMercatorQuad, rio-tiler's default), the one Leaflet uses, so layers
line up. Any XYZ client (the map page, QGIS "XYZ Tiles", GDAL's WMS driver) reads the same URLs.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, partial
from typing import TYPE_CHECKING

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import from_bounds
from rasterio.warp import reproject

from terracover.catalog import COMPOSITES_COLLECTION, Catalog
from terracover.errors import BadRequestError
from terracover.features import SEASON_BY_NAME, select_bands
from terracover.grid import RES_M
from terracover.store import ObjectStore
from terracover.truecolour import ASSET, SEASON, band_names, to_rgba

if TYPE_CHECKING:
    import morecantile

DEFAULT_SEASON = SEASON  # the season of the stacks' true-colour files
MIN_ZOOM = 10  # below this one tile touches too many stacks for an interactive answer
MAX_ZOOM = 24
TILE_SIZE = 256
PREVIEW_CACHE_BYTES = 256 * 2**20  # ~70 previews of 1098 px stacks at full resolution
WEB_MERCATOR = CRS.from_epsg(3857)


class TileRequestError(BadRequestError):
    """A tile request the client can fix (unknown season, zoom too far out)."""


def check_tile(z: int, x: int, y: int) -> None:
    """A tile address that exists: 0 <= z <= 24, 0 <= x, y < 2**z."""
    if not (0 <= z <= MAX_ZOOM and 0 <= x < 2**z and 0 <= y < 2**z):
        raise TileRequestError(f"no tile z={z} x={x} y={y}: zoom 0..{MAX_ZOOM}, x and y in 0..2**z - 1")


@cache
def _tms() -> morecantile.TileMatrixSet:
    """WebMercatorQuad: the XYZ grid of Leaflet, OpenLayers, QGIS and rio-tiler (EPSG:3857, 256 px tiles)."""
    import morecantile

    return morecantile.tms.get("WebMercatorQuad")


def tile_bounds_wgs84(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    import morecantile

    b = _tms().bounds(morecantile.Tile(x, y, z))
    return (b.left, b.bottom, b.right, b.top)


@dataclass(frozen=True)
class StackRef:
    """A feature stack under a tile: its store key, its true-colour file's (None for a stack built before it),
    and a version that changes when the stack is rebuilt (its catalogue item's properties: the inputs digest
    and times), so a cached preview of an old stack is not reused."""

    key: str
    version: str
    true_colour_key: str | None = None


def stacks_under(catalog: Catalog, year: int, z: int, x: int, y: int) -> list[StackRef]:
    """The year's feature stacks whose footprint meets tile z/x/y."""
    check_tile(z, x, y)
    if z < MIN_ZOOM:
        raise TileRequestError(f"true-colour tiles start at zoom {MIN_ZOOM} (got {z}): zoom in")
    items = catalog.search(
        collections=[COMPOSITES_COLLECTION], bbox=tile_bounds_wgs84(z, x, y), properties={"terracover:year": year}
    )
    return [
        StackRef(
            str(i.assets["features"].extra_fields["terracover:key"]),
            hashlib.sha256(json.dumps(i.properties, sort_keys=True, default=str).encode()).hexdigest()[:16],
            str(i.assets[ASSET].extra_fields["terracover:key"]) if ASSET in i.assets else None,
        )
        for i in items
    ]


@dataclass(frozen=True)
class Preview:
    """A stack's true colour as 8-bit RGBA (alpha 0 where a band is missing), at ``factor`` times its pixel size."""

    rgba: np.ndarray  # (4, rows, cols) uint8
    transform: Affine
    crs: CRS

    @property
    def nbytes(self) -> int:
        return int(self.rgba.nbytes)


class PreviewCache:
    """Least recently used previews up to ``max_bytes``; one build per preview at a time.

    From a stack's true-colour file a preview costs reading at most ~5 MB of 8-bit pixels (30-90 ms measured).
    From the stack itself (other seasons, stacks built before the file existed) it is slow: the stacks
    interleave their ~100 bands by pixel (a prediction reads all of them per window), so the three true-colour
    bands of a window cost decompressing all bands of every block it touches: ~1-2 s for a 1098 px stack at
    full resolution on a loaded 2-core machine. A preview is built once per source, season and decimation and
    holds 4 bytes per pixel; a tile is then a reprojection from memory (milliseconds). The dozen tiles a map
    view asks for at once touch the same few stacks: a second request for a preview being built
    waits for it instead of decompressing the stack again."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, ...], Preview] = OrderedDict()
        self._building: dict[tuple[str, ...], threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...], build: Callable[[], Preview]) -> Preview:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            building = self._building.setdefault(key, threading.Lock())
        with building:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            preview = build()
            with self._lock:
                self._items[key] = preview
                self._building.pop(key, None)
                total = sum(p.nbytes for p in self._items.values())
                while total > self.max_bytes and len(self._items) > 1:
                    _, old = self._items.popitem(last=False)
                    total -= old.nbytes
            return preview


PREVIEWS = PreviewCache(PREVIEW_CACHE_BYTES)


def decimation(z: int, y: int, pixel_m: float) -> int:
    """The coarsest power-of-two decimation of ``pixel_m`` pixels still finer than tile z/x/y's ground pixel (a
    tile pixel spans 156 km / 2**z at the equator, times the cosine of the latitude), at most 16."""
    lat = math.atan(math.sinh(math.pi * (1 - 2 * (y + 0.5) / 2**z)))  # the tile centre's
    ground_m = 2 * math.pi * 6378137 / (TILE_SIZE * 2**z) * math.cos(lat)
    factor = 1
    while factor < 16 and factor * 2 * pixel_m <= ground_m:
        factor *= 2
    return factor


def true_colour_preview(store: ObjectStore, key: str, names: Sequence[str], factor: int) -> Preview:
    """Read a stack's three true-colour bands decimated by ``factor`` (GDAL reads a matching overview when the
    stack has one) and stretch them (:func:`terracover.truecolour.to_rgba`)."""
    with store.open_raster(key) as src:
        idx = select_bands(list(src.descriptions), names)
        rows, cols = max(1, math.ceil(src.height / factor)), max(1, math.ceil(src.width / factor))
        data = src.read(idx, out_shape=(3, rows, cols), resampling=Resampling.nearest)
        transform = src.transform @ Affine.scale(src.width / cols, src.height / rows)
        crs = src.crs
    return Preview(to_rgba(data), transform, crs)


def true_colour_file_preview(store: ObjectStore, key: str, factor: int) -> Preview:
    """A stack's true-colour file (already stretched RGBA) decimated by ``factor`` (from its overviews)."""
    with store.open_raster(key) as src:
        rows, cols = max(1, math.ceil(src.height / factor)), max(1, math.ceil(src.width / factor))
        rgba = src.read([1, 2, 3, 4], out_shape=(4, rows, cols), resampling=Resampling.nearest)
        transform = src.transform @ Affine.scale(src.width / cols, src.height / rows)
        return Preview(rgba, transform, src.crs)


def true_colour_png(
    store: ObjectStore,
    stacks: Sequence[StackRef],
    z: int,
    x: int,
    y: int,
    season: str = DEFAULT_SEASON,
    cache: PreviewCache = PREVIEWS,
) -> bytes | None:
    """The PNG of tile z/x/y from these stacks' true-colour bands, or None when none covers it. Stacks are
    mosaicked in order, each pixel from the first stack that holds it (stacks of one zone do not overlap;
    across zones the first wins)."""
    if season not in SEASON_BY_NAME:
        raise TileRequestError(f"unknown season {season!r}: one of {list(SEASON_BY_NAME)}")
    check_tile(z, x, y)
    names = band_names(season)
    import morecantile

    left, bottom, right, top = _tms().xy_bounds(morecantile.Tile(x, y, z))
    tile_transform = from_bounds(left, bottom, right, top, TILE_SIZE, TILE_SIZE)
    out = np.zeros((4, TILE_SIZE, TILE_SIZE), dtype=np.uint8)
    factor = decimation(z, y, RES_M)
    for ref in stacks:
        if season == SEASON and ref.true_colour_key is not None:
            cache_key = (store.gdal_path(ref.true_colour_key), ref.version, season, str(factor))
            build = partial(true_colour_file_preview, store, ref.true_colour_key, factor)
        else:
            cache_key = (store.gdal_path(ref.key), ref.version, season, str(factor))
            build = partial(true_colour_preview, store, ref.key, names, factor)
        preview = cache.get(cache_key, build)
        part = np.zeros_like(out)
        reproject(
            preview.rgba,
            part,
            src_transform=preview.transform,
            src_crs=preview.crs,
            src_alpha=4,
            dst_transform=tile_transform,
            dst_crs=WEB_MERCATOR,
            dst_alpha=4,
            resampling=Resampling.nearest,
        )
        fill = (out[3] == 0) & (part[3] == 255)
        out[:, fill] = part[:, fill]
        if (out[3] == 255).all():
            break
    if not out[3].any():
        return None
    return _png(out)


def classified_png(store: ObjectStore, key: str, z: int, x: int, y: int) -> bytes | None:
    """The PNG of tile z/x/y of a stored map's band 1 in its own colour map (nodata transparent): predictions,
    published maps and change maps all embed theirs (:mod:`terracover.mapfile`)."""
    check_tile(z, x, y)
    from rio_tiler.errors import TileOutsideBounds
    from rio_tiler.io import Reader

    with store.open_raster(key) as src, Reader(None, dataset=src) as reader:
        if not reader.tile_exists(x, y, z):
            return None
        cmap = src.colormap(1)
        try:
            img = reader.tile(x, y, z, tilesize=TILE_SIZE, indexes=1, resampling_method="nearest")
        except TileOutsideBounds:
            return None
    codes = img.array.filled(0)[0].astype(np.uint8)
    lut = np.zeros((256, 4), dtype=np.uint8)
    for code, rgba in cmap.items():
        lut[int(code)] = rgba
    lut[0] = (0, 0, 0, 0)
    return _png(np.moveaxis(lut[codes], -1, 0))


def _png(rgba: np.ndarray) -> bytes:
    from rio_tiler.utils import render

    return bytes(render(rgba[:3], mask=rgba[3], img_format="PNG"))
