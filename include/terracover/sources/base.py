"""The scene-source interface and the reading code shared by every STAC-shaped source."""

from __future__ import annotations

import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pystac
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import from_bounds

from terracover.bands import BAND_BY_NAME, band_for_asset
from terracover.mgrs import normalise_tile
from terracover.raster_io import read_env

PRODUCT_METADATA_ASSETS = ("product_metadata", "product-metadata", "MTD_MSIL2A.xml")
"""Asset keys under which catalogs link an L2A product's MTD_MSIL2A.xml (Copernicus Data Space STAC: the first)."""


@dataclass(frozen=True)
class SceneQuery:
    """What to look for: tiles (MGRS names), a lon/lat box, an inclusive date window and a cloud ceiling."""

    tiles: tuple[str, ...]
    bbox: tuple[float, float, float, float]
    start: date
    end: date
    max_cloud_cover: float = 100.0

    @property
    def datetime_range(self) -> str:
        return f"{self.start.isoformat()}T00:00:00Z/{self.end.isoformat()}T23:59:59Z"


def scene_tile(item: pystac.Item) -> str:
    """The MGRS tile of a Sentinel-2 item, from whichever convention the catalog uses."""
    props = item.properties
    code = props.get("grid:code", "")
    if isinstance(code, str) and code.startswith("MGRS-"):
        return code.removeprefix("MGRS-")
    if "mgrs:utm_zone" in props:
        return f"{int(props['mgrs:utm_zone']):02d}{props['mgrs:latitude_band']}{props['mgrs:grid_square']}"
    if "s2:mgrs_tile" in props:
        return str(props["s2:mgrs_tile"]).removeprefix("T")
    if "tileId" in props:  # Sentinel Hub catalog
        return str(props["tileId"]).removeprefix("T")
    raise ValueError(f"item {item.id} names no MGRS tile (grid:code, mgrs:*, s2:mgrs_tile)")


def gdal_href(href: str) -> str:
    """Turn an asset href into a path GDAL opens without downloading the whole file."""
    if href.startswith("s3://"):
        return "/vsis3/" + href.removeprefix("s3://")
    if href.startswith(("http://", "https://")):
        return "/vsicurl/" + href
    return href.removeprefix("file://")


def find_asset(item: pystac.Item, band: str) -> pystac.Asset:
    """The asset of ``band`` (our ESA name) whatever the catalog calls it (``nir08`` or ``B8A``)."""
    for key, asset in item.assets.items():
        found = band_for_asset(key)
        if found is not None and found.name == band:
            return asset
    raise KeyError(f"item {item.id} has no asset for band {band}; assets: {sorted(item.assets)}")


class SceneSource(ABC):
    """Searches scenes and reads band windows from them."""

    name: str = "abstract"
    serves_cogs: bool = False  # its items' assets are Cloud-Optimized GeoTIFFs GDAL can read in place by href

    @abstractmethod
    def search(self, query: SceneQuery) -> list[pystac.Item]:
        """Items of the query's tiles and window, below the cloud ceiling, sorted by datetime then id."""

    def gdal_env(self) -> dict[str, str]:
        """GDAL options needed to read this source's hrefs."""
        return {
            "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
            "GDAL_HTTP_MAX_RETRY": "4",
            "GDAL_HTTP_RETRY_DELAY": "2",
        }

    def product_metadata(self, item: pystac.Item) -> str | None:
        """The text of the item's L2A product metadata (``MTD_MSIL2A.xml``: BOA_ADD_OFFSET), if it links one.

        Asked only when nothing in the item itself decides the L2A offset (raw ESA items). Reads local files and
        HTTP(S); other schemes return None (the offset then stays an error with its message).
        """
        asset = next((item.assets[k] for k in PRODUCT_METADATA_ASSETS if k in item.assets), None)
        if asset is None:
            return None
        href = asset.href
        if href.startswith(("http://", "https://")):
            with urllib.request.urlopen(href, timeout=60) as response:
                return bytes(response.read()).decode()
        if href.startswith("file://") or "://" not in href:
            return Path(href.removeprefix("file://")).read_text()
        return None

    def read_band(
        self, item: pystac.Item, band: str, bounds: tuple[float, float, float, float], resolution: float
    ) -> np.ndarray:
        """Read ``band`` over ``bounds`` (in the item's UTM CRS) at ``resolution``; outside the scene reads 0.

        Reads only the window it needs (a ranged GET on a COG), never the whole raster.
        """
        resampling = Resampling.nearest if BAND_BY_NAME[band].name == "SCL" else Resampling.bilinear
        width = round((bounds[2] - bounds[0]) / resolution)
        height = round((bounds[3] - bounds[1]) / resolution)
        with read_env(self.gdal_env()), rasterio.open(gdal_href(find_asset(item, band).href)) as src:
            window = from_bounds(*bounds, transform=src.transform)
            data = src.read(
                1,
                window=window,
                out_shape=(height, width),
                boundless=True,
                fill_value=0,
                resampling=resampling,
            )
        return np.asarray(data)


def filter_items(items: Sequence[pystac.Item], query: SceneQuery) -> list[pystac.Item]:
    """Apply the tile and cloud filters client-side too: APIs differ in which query fields they honour."""
    tiles = {normalise_tile(t) for t in query.tiles}
    kept = []
    for it in items:
        if scene_tile(it) not in tiles:
            continue
        if float(it.properties.get("eo:cloud_cover", 0.0)) > query.max_cloud_cover:
            continue
        dt = it.datetime.date() if it.datetime else None
        if dt is None or not (query.start <= dt <= query.end):
            continue
        kept.append(it)
    return sorted(kept, key=lambda i: (i.datetime, i.id))
