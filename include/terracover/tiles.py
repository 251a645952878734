"""XYZ web-map tiles (Web Mercator, 256 px PNG) of the stacks' true colour and of stored maps, with rio-tiler.

A base layer a person can read, offline: the feature stacks already hold every season's surface reflectance
of B04/B03/B02 (``summer_B04`` ...), so the true-colour composite of a year is read from them, mosaicked over
the subtiles a tile touches (each pixel from the one subtile that holds it, first valid wins), and stretched
from reflectance 0-0.3 to 0-255. Predictions and change maps are tiled from their COGs with their own colour
maps. Any XYZ client (the map page, QGIS "XYZ Tiles", GDAL's WMS driver) reads the same URLs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from terracover.catalog import COMPOSITES_COLLECTION, Catalog
from terracover.errors import BadRequestError
from terracover.features import SEASON_BY_NAME, select_bands
from terracover.store import ObjectStore

if TYPE_CHECKING:
    from rio_tiler.models import ImageData

TRUE_COLOUR_BANDS = ("B04", "B03", "B02")  # red, green, blue
DEFAULT_SEASON = "summer"
REFLECTANCE_STRETCH = (0.0, 0.3)  # surface reflectance mapped onto 0..255 (then a mild gamma)
MIN_ZOOM = 10  # below this one tile touches too many stacks for an interactive answer
MAX_ZOOM = 24
TILE_SIZE = 256


class TileRequestError(BadRequestError):
    """A tile request the client can fix (unknown season, zoom too far out)."""


def check_tile(z: int, x: int, y: int) -> None:
    """A tile address that exists: 0 <= z <= 24, 0 <= x, y < 2**z."""
    if not (0 <= z <= MAX_ZOOM and 0 <= x < 2**z and 0 <= y < 2**z):
        raise TileRequestError(f"no tile z={z} x={x} y={y}: zoom 0..{MAX_ZOOM}, x and y in 0..2**z - 1")


def tile_bounds_wgs84(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    import morecantile

    b = morecantile.tms.get("WebMercatorQuad").bounds(morecantile.Tile(x, y, z))
    return (b.left, b.bottom, b.right, b.top)


def stack_keys_under(catalog: Catalog, year: int, z: int, x: int, y: int) -> list[str]:
    """Store keys of the year's feature stacks whose footprint meets tile z/x/y."""
    check_tile(z, x, y)
    if z < MIN_ZOOM:
        raise TileRequestError(f"true-colour tiles start at zoom {MIN_ZOOM} (got {z}): zoom in")
    items = catalog.search(
        collections=[COMPOSITES_COLLECTION], bbox=tile_bounds_wgs84(z, x, y), properties={"terracover:year": year}
    )
    return [str(i.assets["features"].extra_fields["terracover:key"]) for i in items]


def true_colour_png(
    store: ObjectStore, keys: Sequence[str], z: int, x: int, y: int, season: str = DEFAULT_SEASON
) -> bytes | None:
    """The PNG of tile z/x/y from these stacks' true-colour bands, or None when none covers it."""
    from rio_tiler.errors import TileOutsideBounds
    from rio_tiler.io import Reader
    from rio_tiler.mosaic import mosaic_reader

    if season not in SEASON_BY_NAME:
        raise TileRequestError(f"unknown season {season!r}: one of {list(SEASON_BY_NAME)}")
    names = [f"{season}_{b}" for b in TRUE_COLOUR_BANDS]

    def read(key: str, tx: int, ty: int, tz: int, **_: Any) -> ImageData:
        with store.open_raster(key) as src, Reader(None, dataset=src) as reader:
            idx = select_bands(list(src.descriptions), names)
            return reader.tile(tx, ty, tz, tilesize=TILE_SIZE, indexes=idx, nodata=np.nan)

    if not keys:
        return None
    try:
        img, _ = mosaic_reader(list(keys), read, x, y, z, threads=0)
    except TileOutsideBounds:
        return None
    lo, hi = REFLECTANCE_STRETCH
    data = np.nan_to_num(img.array.filled(np.nan).astype(np.float32), nan=0.0)
    scaled = np.clip((data - lo) / (hi - lo), 0, 1) ** (1 / 1.4)
    rgb = (scaled * 255).astype(np.uint8)
    alpha = np.where(np.ma.getmaskarray(img.array).any(axis=0), 0, 255).astype(np.uint8)
    return _png(np.concatenate([rgb, alpha[np.newaxis]]))


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
