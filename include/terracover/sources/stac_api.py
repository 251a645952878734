"""Sentinel-2 L2A from a STAC API (Earth Search by default) through pystac-client."""

from __future__ import annotations

import logging

import pystac
from pystac_client import Client

from terracover.mgrs import normalise_tile
from terracover.sources.base import SceneQuery, SceneSource, filter_items

log = logging.getLogger(__name__)


class StacApiSource(SceneSource):
    """Searches a STAC API's L2A collection; reads COG assets over HTTP(S) or S3 with ranged requests."""

    name = "stac"
    serves_cogs = True

    def __init__(self, url: str, collection: str = "sentinel-2-l2a", gdal_options: dict[str, str] | None = None):
        self.url = url
        self.collection = collection
        self._gdal_options = gdal_options or {}

    def gdal_env(self) -> dict[str, str]:
        return {**super().gdal_env(), **self._gdal_options}

    def search(self, query: SceneQuery) -> list[pystac.Item]:
        client = Client.open(self.url)
        tiles = [normalise_tile(t) for t in query.tiles]
        # `query` narrows the result server-side where supported; filter_items re-checks every field.
        search = client.search(
            collections=[self.collection],
            bbox=query.bbox,
            datetime=query.datetime_range,
            query={"eo:cloud_cover": {"lte": query.max_cloud_cover}},
            limit=100,
        )
        items = list(search.items())
        kept = filter_items(items, query)
        log.info(
            "STAC %s: %d items in window, %d on tiles %s under %.0f%% cloud",
            self.url,
            len(items),
            len(kept),
            ",".join(tiles),
            query.max_cloud_cover,
        )
        return kept
