"""Where imagery comes from: public STAC APIs, Sentinel Hub, or the offline simulator, behind one interface.

A source finds Sentinel-2 L2A scenes for tiles and a date window and reads one band of one scene over a box of
the tile's grid. Everything downstream (ingestion, compositing) only sees :class:`SceneSource`.
"""

from __future__ import annotations

from terracover.sources.base import SceneQuery, SceneSource, open_scene_source

__all__ = ["SceneQuery", "SceneSource", "open_scene_source"]
