"""Elevation for each tile: a DEM source (Copernicus GLO-30 or ASTER GDEM v3) reprojected onto the tile's 10 m
UTM grid over the region, with slope and aspect, stored as one 3-band COG ``dem/{tile}/terrain.tif``.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pystac
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject
from shapely.geometry import box

from terracover import grid
from terracover.catalog import DEM_COLLECTION, Catalog, cog_asset, footprint_item
from terracover.cog import write_cog
from terracover.keys import terrain_key
from terracover.settings import Settings
from terracover.sources.base import gdal_href
from terracover.store import ObjectStore
from terracover.terrain import slope_aspect

log = logging.getLogger(__name__)

TERRAIN_BANDS: tuple[str, ...] = ("dem", "slope", "aspect")
RESOLUTION_M = 10


class DemSource(ABC):
    """Finds DEM rasters covering a lon/lat box."""

    name: str = "abstract"

    @abstractmethod
    def search(self, bbox: tuple[float, float, float, float]) -> list[pystac.Item]:
        """Items whose footprints intersect ``bbox``."""

    @abstractmethod
    def asset_href(self, item: pystac.Item) -> str:
        """The elevation raster of an item."""

    def gdal_env(self) -> dict[str, str]:
        return {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}


class StacDemSource(DemSource):
    """A DEM collection on a STAC API: Copernicus GLO-30 on Earth Search (asset ``data``), or ASTER GDEM v3
    (``ASTGTM_003``) on NASA's CMR-STAC, whose ``*_dem.tif`` assets need an Earthdata bearer token.
    """

    def __init__(self, url: str, collection: str, name: str, token_env: str | None = None):
        self.url = url
        self.collection = collection
        self.name = name
        self.token_env = token_env

    def search(self, bbox: tuple[float, float, float, float]) -> list[pystac.Item]:
        from pystac_client import Client

        items = list(Client.open(self.url).search(collections=[self.collection], bbox=bbox, limit=100).items())
        return sorted(items, key=lambda i: i.id)

    def asset_href(self, item: pystac.Item) -> str:
        for key in ("data", "elevation", "dem"):
            if key in item.assets:
                return item.assets[key].href
        for asset in item.assets.values():
            if asset.href.endswith("_dem.tif"):
                return asset.href
        raise KeyError(f"DEM item {item.id} has no elevation asset; assets: {sorted(item.assets)}")

    def gdal_env(self) -> dict[str, str]:
        env = super().gdal_env()
        token = os.environ.get(self.token_env) if self.token_env else None
        if token:
            env["GDAL_HTTP_HEADERS"] = f"Authorization: Bearer {token}"
        return env


class ArchiveDemSource(DemSource):
    """The simulator's DEM items (offline default)."""

    name = "simulator"

    def __init__(self, archive_dir: Path):
        self.archive_dir = archive_dir

    def search(self, bbox: tuple[float, float, float, float]) -> list[pystac.Item]:
        from terracover.simulate import load_archive

        region = box(*bbox)
        items = [i for i in load_archive(self.archive_dir).dem_items if i.bbox and box(*i.bbox).intersects(region)]
        return sorted(items, key=lambda i: i.id)

    def asset_href(self, item: pystac.Item) -> str:
        return next(iter(item.assets.values())).href


def open_dem_source(settings: Settings) -> DemSource:
    if settings.dem_source == "cop-dem-glo-30":
        return StacDemSource(settings.dem_stac_api_url, settings.dem_collection, "cop-dem-glo-30")
    if settings.dem_source == "aster-gdem":
        return StacDemSource(settings.cmr_stac_url, "ASTGTM_003", "aster-gdem", token_env="EARTHDATA_TOKEN")
    return ArchiveDemSource(settings.home / "archive")


def reproject_sources(
    hrefs: Sequence[str], dst_crs: int, transform: Affine, shape: tuple[int, int], gdal_env: dict[str, str]
) -> np.ndarray:
    """Mosaic DEM rasters onto a grid (bilinear); the first source with data wins where they overlap."""
    out = np.full(shape, np.nan, dtype=np.float32)
    with rasterio.Env(**gdal_env):
        for href in hrefs:
            part = np.full(shape, np.nan, dtype=np.float32)
            with rasterio.open(gdal_href(href)) as src:
                reproject(
                    rasterio.band(src, 1),
                    part,
                    dst_transform=transform,
                    dst_crs=dst_crs,
                    dst_nodata=np.nan,
                    resampling=Resampling.bilinear,
                )
            fill = np.isnan(out) & ~np.isnan(part)
            out[fill] = part[fill]
    return out


def build_terrain(
    tile_name: str,
    region_bbox: tuple[float, float, float, float],
    subtile_size: int,
    source: DemSource,
    store: ObjectStore,
    catalog: Catalog,
    overwrite: bool = False,
) -> str:
    """Elevation, slope and aspect of one tile over the region, stored and catalogued; returns the key."""
    key = terrain_key(tile_name)
    if store.exists(key) and not overwrite:
        log.info("terrain of %s exists at %s: skipped", tile_name, key)
        return key
    bounds = grid.region_bounds(tile_name, region_bbox, subtile_size)
    if bounds is None:
        raise ValueError(f"tile {tile_name} does not touch the region {region_bbox}")
    t = grid.tile(tile_name)
    # one pixel of margin so slope at the window's edge sees real neighbours
    pad = RESOLUTION_M
    width = round((bounds[2] - bounds[0]) / RESOLUTION_M) + 2
    height = round((bounds[3] - bounds[1]) / RESOLUTION_M) + 2
    transform = Affine(RESOLUTION_M, 0, bounds[0] - pad, 0, -RESOLUTION_M, bounds[3] + pad)
    footprint = grid.bounds_wgs84(bounds, t.epsg)
    west, south, east, north = footprint.bounds
    items = source.search((west, south, east, north))
    if not items:
        raise LookupError(f"{source.name}: no DEM covers tile {tile_name} over {footprint.bounds}")
    log.info("terrain %s: %d DEM rasters from %s onto %dx%d px", tile_name, len(items), source.name, width, height)
    dem = reproject_sources(
        [source.asset_href(i) for i in items], t.epsg, transform, (height, width), source.gdal_env()
    )
    slope, aspect = slope_aspect(dem, RESOLUTION_M, RESOLUTION_M)
    stack = np.stack([dem, slope, aspect])[:, 1:-1, 1:-1].astype(np.float32)
    out_transform = Affine(RESOLUTION_M, 0, bounds[0], 0, -RESOLUTION_M, bounds[3])
    with store.writer(key, suffix=".tif") as path:
        write_cog(
            path,
            stack,
            out_transform,
            t.epsg,
            nodata=float("nan"),
            descriptions=TERRAIN_BANDS,
            tags={"terracover:dem_source": source.name},
        )
    item = footprint_item(
        f"{tile_name}-terrain",
        footprint,
        DEM_COLLECTION,
        {
            "start_datetime": "2000-01-01T00:00:00Z",
            "end_datetime": "2100-01-01T00:00:00Z",
            "terracover:tile": tile_name,
            "terracover:dem_source": source.name,
            "terracover:dem_items": [i.id for i in items],
            "proj:epsg": t.epsg,
        },
    )
    item.add_asset("terrain", cog_asset(store, key))
    catalog.upsert_items([item])
    return key
