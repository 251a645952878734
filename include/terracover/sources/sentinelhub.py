"""Sentinel-2 L2A from Sentinel Hub (Copernicus Data Space Ecosystem by default): Catalog API + Process API.

Search goes through the Catalog API (a STAC API behind OAuth); reading a band over a box is one Process API
request returning that band's digital numbers as UINT16 on the tile's UTM grid at the band's resolution, so
the rest of terracover cannot tell this source from a STAC one.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import numpy as np
import pystac

from terracover.bands import BAND_BY_NAME
from terracover.mgrs import normalise_tile
from terracover.settings import Settings
from terracover.sources.base import SceneQuery, SceneSource, filter_items, scene_tile

log = logging.getLogger(__name__)

CDSE_TOKEN_URL = "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token"

_EVALSCRIPT = """//VERSION=3
function setup() {{
  return {{input: [{{bands: ["{band}"], units: "DN"}}], output: {{bands: 1, sampleType: "UINT16"}}}};
}}
function evaluatePixel(s) {{ return [s.{band}]; }}
"""


class SentinelHubSource(SceneSource):
    """Scenes from a Sentinel Hub deployment; needs an OAuth client id and secret."""

    name = "sentinelhub"

    def __init__(self, base_url: str, client_id: str, client_secret: str, token_url: str | None = None):
        from sentinelhub import DataCollection, SHConfig

        self.config = SHConfig(
            sh_base_url=base_url.rstrip("/"),
            sh_client_id=client_id,
            sh_client_secret=client_secret,
            sh_token_url=token_url
            or (CDSE_TOKEN_URL if "dataspace.copernicus.eu" in base_url else f"{base_url.rstrip('/')}/oauth/token"),
        )
        self.collection = DataCollection.SENTINEL2_L2A.define_from(
            "terracover-s2l2a", service_url=self.config.sh_base_url
        )

    @classmethod
    def from_settings(cls, s: Settings) -> SentinelHubSource:
        if not s.sentinelhub_client_id or s.sentinelhub_client_secret is None:
            raise ValueError(
                "scene_source=sentinelhub needs TERRACOVER_SENTINELHUB_CLIENT_ID and "
                "TERRACOVER_SENTINELHUB_CLIENT_SECRET (an OAuth client of your Sentinel Hub account)"
            )
        return cls(s.sentinelhub_base_url, s.sentinelhub_client_id, s.sentinelhub_client_secret.get_secret_value())

    def search(self, query: SceneQuery) -> list[pystac.Item]:
        from sentinelhub import CRS, BBox, SentinelHubCatalog

        catalog = SentinelHubCatalog(config=self.config)
        results = catalog.search(
            self.collection,
            bbox=BBox(query.bbox, crs=CRS.WGS84),
            time=(query.start.isoformat(), query.end.isoformat()),
            filter=f"eo:cloud_cover <= {query.max_cloud_cover}",
        )
        items = [self._to_item(feature) for feature in results]
        kept = filter_items([i for i in items if i is not None], query)
        log.info(
            "Sentinel Hub: %d items, %d on tiles %s",
            len(items),
            len(kept),
            ",".join(normalise_tile(t) for t in query.tiles),
        )
        return kept

    @staticmethod
    def _to_item(feature: dict[str, Any]) -> pystac.Item | None:
        """A Catalog API feature as a pystac Item; its tile comes from the product id (``..._T30SYJ_...``)."""
        item = pystac.Item.from_dict(feature)
        if "s2:mgrs_tile" not in item.properties and "grid:code" not in item.properties:
            tile = next((p[1:] for p in item.id.split("_") if p.startswith("T") and len(p) == 6), None)
            if tile is None:
                log.warning("Sentinel Hub item %s names no MGRS tile: ignored", item.id)
                return None
            item.properties["s2:mgrs_tile"] = tile
        item.properties["sentinelhub:harmonize_values"] = True  # how read_band asks for the DNs
        return item

    def read_band(
        self, item: pystac.Item, band: str, bounds: tuple[float, float, float, float], resolution: float
    ) -> np.ndarray:
        """One Process API request: the band's DNs over ``bounds`` in the tile's UTM CRS at ``resolution``."""
        from sentinelhub import CRS, BBox, MimeType, SentinelHubRequest

        from terracover import grid

        if band not in BAND_BY_NAME:
            raise KeyError(f"unknown band {band}")
        if item.datetime is None:
            raise ValueError(f"item {item.id} has no datetime")
        epsg = grid.tile(scene_tile(item)).epsg
        when = item.datetime
        request = SentinelHubRequest(
            evalscript=_EVALSCRIPT.format(band=band),
            input_data=[
                SentinelHubRequest.input_data(
                    self.collection,
                    time_interval=(when - timedelta(minutes=1), when + timedelta(minutes=1)),
                    # harmonizeValues (Sentinel Hub's default, explicit here): DNs = 10000 x reflectance, the
                    # L2A offset of baseline >= 04.00 removed; _to_item declares it (terracover.radiometry).
                    other_args={
                        "processing": {"upsampling": "NEAREST", "downsampling": "NEAREST", "harmonizeValues": True}
                    },
                )
            ],
            responses=[SentinelHubRequest.output_response("default", MimeType.TIFF)],
            bbox=BBox(bounds, crs=CRS(epsg)),
            resolution=(resolution, resolution),
            config=self.config,
        )
        data = np.asarray(request.get_data()[0])
        return data.astype(np.uint16, copy=False)
