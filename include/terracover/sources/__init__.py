"""Where imagery comes from: public STAC APIs, Sentinel Hub, or the offline simulator, behind one interface.

A source finds Sentinel-2 L2A scenes for tiles and a date window and reads one band of one scene over a box of
the tile's grid. Everything downstream (ingestion, compositing) only sees :class:`SceneSource`; the factory
lives here, above the interface and its implementations, so ``sources.base`` never imports its subclasses.
"""

from __future__ import annotations

from terracover.settings import Settings
from terracover.sources.base import SceneQuery, SceneSource


def open_scene_source(settings: Settings) -> SceneSource:
    """The source named by ``settings.scene_source``."""
    if settings.scene_source == "stac":
        from terracover.sources.stac_api import StacApiSource

        return StacApiSource(settings.stac_api_url, settings.s2_collection)
    if settings.scene_source == "sentinelhub":
        from terracover.sources.sentinelhub import SentinelHubSource

        return SentinelHubSource.from_settings(settings)
    from terracover.sources.simulated import SimulatedSource

    return SimulatedSource(settings.home / "archive")


__all__ = ["SceneQuery", "SceneSource", "open_scene_source"]
