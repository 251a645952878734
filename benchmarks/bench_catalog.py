"""The catalog at continental size: one year of the Iberian peninsula in pgSTAC, loaded through pypgstac.

~10,000 scene items (154 tiles x 65 dates, each with its tile's real MGRS footprint) and 9,919 composite items
(every 1098 px subtile of the box, real footprints), synthetic in content but shaped like the pipeline's own.
Then the queries the pipeline and the service make, timed with p50/p95 over random tiles, seasons and AOIs:
- ``build_stack``: the scenes of one tile and season (``stacks._season_scenes``), and one stack by id;
- ``ingest_scenes``: which of a tile-year's ~65 scene ids are catalogued (``ingest.pending_scenes``);
- ``POST /predict``: the stacks under a 10 km AOI by id (``predict.coverage``).

Run ``python -m benchmarks.bench_catalog [--queries 40]`` (needs PostgreSQL 15 + pgSTAC, as ``make setup``).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

IBERIA = (-9.3, 36.0, 3.3, 43.8)
YEAR = 2023
DATES_PER_TILE = 65


def _scene_items(tiles: list[Any]) -> list[dict[str, Any]]:
    from shapely.geometry import mapping
    from terracover.catalog import SCENES_COLLECTION

    start = datetime(YEAR - 1, 12, 1, 11, tzinfo=UTC)
    items = []
    for t in tiles:
        geom = t.footprint_wgs84
        for k in range(DATES_PER_TILE):
            when = start + timedelta(days=5 * k + hash(t.name) % 5)
            iid = f"S2{'AB'[k % 2]}_{t.name}_{when:%Y%m%d}_0_L2A"
            items.append({
                "type": "Feature", "stac_version": "1.0.0", "id": iid, "collection": SCENES_COLLECTION,
                "geometry": mapping(geom), "bbox": list(geom.bounds),
                "properties": {"datetime": when.isoformat().replace("+00:00", "Z"), "eo:cloud_cover": 20.0,
                               "s2:processing_baseline": "05.09", "terracover:tile": t.name,
                               "terracover:access": "in-place"},
                "assets": {b: {"href": f"https://sentinel-cogs.example/{t.name}/{when:%Y%m%d}/{b}.tif",
                               "type": "image/tiff; application=geotiff; profile=cloud-optimized"}
                           for b in ("B02", "B03", "B04", "B08", "B11", "B12", "SCL")},
                "links": [],
            })  # fmt: skip
    return items


def _stack_items(subtiles: list[Any]) -> list[dict[str, Any]]:
    from shapely.geometry import mapping
    from terracover.catalog import COMPOSITES_COLLECTION
    from terracover.stacks import stack_item_id

    items = []
    for st in subtiles:
        geom = st.footprint_wgs84
        items.append({
            "type": "Feature", "stac_version": "1.0.0", "id": stack_item_id(YEAR, st),
            "collection": COMPOSITES_COLLECTION,
            "geometry": mapping(geom), "bbox": list(geom.bounds),
            "properties": {"datetime": None, "start_datetime": f"{YEAR - 1}-12-01T00:00:00Z",
                           "end_datetime": f"{YEAR}-11-30T23:59:59Z", "terracover:year": YEAR,
                           "terracover:tile": st.tile.name, "terracover:subtile": st.id},
            "assets": {"features": {"href": f"s3://terracover/composites/{YEAR}/{st.key}/features.tif"}},
            "links": [],
        })  # fmt: skip
    return items


def _percentiles(fn: Callable[[], Any], n: int) -> dict[str, float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"p50_ms": 1000 * statistics.median(times), "p95_ms": 1000 * times[min(n - 1, int(0.95 * n))]}


def run(queries: int = 40) -> dict[str, Any]:
    from shapely.geometry import box
    from terracover import grid
    from terracover.catalog import ALL_COLLECTIONS, COMPOSITES_COLLECTION, SCENES_COLLECTION, PgStacCatalog, collection
    from terracover.features import SEASONS
    from terracover.stacks import stack_item_id

    from tests.fixtures.postgres import create_pgstac, postgres_cluster

    rng = random.Random(7)
    tiles = grid.tiles_for_geometry(box(*IBERIA))
    subtiles = grid.subtiles_for_geometry(box(*IBERIA), 1098)
    scenes, stacks = _scene_items(tiles), _stack_items(subtiles)
    out: dict[str, Any] = {"tiles": len(tiles), "scene_items": len(scenes), "stack_items": len(stacks)}
    with postgres_cluster() as dsn:
        cat = PgStacCatalog(create_pgstac(dsn))
        for cid, description in ALL_COLLECTIONS.items():
            cat.add_collection(collection(cid, description))
        t0 = time.perf_counter()
        for i in range(0, len(scenes), 2000):
            cat.upsert_items(scenes[i : i + 2000])
        for i in range(0, len(stacks), 2000):
            cat.upsert_items(stacks[i : i + 2000])
        out["load_s"] = time.perf_counter() - t0

        def season_scenes() -> None:
            t, s = rng.choice(tiles), rng.choice(SEASONS)
            a, b = s.window(YEAR)
            found = cat.search(collections=[SCENES_COLLECTION], properties={"terracover:tile": t.name},
                               datetime=f"{a}T00:00:00Z/{b}T23:59:59Z")  # fmt: skip
            assert 5 <= len(found) <= 25, len(found)

        def one_stack() -> None:
            st = rng.choice(subtiles)
            assert cat.get_item(COMPOSITES_COLLECTION, stack_item_id(YEAR, st)) is not None

        def pending() -> None:
            t = rng.choice(tiles)
            ids = [i["id"] for i in scenes if i["properties"]["terracover:tile"] == t.name]
            assert len(cat.search(collections=[SCENES_COLLECTION], ids=ids)) == len(ids)

        def aoi_stacks() -> None:
            st = rng.choice(subtiles)
            c = st.owned_wgs84.centroid
            aoi = box(c.x - 0.05, c.y - 0.045, c.x + 0.05, c.y + 0.045)  # ~10 km square
            ids = [stack_item_id(YEAR, s) for s in grid.subtiles_for_geometry(aoi, 1098)]
            cat.search(collections=[COMPOSITES_COLLECTION], ids=ids)

        out["queries"] = {
            "scenes of a tile and season (build_stack)": _percentiles(season_scenes, queries),
            "one stack by id (build_stack skip check)": _percentiles(one_stack, queries),
            "a tile-year's scene ids (ingest pending)": _percentiles(pending, queries),
            "stacks under a 10 km AOI (POST /predict)": _percentiles(aoi_stacks, queries),
        }
    return out


def format_table(r: dict[str, Any]) -> str:
    lines = [f"pgSTAC at Iberia size: {r['scene_items']:,} scene items ({r['tiles']} tiles) + {r['stack_items']:,} "
             f"composite items, real MGRS footprints, synthetic content; loaded through pypgstac in "
             f"{r['load_s']:.0f} s", "| query | p50 ms | p95 ms |", "|---|---:|---:|"]  # fmt: skip
    lines += [f"| {k} | {v['p50_ms']:.1f} | {v['p95_ms']:.1f} |" for k, v in r["queries"].items()]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--queries", type=int, default=40)
    print(format_table(run(p.parse_args().queries)))


if __name__ == "__main__":
    main()
