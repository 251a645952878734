"""The data-plane steps as functions with JSON-friendly inputs and outputs: what each Airflow task calls.

Each step opens the store, catalog and sources from settings, so a task needs nothing but its arguments and
the ``TERRACOVER_*`` environment, whether it runs in a local executor or in its own Kubernetes pod.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date
from typing import Any

import pystac
from shapely.geometry import box

from terracover import fanout, grid
from terracover.catalog import ALL_COLLECTIONS, Catalog, collection, open_catalog
from terracover.features import SEASONS
from terracover.keys import composites_published_key, datasets_prefix
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
    return fanout.region_tiles(s.region_bbox, s.tiles)


def year_window(year: int) -> tuple[date, date]:
    """First and last day of the seasons that make up ``year`` (winter starts in December of year-1)."""
    starts, ends = zip(*(s.window(year) for s in SEASONS), strict=True)
    return min(starts), max(ends)


def plan_ingest(years: Sequence[int], max_items: int, settings: Settings | None = None) -> list[dict[str, Any]]:
    """The fan-out of ingest_scenes: one task per tile-year of the region."""
    s = settings or get_settings()
    return fanout.plan_ingest(years, region_tiles(s), max_items)


def ingest_tile_year(year: int, tile: str, settings: Settings | None = None) -> dict[str, Any]:
    """Search one tile's scenes of ``year`` and ingest those not yet catalogued, in parallel threads."""
    from terracover.ingest import ingest_scene, pending_scenes

    s = settings or get_settings()
    start, end = year_window(year)
    part = box(*s.region_bbox).intersection(grid.tile(tile).owned_wgs84)
    query = SceneQuery((tile,), part.bounds if not part.is_empty else s.region_bbox, start, end, s.max_cloud_cover)
    source = open_scene_source(s)
    catalog = ready_catalog(s)
    store = open_store(s)
    items = source.search(query)
    pending = pending_scenes(items, catalog)
    log.info("year %d tile %s: %d scenes found, %d not yet ingested", year, tile, len(items), len(pending))

    copy = s.scene_access == "copy" or (s.scene_access == "auto" and not source.serves_cogs)

    def one(item: pystac.Item) -> Any:
        return ingest_scene(item, s.region_bbox, s.subtile_size, source, store, catalog, copy=copy)

    results = fanout.run_parallel(one, pending, fanout.worker_count(s.batch_workers, len(pending)))
    return {
        "year": year,
        "tile": tile,
        "found": len(items),
        "ingested": len(results),
        "bands_copied": sum(r.copied for r in results),
        "access": "copy" if copy else "in-place",
    }


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


def tiles_without_terrain(settings: Settings | None = None) -> list[str]:
    """Tiles of the region whose terrain (DEM, slope, aspect) is not catalogued yet."""
    from terracover.catalog import DEM_COLLECTION

    s = settings or get_settings()
    cat = ready_catalog(s)
    return [t for t in region_tiles(s) if cat.get_item(DEM_COLLECTION, f"{t}-terrain") is None]


def plan_composites(years: Sequence[int], max_items: int, settings: Settings | None = None) -> list[dict[str, Any]]:
    """The fan-out of build_composites: one task per (year, tile, batch of subtiles); tasks derive their subtiles."""
    s = settings or get_settings()
    return fanout.plan_composites(years, region_tiles(s), s.subtile_size, s.composite_batch_subtiles, max_items)


def build_stack_batch(
    year: int, tile: str, batch: int = 0, batches: int = 1, settings: Settings | None = None
) -> dict[str, Any]:
    """Build the stacks of one batch of a tile's subtiles, in parallel threads; counts only (XCom stays small)."""
    from terracover.stacks import build_stack

    s = settings or get_settings()
    subs = fanout.batch_subtiles(tile, batch, batches, s.region_bbox, s.subtile_size)
    store, catalog = open_store(s), ready_catalog(s)

    def one(st: grid.Subtile) -> Any:
        return build_stack(year, st, store, catalog, max_out_of_range=s.stack_max_out_of_range, gap_fill=s.gap_fill)

    results = fanout.run_parallel(one, subs, fanout.worker_count(s.batch_workers, len(subs)))
    built = [r for r in results if not r.skipped]
    log.info("year %d tile %s batch %d/%d: %d stacks, %d built", year, tile, batch + 1, batches, len(subs), len(built))
    return {"year": year, "tile": tile, "batch": batch, "stacks": len(results), "built": len(built)}


def begin_composites(years: Sequence[int], settings: Settings | None = None) -> None:
    """Withdraw the years' *published* mark before their stacks change, so a build_training_set started by new
    labels meanwhile skips the year instead of sampling it half built (the publish that follows builds it)."""
    store = open_store(settings or get_settings())
    for year in years:
        store.delete(composites_published_key(year))


def publish_composites(years: Sequence[int], summary: dict[str, Any], settings: Settings | None = None) -> None:
    """Mark the years' stacks complete (``composites/{year}/published.json`` holds the run's summary)."""
    store = open_store(settings or get_settings())
    for year in years:
        store.put_bytes(composites_published_key(year), json.dumps(summary).encode(), "application/json")


def composites_published(year: int, settings: Settings | None = None) -> bool:
    """Whether build_composites' last run over ``year`` finished and published (not withdrawn by a new run)."""
    return open_store(settings or get_settings()).exists(composites_published_key(year))


def build_one_stack(year: int, tile: str, subtile: str, settings: Settings | None = None) -> dict[str, Any]:
    from terracover.stacks import build_stack

    s = settings or get_settings()
    st = grid.subtile(tile, subtile, s.subtile_size)
    return asdict(
        build_stack(
            year,
            st,
            open_store(s),
            ready_catalog(s),
            max_out_of_range=s.stack_max_out_of_range,
            gap_fill=s.gap_fill,
        )
    )


def stack_count(year: int, settings: Settings | None = None) -> int:
    """How many feature stacks of ``year`` the catalog holds (0: build_composites has not run for it)."""
    from terracover.catalog import COMPOSITES_COLLECTION

    items = ready_catalog(settings or get_settings()).search(
        collections=[COMPOSITES_COLLECTION], properties={"terracover:year": year}
    )
    return len(items)


def training_tables(year: int, settings: Settings | None = None) -> list[str]:
    """Store keys of the year's training tables (``datasets/{year}/*.parquet``)."""
    return [k for k in open_store(settings or get_settings()).list(datasets_prefix(year)) if k.endswith(".parquet")]


def years_with_new_labels(settings: Settings | None = None) -> dict[int, int]:
    """Years whose labelled points (by content) no training table was built from: {year: points}."""
    from terracover.labelsets import unbuilt

    return {year: len(labels) for year, labels in unbuilt(open_store(settings or get_settings())).items()}


def build_training_set(year: int, settings: Settings | None = None) -> dict[str, Any]:
    """Sample labels, merge the champion's data, pass the Great Expectations gate, then store the table.

    The gate runs before the write, so a rejected table never appears under ``datasets/``.
    """
    from terracover.dataset import assemble_training_table, store_training_table
    from terracover.labelsets import current_sets
    from terracover.labelsets import record as record_labels
    from terracover.quality import gate
    from terracover.registry import open_registry

    s = settings or get_settings()
    store = open_store(s)
    labels = current_sets(store).get(year)  # read before sampling: a file landing meanwhile stays "new"
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
    if labels is not None:
        record_labels(store, info.key, labels)
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
        "incomplete": len(report.incomplete),
    }
