"""The data-plane steps as functions with JSON-friendly inputs and outputs: what each Airflow task calls.

Each step opens the store, catalog and sources from settings, so a task needs nothing but its arguments and
the ``TERRACOVER_*`` environment, whether it runs in a local executor or in its own Kubernetes pod.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import date
from typing import Any

import pystac
from shapely.geometry import box

from terracover import grid
from terracover.catalog import ALL_COLLECTIONS, Catalog, collection, open_catalog
from terracover.features import SEASONS
from terracover.keys import datasets_prefix
from terracover.settings import Settings, get_settings
from terracover.sources import SceneQuery, open_scene_source
from terracover.store import open_store

log = logging.getLogger(__name__)


def ready_catalog(settings: Settings | None = None) -> Catalog:
    """The catalog with terracover's collections present (idempotent)."""
    s = settings or get_settings()
    cat = open_catalog(s)
    existing = set(cat.collections())
    for cid, description in ALL_COLLECTIONS.items():
        if cid not in existing:
            cat.add_collection(collection(cid, description))
    return cat


def region_tiles(settings: Settings | None = None) -> list[str]:
    """The tiles to keep: ``settings.tiles`` if set, else those the region touches."""
    s = settings or get_settings()
    if s.tiles:
        return list(s.tiles)
    return [t.name for t in grid.tiles_for_geometry(box(*s.region_bbox))]


def year_window(year: int) -> tuple[date, date]:
    """First and last day of the seasons that make up ``year`` (winter starts in December of year-1)."""
    starts, ends = zip(*(s.window(year) for s in SEASONS), strict=True)
    return min(starts), max(ends)


def pending_scene_items(year: int, settings: Settings | None = None) -> list[dict[str, Any]]:
    from terracover.ingest import pending_scenes

    s = settings or get_settings()
    start, end = year_window(year)
    query = SceneQuery(tuple(region_tiles(s)), s.region_bbox, start, end, s.max_cloud_cover)
    items = open_scene_source(s).search(query)
    pending = pending_scenes(items, ready_catalog(s))
    log.info(
        "year %d: %d scenes found on %s, %d not yet ingested",
        year,
        len(items),
        ",".join(query.tiles),
        len(pending),
    )
    return [i.to_dict() for i in pending]


def ingest_one_scene(item: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    from terracover.ingest import ingest_scene

    s = settings or get_settings()
    result = ingest_scene(
        pystac.Item.from_dict(item),
        s.region_bbox,
        s.subtile_size,
        open_scene_source(s),
        open_store(s),
        ready_catalog(s),
    )
    return asdict(result)


def terrain_for_tile(tile: str, overwrite: bool = False, settings: Settings | None = None) -> str:
    from terracover.dem import build_terrain, open_dem_source

    s = settings or get_settings()
    return build_terrain(
        tile,
        s.region_bbox,
        s.subtile_size,
        open_dem_source(s),
        open_store(s),
        ready_catalog(s),
        overwrite=overwrite,
    )


def plan_stacks(year: int, settings: Settings | None = None) -> list[dict[str, Any]]:
    """One entry per subtile of the region: the fan-out of build_composites."""
    s = settings or get_settings()
    keep = set(region_tiles(s))
    subs = [st for st in grid.subtiles_for_geometry(box(*s.region_bbox), s.subtile_size) if st.tile.name in keep]
    return [{"year": year, "tile": st.tile.name, "subtile": st.id} for st in subs]


def build_one_stack(year: int, tile: str, subtile: str, settings: Settings | None = None) -> dict[str, Any]:
    from terracover.stacks import build_stack

    s = settings or get_settings()
    st = grid.subtile(tile, subtile, s.subtile_size)
    return asdict(build_stack(year, st, open_store(s), ready_catalog(s), max_out_of_range=s.stack_max_out_of_range))


def years_with_new_labels(settings: Settings | None = None) -> list[int]:
    """Years whose newest label file is newer than their newest training table (or that have none)."""
    from terracover.labels import label_keys, read_label_file

    s = settings or get_settings()
    store = open_store(s)
    newest_label: dict[int, Any] = {}
    for key in label_keys(store):
        when = store.modified(key)
        for year in set(read_label_file(store, key)["year"].tolist()):
            newest_label[year] = max(newest_label.get(year, when), when)
    years = []
    for year, when in sorted(newest_label.items()):
        tables = store.list(datasets_prefix(year))
        if not tables or max(store.modified(k) for k in tables) < when:
            years.append(int(year))
    return years


def build_training_set(year: int, settings: Settings | None = None) -> dict[str, Any]:
    """Sample labels, merge the champion's data, pass the Great Expectations gate, then store the table.

    The gate runs before the write, so a rejected table never appears under ``datasets/``.
    """
    from terracover.dataset import assemble_training_table, store_training_table
    from terracover.quality import gate
    from terracover.registry import open_registry

    s = settings or get_settings()
    store = open_store(s)
    table, new_points, report = assemble_training_table(
        year,
        store,
        ready_catalog(s),
        s.subtile_size,
        champion_table_uri=open_registry(s).champion_dataset_uri(year),
        seed=s.random_seed,
    )
    quality = gate(table, s.min_samples_per_class)
    log.info("%s", quality.markdown())
    info = store_training_table(year, table, store, new_points)
    return {
        "year": year,
        "dataset_uri": info.uri,
        "sha256": info.sha256,
        "rows": info.rows,
        "new_points": new_points,
        "class_counts": info.class_counts,
        "split_counts": info.split_counts,
        "missing_coverage": len(report.missing_coverage),
        "no_data": len(report.no_data),
    }
