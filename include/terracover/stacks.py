"""Per-subtile feature stacks: seasonal cloud-masked medians, indices and terrain in ONE float32 COG.

``composites/{year}/{tile}/{subtile}/features.tif`` has one band per feature (descriptions = feature names,
nodata NaN) on the subtile's 10 m grid, then one ``qa_{season}`` band per season saying how each pixel's season
was obtained (observed with k clear observations, interpolated, fallback, missing: :mod:`terracover.gapfill`).
The build reads only the subtile's window of each ingested scene, in blocks, one season at a time, and writes
each block of features to the COG's on-disk temporary as soon as it is computed, so memory stays bounded
whatever the number of dates and bands (peak RSS per subtile-year: ``make bench``); the median kernel is
:func:`terracover.composite.composite_bands`, seasons without a clear observation are filled by the ``gap_fill``
policy. Beside it, ``truecolour.tif`` (:mod:`terracover.truecolour`) is the stack's true colour for map tiles.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import date
from functools import partial

import numpy as np
import pystac
from rasterio.enums import Resampling
from rasterio.windows import Window, from_bounds

from terracover import features as feat
from terracover.bands import REFLECTANCE_SCALE, SCL, SPECTRAL_BANDS, valid_scl_lut
from terracover.catalog import (
    COMPOSITES_COLLECTION,
    DEM_COLLECTION,
    SCENES_COLLECTION,
    Catalog,
    cog_asset,
    footprint_item,
)
from terracover.cog import cog_writer
from terracover.composite import composite_bands
from terracover.dem import TERRAIN_BANDS
from terracover.gapfill import SeasonEdges, day_offset, fill_gaps, qa_band_name, quality_fractions, season_edges
from terracover.grid import Subtile
from terracover.keys import scene_key, stack_key, terrain_key, true_colour_key
from terracover.radiometry import OffsetError, dn_offsets
from terracover.raster_io import OpenRasters, PinnedReaders, read_bounds
from terracover.sources.base import gdal_href
from terracover.stackguard import DEFAULT_MAX_OUT_OF_RANGE, RangeGuard
from terracover.store import ObjectStore
from terracover.truecolour import (
    ASSET,
    SEASON,
    band_names,
    can_write,
    from_stack,
    has_true_colour,
    to_rgba,
    true_colour_asset,
    write_true_colour,
)

log = logging.getLogger(__name__)

# One COG-writing thread per stack: a batch already runs one subtile per CPU, and every writing thread holds a
# strip of all ~100 bands (terracover.cog.cog_writer), so ALL_CPUS per stack multiplied the peak by the workers.
COG_THREADS = 1
# Internal tile size of a stack COG. Every tile holds all ~107 bands (pixel interleaved), so reading any window
# decompresses whole tiles: at 512 px a 40 px prediction window or a training point decompressed ~110 MB
# (~330 ms); at 128 px ~7 MB (~20-30 ms, measured on a 107-band stack). Compression per tile is the same
# (measured); a 1098 px stack gets two more small overview levels (~2 % more pixels).
STACK_TILE_PX = 128
BLOCK_ROWS = 256  # rows per block: 14 bands x T dates x 256 x 1098 x 2 B stays under ~100 MB for T=12
# Blocks are strips of whole rows: a COG stores the tiles of a row next to each other, so one strip of a band is
# one ranged GET (GDAL merges consecutive ranges), where square blocks cost a GET per tile and fetched a tile
# row once per block column. Each reader thread keeps its dates' rasters open (the VSI cache holds a tile row
# for the next strip); four overlap the object store's latency without holding more than the two season
# reads in flight (the one composited and the next, prefetched).
READ_THREADS = 4


def stack_item_id(year: int, subtile: Subtile) -> str:
    return f"{year}-{subtile.tile.name}-{subtile.id}"


@dataclass(frozen=True)
class StackResult:
    key: str
    item_id: str
    skipped: bool
    scenes: int
    seconds: float
    valid_fraction: dict[str, float]
    season_quality: dict[str, dict[str, float]] | None = None


def _season_scenes(catalog: Catalog, year: int, tile: str) -> dict[str, list[pystac.Item]]:
    by_season: dict[str, list[pystac.Item]] = defaultdict(list)
    for season in feat.SEASONS:
        start, end = season.window(year)
        items = catalog.search(
            collections=[SCENES_COLLECTION],
            properties={"terracover:tile": tile},
            datetime=f"{start.isoformat()}T00:00:00Z/{end.isoformat()}T23:59:59Z",
        )
        by_season[season.name] = sorted(items, key=lambda i: (i.datetime, i.id))  # time order: gap filling
    return by_season


def _inputs_digest(names: Sequence[str], scenes: dict[str, list[pystac.Item]], gap_fill: str) -> str:
    ids = {s: [i.id for i in items] for s, items in sorted(scenes.items())}
    inputs = {"features": list(names), "scenes": ids, "gap_fill": gap_fill}
    return hashlib.sha256(json.dumps(inputs).encode()).hexdigest()


def common_dn_base(items: Sequence[pystac.Item], bands: Sequence[str]) -> tuple[list[dict[str, int]], np.ndarray]:
    """Each item's DN offsets (:func:`terracover.radiometry.dn_offsets`) and, per band, the largest of them.

    Dates of one season may differ in offset (baseline 04.00 arrived mid-winter 2022; providers harmonise or
    not), and a median needs one DN scale: every date is shifted up to the common base, so no value is clipped
    and reflectance = (median - base) / 10000 keeps its sign.
    """
    offsets = []
    for item in items:
        try:
            offsets.append(dn_offsets(item).dn_offset)
        except OffsetError as exc:
            raise OffsetError(f"{exc}. Re-ingest the scene so its catalog item records terracover:dn_offset") from exc
    base = np.array([max((o.get(b, 0) for o in offsets), default=0) for b in bands], dtype=np.int64)
    return offsets, base


def clip_floor(offsets: Sequence[Mapping[str, int]], bands: Sequence[str]) -> dict[str, float]:
    """Per band, the reflectance of DN 1 (the lowest valid DN, where providers clip) of the least-offset date."""
    return {b: (1 - min((o.get(b, 0) for o in offsets), default=0)) * REFLECTANCE_SCALE for b in bands}


def scene_band_path(store: ObjectStore, item: pystac.Item, tile: str, band: str) -> str:
    """Where GDAL reads one band of a catalogued scene: the store's copy (copy ingestion), or the source's own COG
    in place (in-place ingestion: the asset's href, read through /vsicurl/ or /vsis3/ by window)."""
    asset = item.assets.get(band)
    if asset is not None and "terracover:key" not in asset.extra_fields:
        return gdal_href(asset.href)
    day = item.datetime.date().isoformat() if item.datetime else ""
    return store.gdal_path(scene_key(tile, day, band))


@dataclass
class _SeasonRead:
    """One season's window of every date, being read by the reader threads into preallocated arrays."""

    values: np.ndarray  # (bands, T, rows, cols) uint16 DNs on the common offset base
    scl: np.ndarray  # (T, rows, cols) uint8
    base: np.ndarray  # (bands,) the common DN base
    floor: dict[str, float]  # per band, the reflectance of the clip floor (clip_floor)
    pending: list[Future[None]]

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, float]]:
        for future in self.pending:
            future.result()  # re-raises a read's error here, in the compositing thread
        return self.values, self.scl, self.base, self.floor


def _read_date(
    rasters: OpenRasters,
    paths: Sequence[str],
    shifts: Sequence[int],
    bounds: tuple[float, float, float, float],
    values: np.ndarray,
    scl: np.ndarray,
) -> None:
    """Every band of one date over ``bounds`` into ``values`` (bands, rows, cols) and ``scl`` (rows, cols)."""
    shape = scl.shape
    for b, path in enumerate(paths):
        data = read_bounds(rasters.get(path), bounds, shape, fill_value=0, resampling=Resampling.nearest)
        if b == len(shifts):  # the last path is the SCL
            scl[:] = data
            continue
        if shifts[b]:
            wide = data.astype(np.int32)
            data = np.where(wide > 0, np.minimum(wide + shifts[b], 0xFFFE), 0).astype(np.uint16)
        values[b] = data


def _submit_stack(
    store: ObjectStore,
    items: Sequence[pystac.Item],
    tile: str,
    subtile: Subtile,
    window: Window,
    bands: Sequence[str],
    readers: PinnedReaders,
) -> _SeasonRead:
    """Start reading (bands, T, rows, cols) uint16 DNs on a common offset base and (T, rows, cols) SCL: one
    job per date, each date pinned to one reader thread (its rasters stay open there for the whole subtile).

    Everything is on the 10 m grid. Coarser bands are upsampled with nearest neighbour: it keeps each 20/60 m
    value intact and never blends a cloud edge or nodata into a clear pixel. DN 0 (nodata) stays 0.
    """
    rows, cols = int(window.height), int(window.width)
    x0, y0 = subtile.transform @ (window.col_off, window.row_off)
    x1, y1 = subtile.transform @ (window.col_off + cols, window.row_off + rows)
    bounds = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    offsets, base = common_dn_base(items, bands)
    values = np.zeros((len(bands), len(items), rows, cols), dtype=np.uint16)
    scl = np.zeros((len(items), rows, cols), dtype=np.uint8)
    pending = []
    for t, item in enumerate(items):
        paths = [scene_band_path(store, item, tile, band) for band in (*bands, SCL.name)]
        shifts = [int(base[b]) - offsets[t].get(band, 0) for b, band in enumerate(bands)]
        job = partial(_read_date, paths=paths, shifts=shifts, bounds=bounds, values=values[:, t], scl=scl[t])
        pending.append(readers.submit(item.id, job))
    return _SeasonRead(values, scl, base, clip_floor(offsets, bands), pending)


class _Prefetch:
    """The season reads of a subtile in the order compositing takes them, ``depth`` of them in flight ahead
    of the one being composited: the object store's latency overlaps the median kernel."""

    def __init__(
        self,
        store: ObjectStore,
        scenes: Mapping[str, Sequence[pystac.Item]],
        tile: str,
        subtile: Subtile,
        order: Sequence[tuple[Window, str]],
        readers: PinnedReaders,
        depth: int = 1,
    ):
        self._submit = partial(_submit_stack, store, tile=tile, subtile=subtile, bands=SPECTRAL_BANDS, readers=readers)
        self._scenes = scenes
        self._todo = deque(order)
        self._inflight: deque[tuple[tuple[Window, str], _SeasonRead]] = deque()
        self._depth = depth

    def take(self, window: Window, season: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, float]]:
        while len(self._inflight) <= self._depth and self._todo:
            w, s = self._todo.popleft()
            self._inflight.append(((w, s), self._submit(self._scenes[s], window=w)))
        expected = self._inflight[0][0] if self._inflight else None
        if expected != (window, season):
            raise RuntimeError(f"season reads taken out of order: expected {expected}, got {(window, season)}")
        return self._inflight.popleft()[1].result()


@dataclass
class _Block:
    season_refl: dict[str, dict[str, np.ndarray]]  # needed season -> band -> reflectance, gaps filled
    qa: np.ndarray  # (seasons read, rows, cols) quality codes (terracover.gapfill)


def _stack_block(
    scenes: Mapping[str, Sequence[pystac.Item]],
    window: Window,
    seasons_read: Sequence[str],
    seasons_needed: Sequence[str],
    centres: Sequence[float],
    period: int,
    year_start: date,
    lut: np.ndarray,
    gap_fill: str,
    guard: RangeGuard,
    reads: _Prefetch,
) -> _Block:
    """One block of a stack: every season's median (one season's scenes in memory at a time), the guard fed
    with the observed ones, then the gaps filled."""
    h, w = int(window.height), int(window.width)
    medians = np.full((len(seasons_read), len(SPECTRAL_BANDS), h, w), np.nan, dtype=np.float32)
    edges: list[SeasonEdges] = []
    for k, season in enumerate(seasons_read):
        if not scenes[season]:
            edges.append(SeasonEdges.empty(len(SPECTRAL_BANDS), h, w))
            continue
        values, scl, base, floor = reads.take(window, season)
        days = [day_offset(it.datetime.date(), year_start) for it in scenes[season] if it.datetime]
        season_edge = season_edges(values, scl, lut, days)
        med = composite_bands(values, scl, lut)
        del values, scl
        shift = base[:, None, None].astype(np.float32)  # signed: negative reflectance is kept
        med -= shift
        season_edge.first_value -= shift
        season_edge.last_value -= shift
        medians[k] = med
        edges.append(season_edge)
        if season in seasons_needed:  # the physical-range guard judges observations, before any filling
            guard.add(season, feat.composite_to_values(dict(zip(SPECTRAL_BANDS, med, strict=True))), floor)
    qa = fill_gaps(medians, edges, centres, period, gap_fill)
    season_refl = {
        s: feat.composite_to_values(dict(zip(SPECTRAL_BANDS, medians[k], strict=True)))
        for k, s in enumerate(seasons_read)
        if s in seasons_needed
    }
    return _Block(season_refl, qa)


def build_stack(
    year: int,
    subtile: Subtile,
    store: ObjectStore,
    catalog: Catalog,
    feature_names: Sequence[str] | None = None,
    overwrite: bool = False,
    max_out_of_range: float = DEFAULT_MAX_OUT_OF_RANGE,
    gap_fill: str = "on",
) -> StackResult:
    """Build (or skip, if its inputs have not changed) the feature stack of one subtile and year.

    Fails (:class:`terracover.stackguard.PhysicalRangeError`) before publishing anything when more than
    ``max_out_of_range`` of a season's valid pixels in any optical band lie outside the physical range.
    ``gap_fill`` is the policy of :mod:`terracover.gapfill` (``settings.gap_fill``): with it on, a season
    without any scene (or without a clear observation at a pixel) is filled from the rest of the year.
    """
    t0 = time.perf_counter()
    names = list(feature_names or feat.all_features())
    tile = subtile.tile.name
    key = stack_key(year, subtile)
    item_id = stack_item_id(year, subtile)
    scenes = _season_scenes(catalog, year, tile)
    digest = _inputs_digest(names, scenes, gap_fill)
    existing = catalog.get_item(COMPOSITES_COLLECTION, item_id)
    if (
        not overwrite
        and existing is not None
        and store.exists(key)
        and existing.properties.get("terracover:inputs_sha256") == digest
    ):
        log.info("stack %s: inputs unchanged, skipped", item_id)
        if can_write(names) and not has_true_colour(existing, store):
            _add_true_colour(existing, year, subtile, store, catalog)
        return StackResult(
            key,
            item_id,
            True,
            sum(map(len, scenes.values())),
            0.0,
            existing.properties.get("terracover:valid_fraction", {}),
            existing.properties.get("terracover:season_quality"),
        )
    specs = [feat.parse_feature(n) for n in names]
    seasons_needed = [s.name for s in feat.SEASONS if any(f.season == s.name for f in specs)]
    missing = [s for s in seasons_needed if not scenes[s]]
    if missing and (gap_fill == "off" or not any(scenes.values())):
        raise LookupError(
            f"stack {item_id}: no ingested scenes for season(s) {missing} of {year} on tile {tile};"
            " run ingest_scenes for that window first"
        )
    # with gap filling every season of the year is read: a gap is filled from its neighbours
    seasons_read = [s.name for s in feat.SEASONS] if gap_fill != "off" else seasons_needed
    year_start = feat.SEASONS[0].window(year)[0]
    period = (feat.SEASONS[-1].window(year)[1] - year_start).days + 1
    centres = [(sum(day_offset(d, year_start) for d in feat.SEASON_BY_NAME[s].window(year))) / 2 for s in seasons_read]
    lut = valid_scl_lut()
    height, width = subtile.shape
    qa_names = [qa_band_name(s) for s in seasons_needed]
    qa_all = np.full((len(qa_names), height, width), np.nan, dtype=np.float32)  # for the quality shares
    terrain = _read_terrain(store, catalog, subtile)
    guard = RangeGuard()
    # the true colour (8-bit, 4 bytes a pixel) is kept whole and written after the stack
    colour_idx = [names.index(n) for n in band_names(SEASON)] if can_write(names) else None
    rgba = np.zeros((4, height, width), dtype=np.uint8)
    windows = [Window(0, row, width, min(BLOCK_ROWS, height - row)) for row in range(0, height, BLOCK_ROWS)]
    tags = {
        "terracover:year": str(year),
        "terracover:tile": tile,
        "terracover:subtile": subtile.id,
        "terracover:inputs_sha256": digest,
    }
    # Each block goes to the COG's on-disk temporary as soon as it is computed: the stack is never held whole.
    # Nothing is published before the physical-range guard has judged every block (the writer's temporary
    # directory goes with an exception).
    with (
        store.writer(key, suffix=".tif") as path,
        cog_writer(
            path,
            len(names) + len(qa_names),
            height,
            width,
            "float32",
            subtile.transform,
            subtile.crs,
            nodata=float("nan"),
            descriptions=[*names, *qa_names],
            tags=tags,
            blocksize=STACK_TILE_PX,
            threads=COG_THREADS,
        ) as dst,
    ):
        # Each scene raster is opened once for the whole subtile, in the reader thread its date is pinned to,
        # and read window by window; the next season's window is read while this one is composited.
        order = [(w, s) for w in windows for s in seasons_read if scenes[s]]
        with PinnedReaders(READ_THREADS, store.gdal_env()) as readers:
            reads = _Prefetch(store, scenes, tile, subtile, order, readers)
            for i, window in enumerate(windows, start=1):
                rs = slice(int(window.row_off), int(window.row_off + window.height))
                cs = slice(int(window.col_off), int(window.col_off + window.width))
                block = _stack_block(
                    scenes, window, seasons_read, seasons_needed, centres, period,
                    year_start, lut, gap_fill, guard, reads,
                )  # fmt: skip
                features = feat.compute_feature_stack(
                    block.season_refl, terrain[0][rs, cs], terrain[1][rs, cs], terrain[2][rs, cs], names
                )
                features = np.asarray(features, dtype=np.float32)
                dst.write(features, indexes=list(range(1, len(names) + 1)), window=window)
                if colour_idx is not None:
                    rgba[:, rs, cs] = to_rgba(features[colour_idx])
                qa = block.qa[[seasons_read.index(s) for s in seasons_needed]]
                if qa_names:
                    dst.write(qa, indexes=list(range(len(names) + 1, len(names) + len(qa_names) + 1)), window=window)
                qa_all[:, rs, cs] = qa
                del features, block
                log.info("stack %s: block %d/%d (rows %d-%d)", item_id, i, len(windows), rs.start, rs.stop)
        guard.enforce(item_id, scenes, max_out_of_range)
    quality = {s: quality_fractions(qa_all[j]) for j, s in enumerate(seasons_needed)}
    valid = {s: round(q["observed"], 4) for s, q in quality.items()}
    item = _stack_item(year, subtile, store, key, names, scenes, digest, valid)
    if colour_idx is not None:  # published before the item that names it (the item is the stack's publish mark)
        colour_key = true_colour_key(year, subtile)
        write_true_colour(store, colour_key, rgba, subtile.transform, subtile.crs, tags)
        item.add_asset(ASSET, true_colour_asset(store, colour_key))
    item.properties.update(guard.summary())
    item.properties.update(
        {"terracover:quality_bands": qa_names, "terracover:season_quality": quality, "terracover:gap_fill": gap_fill}
    )
    catalog.upsert_items([item])
    seconds = round(time.perf_counter() - t0, 3)
    log.info("stack %s: %d features written to %s in %.1fs (quality: %s)", item_id, len(names), key, seconds, quality)
    return StackResult(key, item_id, False, sum(map(len, scenes.values())), seconds, valid, quality)


def _add_true_colour(item: pystac.Item, year: int, subtile: Subtile, store: ObjectStore, catalog: Catalog) -> None:
    """Give a stack built before ``truecolour.tif`` existed its true colour (one full read of the stack), so
    re-running build_composites over an unchanged year upgrades its tiles without rebuilding a stack."""
    key = true_colour_key(year, subtile)
    tags = {"terracover:year": str(year), "terracover:tile": subtile.tile.name, "terracover:subtile": subtile.id}
    write_true_colour(store, key, from_stack(store, stack_key(year, subtile)), subtile.transform, subtile.crs, tags)
    item.add_asset(ASSET, true_colour_asset(store, key))
    catalog.upsert_items([item])
    log.info("stack %s: true colour added (%s)", item.id, key)


def _read_terrain(store: ObjectStore, catalog: Catalog, subtile: Subtile) -> np.ndarray:
    tile = subtile.tile.name
    if catalog.get_item(DEM_COLLECTION, f"{tile}-terrain") is None:
        raise LookupError(f"no terrain for tile {tile}: run ingest_dem first")
    with store.open_raster(terrain_key(tile)) as src:
        win = from_bounds(*subtile.bounds, transform=src.transform)
        data = src.read(
            list(range(1, len(TERRAIN_BANDS) + 1)),
            window=win,
            out_shape=(3, *subtile.shape),
            boundless=True,
            fill_value=np.nan,
            resampling=Resampling.nearest,
        )
    return np.asarray(data, dtype=np.float32)


def _stack_item(
    year: int,
    subtile: Subtile,
    store: ObjectStore,
    key: str,
    names: Sequence[str],
    scenes: dict[str, list[pystac.Item]],
    digest: str,
    valid: dict[str, float],
) -> pystac.Item:
    start, _ = feat.SEASONS[0].window(year)
    _, end = feat.SEASONS[-1].window(year)
    item = footprint_item(
        stack_item_id(year, subtile),
        subtile.footprint_wgs84,
        COMPOSITES_COLLECTION,
        {
            "start_datetime": f"{start.isoformat()}T00:00:00Z",
            "end_datetime": f"{end.isoformat()}T23:59:59Z",
            "terracover:year": year,
            "terracover:tile": subtile.tile.name,
            "terracover:subtile": subtile.id,
            "terracover:features": list(names),
            "terracover:inputs_sha256": digest,
            "terracover:scenes": {s: [i.id for i in items] for s, items in scenes.items()},
            "terracover:valid_fraction": valid,
            "proj:epsg": subtile.crs.to_epsg(),
            "proj:shape": list(subtile.shape),
            "proj:transform": list(subtile.transform)[:6],
        },
    )
    item.add_asset("features", cog_asset(store, key))
    return item
