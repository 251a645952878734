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
from functools import partial
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


class PgStacSearchCatalog:
    """The baseline: the same queries through pgSTAC's ``search()`` function (items formatted and hydrated in
    PL/pgSQL, every search recorded in ``pgstac.searches``), parsed by pystac with its default migration; the
    way :class:`terracover.catalog.PgStacCatalog` searched before it hydrated rows itself."""

    def __init__(self, cat: Any):
        self.cat = cat

    def search(self, collections: list[str], ids: list[str] | None = None, datetime: str | None = None,
               properties: dict[str, Any] | None = None) -> list[Any]:  # fmt: skip
        import json

        import pystac

        body: dict[str, Any] = {"limit": 10_000, "conf": {"nohydrate": False, "context": "off"},
                                "sortby": [{"field": "datetime", "direction": "asc"}],
                                "collections": collections}  # fmt: skip
        if ids is not None:
            body["ids"] = ids
        if datetime is not None:
            body["datetime"] = datetime
        if properties:
            body["filter-lang"] = "cql2-json"
            args = [{"op": "=", "args": [{"property": k}, v]} for k, v in properties.items()]
            body["filter"] = {"op": "and", "args": args}
        with self.cat._db() as db:
            feats = json.loads(db.search(body))["features"]
        return [pystac.Item.from_dict(f, preserve_dict=False) for f in feats]

    def get_item(self, collection_id: str, item_id: str) -> Any:
        found = self.search([collection_id], ids=[item_id])
        return found[0] if found else None


def _percentiles(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {
        "p50_ms": 1000 * statistics.median(times),
        "p95_ms": 1000 * times[min(len(times) - 1, int(0.95 * len(times)))],
    }


def _alternating(fns: dict[str, Callable[[], Any]], n: int) -> dict[str, dict[str, float]]:
    """p50/p95 of each function over ``n`` calls, the functions taking turns (a shared machine's load then
    weighs on each alike)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(n):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: _percentiles(v) for k, v in times.items()}


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

        def season_scenes(c: Any) -> None:
            t, s = rng.choice(tiles), rng.choice(SEASONS)
            a, b = s.window(YEAR)
            found = c.search(collections=[SCENES_COLLECTION], properties={"terracover:tile": t.name},
                             datetime=f"{a}T00:00:00Z/{b}T23:59:59Z")  # fmt: skip
            assert 5 <= len(found) <= 25, len(found)

        def one_stack(c: Any) -> None:
            st = rng.choice(subtiles)
            assert c.get_item(COMPOSITES_COLLECTION, stack_item_id(YEAR, st)) is not None

        def pending(c: Any) -> None:
            t = rng.choice(tiles)
            ids = [i["id"] for i in scenes if i["properties"]["terracover:tile"] == t.name]
            assert len(c.search(collections=[SCENES_COLLECTION], ids=ids)) == len(ids)

        def aoi_stacks(c: Any) -> None:
            st = rng.choice(subtiles)
            centre = st.owned_wgs84.centroid
            aoi = box(centre.x - 0.05, centre.y - 0.045, centre.x + 0.05, centre.y + 0.045)  # ~10 km square
            ids = [stack_item_id(YEAR, s) for s in grid.subtiles_for_geometry(aoi, 1098)]
            c.search(collections=[COMPOSITES_COLLECTION], ids=ids)

        baseline = PgStacSearchCatalog(cat)
        out["queries"] = {}
        for name, query in (
            ("scenes of a tile and season (build_stack)", season_scenes),
            ("one stack by id (build_stack skip check)", one_stack),
            ("a tile-year's scene ids (ingest pending)", pending),
            ("stacks under a 10 km AOI (POST /predict)", aoi_stacks),
        ):
            out["queries"][name] = _alternating(
                {"catalog": partial(query, cat), "pgstac_search": partial(query, baseline)}, queries
            )
    return out


def format_table(r: dict[str, Any]) -> str:
    lines = [f"pgSTAC at Iberia size: {r['scene_items']:,} scene items ({r['tiles']} tiles) + {r['stack_items']:,} "
             f"composite items, real MGRS footprints, SYNTHETIC content; loaded through pypgstac in "
             f"{r['load_s']:.0f} s. PgStacCatalog (pgSTAC's WHERE translation, rows hydrated in Python) against the "
             "baseline pgSTAC search() (items formatted in PL/pgSQL), alternating, same database",
             "| query | p50 ms | p95 ms | search() p50 ms | search() p95 ms | x baseline (p50) |",
             "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for k, v in r["queries"].items():
        c, b = v["catalog"], v["pgstac_search"]
        lines.append(f"| {k} | {c['p50_ms']:.1f} | {c['p95_ms']:.1f} | {b['p50_ms']:.1f} | {b['p95_ms']:.1f} |"
                     f" {b['p50_ms'] / c['p50_ms']:.1f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--queries", type=int, default=40)
    print(format_table(run(p.parse_args().queries)))


if __name__ == "__main__":
    main()
