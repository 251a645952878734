"""Batched fan-out: how a region's work is cut into Airflow tasks, and how one task runs its batch in parallel.

A continent is ~35,000 subtiles and ~40,000 scenes a year, but Airflow expands at most ``[core] max_map_length``
items (1,024 by default) per mapped task, and a pod per subtile pays start-up and imports for seconds of work.
So the DAGs map one task per tile (or per batch of a tile's subtiles) and per tile-year for ingestion, and the
task runs its subtiles or scenes in a thread pool sized to the pod's CPUs (the compositing kernel, GDAL reads
and COG writes all release the GIL). Plans carry only ``(year, tile, batch)``: each task derives its own
subtiles from the region, so XCom never holds more than one small dict per task.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from shapely.geometry import box

from terracover import grid

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_MAX_MAP_LENGTH = 1024  # Airflow's [core] max_map_length default


def available_cpus() -> int:
    """CPUs this process may use: the cgroup CPU quota of its pod if set, else its CPU affinity."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def worker_count(setting: int, jobs: int) -> int:
    """Threads for ``jobs`` units of work: the setting (0 = the pod's CPUs), never more than the jobs."""
    return max(1, min(setting or available_cpus(), jobs))


def run_parallel(fn: Callable[[T], R], jobs: Sequence[T], workers: int) -> list[R]:
    """``[fn(j) for j in jobs]`` on ``workers`` threads, results in job order; the first failure propagates.

    Each thread gets an equal share of the numba threads, so a batch does not oversubscribe the pod's CPUs.
    """
    if workers <= 1 or len(jobs) <= 1:
        return [fn(j) for j in jobs]
    share = max(1, available_cpus() // workers)

    def run(job: T) -> R:
        import numba

        numba.set_num_threads(min(share, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
        return fn(job)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="terracover-batch") as pool:
        return list(pool.map(run, jobs))


def region_tiles(region_bbox: tuple[float, float, float, float], tiles: Iterable[str] = ()) -> list[str]:
    """The tiles to keep: ``tiles`` if given, else every tile owning part of the region (cheap: no subtiles)."""
    chosen = [grid.tile(t).name for t in tiles]
    return sorted(chosen) if chosen else [t.name for t in grid.tiles_for_geometry(box(*region_bbox))]


def _check_length(n: int, max_items: int, what: str) -> None:
    if n > max_items:
        raise ValueError(
            f"{what}: {n} mapped tasks exceed Airflow's [core] max_map_length ({max_items}); run fewer years per"
            " DAG run, split the region, or raise max_map_length"
        )


def plan_ingest(
    years: Sequence[int], tiles: Sequence[str], max_items: int = DEFAULT_MAX_MAP_LENGTH
) -> list[dict[str, Any]]:
    """One ingestion task per tile-year; the task searches and ingests that tile's scenes itself."""
    plan = [{"year": int(y), "tile": t} for y in years for t in tiles]
    _check_length(len(plan), max_items, "ingest_scenes")
    return plan


def batches_per_tile(subtile_size: int, batch_subtiles: int, tiles: int, years: int, max_items: int) -> int:
    """Batches each tile's subtile grid is cut into: as asked, but fewer when the expansion would exceed
    ``max_items`` (bigger batches then; the work is the same, only the task count changes)."""
    per_tile = (grid.TILE_PX // subtile_size) ** 2
    asked = 1 if batch_subtiles <= 0 else math.ceil(per_tile / batch_subtiles)
    fit = max(1, max_items // max(1, tiles * years))
    if asked > fit:
        log.warning("%d batches per tile would exceed max_map_length %d: using %d", asked, max_items, fit)
    return min(asked, fit)


def plan_composites(
    years: Sequence[int],
    tiles: Sequence[str],
    subtile_size: int,
    batch_subtiles: int = 0,
    max_items: int = DEFAULT_MAX_MAP_LENGTH,
) -> list[dict[str, Any]]:
    """One compositing task per (year, tile, batch). ``batch_subtiles`` = 0 means one task per tile-year."""
    n = batches_per_tile(subtile_size, batch_subtiles, len(tiles), len(years), max_items)
    plan = [{"year": int(y), "tile": t, "batch": b, "batches": n} for y in years for t in tiles for b in range(n)]
    _check_length(len(plan), max_items, "build_composites")
    return plan


def batch_subtiles(
    tile: str, batch: int, batches: int, region_bbox: tuple[float, float, float, float], subtile_size: int
) -> list[grid.Subtile]:
    """The region's subtiles of ``tile`` in batch ``batch`` of ``batches``: the tile's full subtile grid, in
    row-major order, cut into equal runs (a batch outside the region is empty and costs nothing)."""
    if not 0 <= batch < batches:
        raise ValueError(f"batch {batch} outside 0..{batches - 1}")
    t = grid.tile(tile)
    per_side = grid.TILE_PX // subtile_size
    run = math.ceil(per_side * per_side / batches)
    lo, hi = batch * run, (batch + 1) * run
    part = box(*region_bbox).intersection(t.owned_wgs84)
    if part.is_empty:
        return []
    return [
        st
        for st in grid.subtiles_for_geometry(part, subtile_size)
        if st.tile.name == t.name and lo <= st.row * per_side + st.col < hi
    ]
