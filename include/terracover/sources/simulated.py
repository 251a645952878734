"""The offline stand-in for a public catalog: the simulator's archive of items and COGs on local disk."""

from __future__ import annotations

from pathlib import Path

import pystac

from terracover.sources.base import SceneQuery, SceneSource, filter_items


class SimulatedSource(SceneSource):
    """Searches the items that :func:`terracover.simulate.simulate_archive` wrote under ``archive_dir``."""

    name = "simulator"

    def __init__(self, archive_dir: Path):
        self.archive_dir = archive_dir

    def search(self, query: SceneQuery) -> list[pystac.Item]:
        from terracover.simulate import load_archive

        if not self.archive_dir.exists():
            raise FileNotFoundError(
                f"no simulated archive at {self.archive_dir}: run the simulator first (make demo does)"
            )
        archive = load_archive(self.archive_dir)
        return filter_items(archive.scene_items, query)
