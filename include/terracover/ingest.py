"""Copy the bands a region needs from a scene source into the object store, once, and catalog them.

Scenes land under ``scenes/{tile}/{date}/{band}.tif`` (docs/architecture.md section 3), clipped to the region
snapped out to whole subtiles of the tile, at each band's native resolution, as COGs. Ingestion is idempotent: a
band object that exists is not fetched again, and catalog upserts replace rather than duplicate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pystac
from affine import Affine
from rasterio.enums import Resampling

from terracover import grid
from terracover.bands import BAND_BY_NAME, SCL, SPECTRAL_BANDS
from terracover.catalog import SCENES_COLLECTION, Catalog, footprint_item
from terracover.cog import write_cog
from terracover.keys import scene_key
from terracover.radiometry import (
    DARK_TARGET_BANDS,
    DARK_TARGET_PROPERTY,
    DarkTargetCheck,
    OffsetDecision,
    OffsetError,
    check_dark_targets,
    contradiction_message,
    dn_offsets,
    evidence_properties,
)
from terracover.sources.base import SceneSource, find_asset, scene_tile
from terracover.store import ObjectStore

log = logging.getLogger(__name__)

INGESTED_BANDS: tuple[str, ...] = (*SPECTRAL_BANDS, SCL.name)


def scene_day(item: pystac.Item) -> str:
    if item.datetime is None:
        raise ValueError(f"item {item.id} has no datetime")
    return item.datetime.date().isoformat()


@dataclass(frozen=True)
class IngestResult:
    item_id: str
    tile: str
    day: str
    copied: int
    skipped: int
    seconds: float


def catalog_item(
    item: pystac.Item,
    tile: str,
    bounds: tuple[float, float, float, float],
    store: ObjectStore,
    bands: Sequence[str],
    source: str,
    radiometry: dict[str, Any] | None = None,
    copied: bool = True,
) -> pystac.Item:
    """The catalog item of an ingested scene: geometry of the region's window of the tile; assets are the
    store's copies, or (``copied=False``, reading in place) the source's own COGs under our band names.

    It keeps the source's offset evidence (``earthsearch:*``, ``s2:*``...) and ``radiometry``: the decided DN
    offset per band and the dark-target check (:mod:`terracover.radiometry`), which is what compositing reads.
    """
    t = grid.tile(tile)
    props = {
        k: v
        for k, v in item.properties.items()
        if k.startswith(("eo:", "s2:", "mgrs:", "grid:", "view:", "proj:")) or k in ("platform", "constellation")
    }
    props.update(evidence_properties(item))
    props.update(
        {
            **(radiometry or {}),
            "terracover:tile": tile,
            "terracover:source": source,
            "terracover:source_item": item.id,
            "terracover:access": "copy" if copied else "in-place",
            "proj:epsg": t.epsg,
        }
    )
    out = footprint_item(item.id, grid.bounds_wgs84(bounds, t.epsg), SCENES_COLLECTION, props, item.datetime)
    day = scene_day(item)
    for band in bands:
        key = scene_key(tile, day, band)
        extra: dict[str, Any] = {"gsd": BAND_BY_NAME[band].resolution_m}
        if copied:
            href = store.uri(key)
            extra["terracover:key"] = key
        else:
            href = find_asset(item, band).href
        out.add_asset(
            band, pystac.Asset(href=href, media_type=pystac.MediaType.COG, roles=["data"], extra_fields=extra)
        )
    return out


def ingest_scene(
    item: pystac.Item,
    region_bbox: tuple[float, float, float, float],
    subtile_size: int,
    source: SceneSource,
    store: ObjectStore,
    catalog: Catalog,
    bands: Sequence[str] = INGESTED_BANDS,
    copy: bool = True,
) -> IngestResult:
    """Copy one scene's bands over the region into the store, then upsert its catalog item; or, with
    ``copy=False`` (a source of public COGs), catalog the scene's own hrefs and copy nothing: compositing then
    reads the windows it needs where they are (the offset is decided from the item; the dark-target check,
    which reads the whole scene, runs only on copies).

    The catalog item is written last, so its presence means every band object is complete.
    """
    t0 = time.perf_counter()
    tile = scene_tile(item)
    day = scene_day(item)
    bounds = grid.region_bounds(tile, region_bbox, subtile_size)
    if bounds is None:
        raise ValueError(f"scene {item.id} is on tile {tile}, which the region {region_bbox} does not touch")
    epsg = grid.tile(tile).epsg
    decision = scene_offsets(item, source)  # before copying: an unknown offset must not cost a download
    if not copy:
        for band in bands:
            find_asset(item, band)  # fail now, not at compositing time, on an item without the band
        radiometry = {**decision.properties(), DARK_TARGET_PROPERTY: None}
        catalog.upsert_items([catalog_item(item, tile, bounds, store, bands, source.name, radiometry, copied=False)])
        return IngestResult(item.id, tile, day, 0, 0, round(time.perf_counter() - t0, 3))
    copied = skipped = 0
    for i, band in enumerate(bands, start=1):
        key = scene_key(tile, day, band)
        if store.exists(key):
            skipped += 1
            continue
        res = BAND_BY_NAME[band].resolution_m
        data = source.read_band(item, band, bounds, res)
        transform = Affine(res, 0, bounds[0], 0, -res, bounds[3])
        with store.writer(key, suffix=".tif") as path:
            write_cog(path, data, transform, epsg, nodata=0, descriptions=[band], overviews=False)
        copied += 1
        log.info(
            "scene %s: band %s (%d/%d) %dx%d px at %d m",
            item.id,
            band,
            i,
            len(bands),
            data.shape[1],
            data.shape[0],
            res,
        )
    check = dark_target_check(store, tile, day, decision)
    if check is not None and check.contradicts:
        raise OffsetError(contradiction_message(item.id, decision, check))
    radiometry = {**decision.properties(), DARK_TARGET_PROPERTY: check.as_dict() if check else None}
    catalog.upsert_items([catalog_item(item, tile, bounds, store, bands, source.name, radiometry)])
    return IngestResult(item.id, tile, day, copied, skipped, round(time.perf_counter() - t0, 3))


def scene_offsets(item: pystac.Item, source: SceneSource) -> OffsetDecision:
    """The item's DN offsets (:func:`terracover.radiometry.dn_offsets`), reading the product metadata from the
    source only when nothing in the item decides (raw ESA items)."""
    try:
        return dn_offsets(item)
    except OffsetError:
        metadata = source.product_metadata(item)
        if metadata is None:
            raise
        return dn_offsets(item, metadata)


DARK_CHECK_MAX_PX = 1024  # the check reads the scene decimated to at most this many pixels a side


def dark_target_check(store: ObjectStore, tile: str, day: str, decision: OffsetDecision) -> DarkTargetCheck | None:
    """The dark-target check of an ingested scene's DNs against its declared offsets (None without SCL)."""
    if not store.exists(scene_key(tile, day, SCL.name)) or not all(
        store.exists(scene_key(tile, day, b)) for b in DARK_TARGET_BANDS
    ):
        return None
    with store.open_raster(scene_key(tile, day, SCL.name)) as src:
        step = max(1, -(-max(src.height, src.width) // DARK_CHECK_MAX_PX))
        shape = (-(-src.height // step), -(-src.width // step))
        scl = src.read(1, out_shape=shape, resampling=Resampling.nearest)
    dns = {}
    for band in DARK_TARGET_BANDS:
        with store.open_raster(scene_key(tile, day, band)) as src:
            dns[band] = src.read(1, out_shape=shape, resampling=Resampling.nearest)
    return check_dark_targets(dns, scl, decision.dn_offset)


def pending_scenes(items: Sequence[pystac.Item], catalog: Catalog) -> list[pystac.Item]:
    """Items not yet in the catalog: a re-run over the same window maps no task for what is done."""
    ids = [i.id for i in items]
    if not ids:
        return []
    done = {i.id for i in catalog.search(collections=[SCENES_COLLECTION], ids=ids)}
    return [i for i in items if i.id not in done]
