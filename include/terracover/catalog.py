"""The STAC catalog of scenes, terrain, composites, models and predictions, behind one small interface.

Two backends pass the same test suite: :class:`PgStacCatalog` (production: pgSTAC through pypgstac, which
stac-fastapi-pgstac then serves to any STAC client) and :class:`EmbeddedCatalog` (default: one SQLite file,
safe for several local Airflow tasks writing at once).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pystac
from shapely.geometry import mapping

from terracover.settings import Settings

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

    from terracover.store import ObjectStore

SCENES_COLLECTION = "terracover-scenes"
DEM_COLLECTION = "terracover-dem"
COMPOSITES_COLLECTION = "terracover-composites"
MODELS_COLLECTION = "terracover-models"
PREDICTIONS_COLLECTION = "terracover-predictions"
MAPS_COLLECTION = "terracover-maps"
ALL_COLLECTIONS: dict[str, str] = {
    SCENES_COLLECTION: "Sentinel-2 L2A bands ingested for the region, clipped, as COGs",
    DEM_COLLECTION: "Elevation, slope and aspect on each tile's 10 m grid",
    COMPOSITES_COLLECTION: "Per-subtile yearly feature stacks: seasonal medians, indices, terrain",
    MODELS_COLLECTION: "Land-cover models (STAC MLM extension), one registered model per year",
    PREDICTIONS_COLLECTION: "Classified maps answered by the prediction service, with provenance",
    MAPS_COLLECTION: "Each year's wall-to-wall map by its champion: per subtile a class COG and a quality COG",
}


def collection(
    cid: str, description: str, extent_bbox: tuple[float, float, float, float] = (-180.0, -90.0, 180.0, 90.0)
) -> pystac.Collection:
    """A minimal valid collection for one of terracover's kinds of item."""
    extent = pystac.Extent(
        pystac.SpatialExtent([list(extent_bbox)]), pystac.TemporalExtent([[datetime(2015, 6, 23, tzinfo=UTC), None]])
    )
    return pystac.Collection(id=cid, description=description, extent=extent, license="other")


def cog_asset(
    store: ObjectStore, key: str, title: str | None = None, extra: Mapping[str, Any] | None = None
) -> pystac.Asset:
    """A COG the store holds as a data asset: ``href`` its URI, ``terracover:key`` its store key (CONTRACTS.md)."""
    return pystac.Asset(
        href=store.uri(key),
        media_type=pystac.MediaType.COG,
        roles=["data"],
        title=title,
        extra_fields={"terracover:key": key, **(extra or {})},
    )


def footprint_item(
    item_id: str,
    footprint: BaseGeometry,
    collection_id: str,
    properties: dict[str, Any],
    when: datetime | None = None,
) -> pystac.Item:
    """An item whose geometry and bbox are ``footprint`` (WGS84, e.g. ``grid.Subtile.footprint_wgs84``);
    without ``when`` the properties must hold ``start_datetime``/``end_datetime``."""
    return pystac.Item(
        id=item_id,
        geometry=mapping(footprint),
        bbox=list(footprint.bounds),
        datetime=when,
        properties=properties,
        collection=collection_id,
    )


def publish_item(catalog: Catalog, item: pystac.Item, description: str) -> dict[str, Any]:
    """Upsert ``item``, creating its collection (with ``description``) on first use; returns the item's JSON."""
    if item.collection_id not in catalog.collections():
        catalog.add_collection(collection(str(item.collection_id), description))
    catalog.upsert_items([item])
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def _as_item(item: pystac.Item | Mapping[str, Any]) -> dict[str, Any]:
    d = item.to_dict(include_self_link=False) if isinstance(item, pystac.Item) else dict(item)
    if not d.get("collection"):
        raise ValueError(f"item {d.get('id')!r} names no collection: set item.collection_id")
    d["links"] = [lk for lk in d.get("links", []) if lk.get("rel") not in ("self", "root", "parent", "collection")]
    return d


def _interval(item: Mapping[str, Any]) -> tuple[str, str]:
    """(start, end) ISO instants of an item: its datetime, or start/end_datetime."""
    p = item["properties"]
    dt = p.get("datetime")
    start = p.get("start_datetime") or dt
    end = p.get("end_datetime") or dt
    if not start or not end:
        raise ValueError(f"item {item.get('id')!r} has neither datetime nor start/end_datetime")
    return _norm(start), _norm(end)


def _norm(instant: str) -> str:
    """A comparable UTC ISO string (``2023-01-01T00:00:00Z`` and ``...+00:00`` sort alike)."""
    return datetime.fromisoformat(instant.replace("Z", "+00:00")).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_range(value: str) -> tuple[str | None, str | None]:
    if "/" in value:
        a, b = value.split("/", 1)
        return (None if a in ("", "..") else _norm(a)), (None if b in ("", "..") else _norm(b))
    v = _norm(value)
    return v, v


@dataclass(frozen=True)
class TileYearSummary:
    """One collection's items of one tile and year, counted where they are stored (a continent's 10,000s of
    composite items never cross the wire for an overview)."""

    year: int
    tile: str | None
    items: int
    valid_fraction_sum: float  # over every item's ``terracover:valid_fraction`` values (one per season)
    valid_fraction_values: int
    model_versions: tuple[str, ...]  # distinct ``terracover:model_version`` values, sorted


class Catalog(ABC):
    """Collections and items, upserted idempotently and searched by collection, box, time and properties."""

    @abstractmethod
    def add_collection(self, coll: pystac.Collection | Mapping[str, Any]) -> None: ...

    @abstractmethod
    def collections(self) -> list[str]: ...

    @abstractmethod
    def upsert_items(self, items: Iterable[pystac.Item | Mapping[str, Any]]) -> int:
        """Insert or replace by (collection, id); returns how many were written."""

    @abstractmethod
    def search(
        self,
        collections: Sequence[str] | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        datetime: str | None = None,
        ids: Sequence[str] | None = None,
        properties: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> list[pystac.Item]:
        """Items matching every given filter, sorted by datetime then id.

        ``datetime`` is an RFC 3339 instant or ``start/end`` interval (``..`` for an open end); an item matches
        when its time (or start/end interval) intersects it. ``properties`` are equality filters.
        """

    @abstractmethod
    def delete_item(self, collection_id: str, item_id: str) -> None: ...

    @abstractmethod
    def summarise(self, collection_id: str, year: int | None = None) -> list[TileYearSummary]:
        """Per ``terracover:year`` and ``terracover:tile`` of ``collection_id`` (only ``year`` if given): the
        item count, the valid fractions' sum and count, the distinct model versions; aggregated by the
        database, sorted by year then tile. Items without a year are not counted."""

    def get_item(self, collection_id: str, item_id: str) -> pystac.Item | None:
        found = self.search(collections=[collection_id], ids=[item_id], limit=1)
        return found[0] if found else None


class EmbeddedCatalog(Catalog):
    """One SQLite file (WAL mode) under ``path``: zero set-up, concurrent-writer safe on one machine."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.db = self.path / "catalog.sqlite"
        with closing(self._connect()) as con, con:
            con.executescript("""
                CREATE TABLE IF NOT EXISTS collections (id TEXT PRIMARY KEY, body TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS items (
                    collection TEXT NOT NULL REFERENCES collections(id), id TEXT NOT NULL,
                    start TEXT NOT NULL, "end" TEXT NOT NULL,
                    minx REAL, miny REAL, maxx REAL, maxy REAL, body TEXT NOT NULL,
                    PRIMARY KEY (collection, id));
                CREATE INDEX IF NOT EXISTS items_time ON items (collection, start);
            """)
        # Held open, never used: SQLite checkpoints the WAL into the database and deletes it whenever the last
        # connection closes, so with one connection per call every write paid a checkpoint (an fsync of the
        # database: 16-19 ms per upsert instead of 5 ms, measured at load 9). With this one open, the WAL is
        # checkpointed as it fills (every 1000 pages). A statement makes it attach to the WAL (connect is lazy).
        self._keeper = sqlite3.connect(self.db, timeout=60, check_same_thread=False)
        self._keeper.execute("PRAGMA journal_mode=WAL")

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.db, timeout=60)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA foreign_keys=ON")
        return con

    def add_collection(self, coll: pystac.Collection | Mapping[str, Any]) -> None:
        body = coll.to_dict(include_self_link=False) if isinstance(coll, pystac.Collection) else dict(coll)
        with closing(self._connect()) as con, con:
            con.execute(
                "INSERT INTO collections VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET body=excluded.body",
                (body["id"], json.dumps(body)),
            )

    def collections(self) -> list[str]:
        with closing(self._connect()) as con:
            return [r[0] for r in con.execute("SELECT id FROM collections ORDER BY id")]

    def upsert_items(self, items: Iterable[pystac.Item | Mapping[str, Any]]) -> int:
        rows = []
        for item in items:
            d = _as_item(item)
            start, end = _interval(d)
            bbox = d.get("bbox") or [None] * 4
            rows.append((d["collection"], d["id"], start, end, *bbox[:2], *bbox[-2:], json.dumps(d)))
        known = set(self.collections())
        unknown = sorted({r[0] for r in rows} - known)
        if unknown:
            raise KeyError(f"unknown collection(s) {unknown}: add_collection() first (known: {sorted(known)})")
        with closing(self._connect()) as con, con:
            con.executemany(
                "INSERT INTO items VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(collection, id) DO UPDATE SET "
                'start=excluded.start, "end"=excluded."end", minx=excluded.minx, miny=excluded.miny, '
                "maxx=excluded.maxx, maxy=excluded.maxy, body=excluded.body",
                rows,
            )
        return len(rows)

    def search(
        self,
        collections: Sequence[str] | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        datetime: str | None = None,
        ids: Sequence[str] | None = None,
        properties: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> list[pystac.Item]:
        where: list[str] = []
        args: list[Any] = []
        if collections is not None:
            where.append(f"collection IN ({','.join('?' * len(collections))})")
            args += list(collections)
        if ids is not None:
            where.append(f"id IN ({','.join('?' * len(ids))})")
            args += list(ids)
        if bbox is not None:
            where.append("maxx >= ? AND minx <= ? AND maxy >= ? AND miny <= ?")
            args += [bbox[0], bbox[2], bbox[1], bbox[3]]
        if datetime is not None:
            lo, hi = _parse_range(datetime)
            if hi is not None:
                where.append("start <= ?")
                args.append(hi)
            if lo is not None:
                where.append('"end" >= ?')
                args.append(lo)
        for key, value in (properties or {}).items():
            where.append("json_extract(body, ?) = ?")
            args += [f'$.properties."{key}"', value if not isinstance(value, bool) else int(value)]
        sql = "SELECT body FROM items" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY start, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with closing(self._connect()) as con:
            return [
                pystac.Item.from_dict(json.loads(r[0]), preserve_dict=False, migrate=False)
                for r in con.execute(sql, args)
            ]

    def delete_item(self, collection_id: str, item_id: str) -> None:
        with closing(self._connect()) as con, con:
            con.execute("DELETE FROM items WHERE collection=? AND id=?", (collection_id, item_id))

    def summarise(self, collection_id: str, year: int | None = None) -> list[TileYearSummary]:
        valid = "FROM json_each(body, '$.properties.\"terracover:valid_fraction\"') WHERE type IN ('integer', 'real')"
        sql = f"""
            SELECT y, t, count(*), total(vsum), total(vcount), json_group_array(DISTINCT v) FROM (
                SELECT json_extract(body, '$.properties."terracover:year"') AS y,
                       json_extract(body, '$.properties."terracover:tile"') AS t,
                       json_extract(body, '$.properties."terracover:model_version"') AS v,
                       (SELECT total(value) {valid}) AS vsum, (SELECT count(*) {valid}) AS vcount
                FROM items WHERE collection = ?)
            WHERE y IS NOT NULL {"AND y = ?" if year is not None else ""}
            GROUP BY y, t ORDER BY y, t"""
        args: list[Any] = [collection_id] + ([year] if year is not None else [])
        with closing(self._connect()) as con:
            rows = con.execute(sql, args).fetchall()
        return [_summary(y, t, n, vs, vc, json.loads(vers)) for y, t, n, vs, vc, vers in rows]


# Properties the pipeline filters on, indexed in pgSTAC (a queryable with an index type: pgSTAC builds a BTREE on
# every partition of the collection). Without it "the scenes of a tile and season" read every scene of the season
# from the heap to compare the tile in JSON (~1,900 rows at Iberia size for ~12 kept).
INDEXED_PROPERTIES: dict[str, tuple[tuple[str, dict[str, str], str], ...]] = {
    SCENES_COLLECTION: (("terracover:tile", {"type": "string"}, "to_text"),),
}


# Items matching a search. The WHERE clause is pgSTAC's own translation of the search body
# (``stac_search_to_where``: collections, ids, bbox, datetime intersection, CQL2 on queryables and their indexes);
# each item comes back with the base item it was dehydrated against (its ``pgstac:base_item`` tag, else the
# collection's first, as ``content_hydrate`` picks it) and is hydrated here. pgSTAC's ``search()`` formats and
# hydrates every item in PL/pgSQL (~1.5-3 ms an item on this 2-core host: 65 scene items ~130-200 ms against
# ~1 ms for the rows themselves, see docs/catalog-latency.md) and keeps usage statistics of every search in
# ``pgstac.searches``, a write per query; the pipeline reads whole result sets and needs neither paging nor links.
_ITEMS_SQL = """
    SELECT id, collection, ST_AsGeoJSON(geometry, 20)::jsonb, content, coalesce(
        pgstac.collection_base_item(collection, CASE WHEN content->>'pgstac:base_item' ~ '^\\s*\\d{{1,9}}\\s*$'
                                                THEN (content->>'pgstac:base_item')::int END),
        (SELECT c.base_item FROM pgstac.collections c WHERE c.id = items.collection))
    FROM pgstac.items WHERE {where} ORDER BY datetime, id LIMIT {limit}"""


def _hydrated(item_id: str, collection_id: str, geometry: Any, content: Any, base_item: Any) -> dict[str, Any]:
    """The full item from pgSTAC's stored (dehydrated) row, merged as pgSTAC's ``content_hydrate`` merges it."""
    from pypgstac.hydration import hydrate

    item = {"id": item_id, "geometry": geometry, "collection": collection_id, "type": "Feature"}
    item.update((k, v) for k, v in content.items() if k != "pgstac:base_item")
    return dict(hydrate(base_item or {}, item))


class PgStacCatalog(Catalog):
    """pgSTAC through pypgstac: loads with ``Loader`` (upsert); searches with pgSTAC's own query translation and
    hydrates the items in Python (``_ITEMS_SQL``)."""

    def __init__(self, dsn: str):
        self.dsn = dsn

    def _db(self) -> Any:
        """A PgstacDB on the process's connection pool for this DSN. A PgstacDB without a pool builds its own
        pool per use and never closes it: a continental run's thousands of queries then leak connections."""
        from pypgstac.db import PgstacDB

        return PgstacDB(dsn=self.dsn, pool=_pool(self.dsn))

    def add_collection(self, coll: pystac.Collection | Mapping[str, Any]) -> None:
        from pypgstac.load import Loader, Methods

        body = coll.to_dict(include_self_link=False) if isinstance(coll, pystac.Collection) else dict(coll)
        with self._db() as db:
            Loader(db).load_collections(iter([body]), insert_mode=Methods.upsert)
            for name, definition, wrapper in INDEXED_PROPERTIES.get(body["id"], ()):
                known = db.query_one(
                    "SELECT count(*) FROM pgstac.queryables WHERE name = %s AND %s = ANY(collection_ids)",
                    (name, body["id"]),
                )
                if not known:
                    db.query_one(
                        "SELECT pgstac.upsert_queryable(%s, %s::jsonb, %s, 'BTREE', ARRAY[%s])",
                        (name, json.dumps(definition), wrapper, body["id"]),
                    )

    def collections(self) -> list[str]:
        with self._db() as db:
            return sorted(r[0] for r in db.query("SELECT id FROM pgstac.collections"))

    def upsert_items(self, items: Iterable[pystac.Item | Mapping[str, Any]]) -> int:
        from pypgstac.load import Loader, Methods

        bodies = [_as_item(i) for i in items]
        if not bodies:
            return 0
        known = set(self.collections())
        unknown = sorted({b["collection"] for b in bodies} - known)
        if unknown:
            raise KeyError(f"unknown collection(s) {unknown}: add_collection() first (known: {sorted(known)})")
        for b in bodies:
            _interval(b)  # same validation as the embedded backend
        with self._db() as db:
            Loader(db).load_items(iter(bodies), insert_mode=Methods.upsert)
        return len(bodies)

    def search(
        self,
        collections: Sequence[str] | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        datetime: str | None = None,
        ids: Sequence[str] | None = None,
        properties: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> list[pystac.Item]:
        body: dict[str, Any] = {}
        if collections is not None:
            body["collections"] = list(collections)
        if ids is not None:
            body["ids"] = list(ids)
        if bbox is not None:
            body["bbox"] = list(bbox)
        if datetime is not None:
            lo, hi = _parse_range(datetime)
            body["datetime"] = f"{lo or '..'}/{hi or '..'}"
        if properties:
            body["filter-lang"] = "cql2-json"
            body["filter"] = {
                "op": "and",
                "args": [{"op": "=", "args": [{"property": k}, v]} for k, v in properties.items()],
            }
        with self._db() as db:
            where = db.query_one("SELECT pgstac.stac_search_to_where(%s::jsonb)", (json.dumps(body),))
            rows = list(db.query(_ITEMS_SQL.format(where=where, limit=int(limit or 2**31 - 1))))
        feats = sorted((_hydrated(*row) for row in rows if row is not None), key=lambda f: (_interval(f)[0], f["id"]))
        return [pystac.Item.from_dict(f, preserve_dict=False, migrate=False) for f in feats]

    def delete_item(self, collection_id: str, item_id: str) -> None:
        with self._db() as db:
            db.query_one("SELECT delete_item(%s, %s)", (item_id, collection_id))

    def summarise(self, collection_id: str, year: int | None = None) -> list[TileYearSummary]:
        """pgSTAC's search has no aggregation: one GROUP BY over the collection's partition of ``pgstac.items``
        (properties are stored as given in ``content``)."""
        sql = """
            SELECT p->>'terracover:year', p->>'terracover:tile', count(*), coalesce(sum(vf.s), 0),
                   coalesce(sum(vf.n), 0), array_remove(array_agg(DISTINCT p->>'terracover:model_version'), NULL)
            FROM (SELECT content->'properties' AS p FROM pgstac.items WHERE collection = %s) i
            LEFT JOIN LATERAL (
                SELECT sum(value::text::float8) AS s, count(*) AS n
                FROM jsonb_each(CASE WHEN jsonb_typeof(p->'terracover:valid_fraction') = 'object'
                                     THEN p->'terracover:valid_fraction' ELSE '{}'::jsonb END)
                WHERE jsonb_typeof(value) = 'number') vf ON true
            WHERE p ? 'terracover:year' AND (%s::text IS NULL OR p->>'terracover:year' = %s::text)
            GROUP BY 1, 2"""
        y = None if year is None else str(year)
        with self._db() as db:
            rows = list(db.query(sql, (collection_id, y, y)))
        return sorted(
            (_summary(yr, t, n, float(vs), int(vc), vers) for yr, t, n, vs, vc, vers in rows),
            key=lambda r: (r.year, r.tile or ""),
        )


def _summary(year: Any, tile: Any, items: int, vsum: float, vcount: float, versions: Sequence[Any]) -> TileYearSummary:
    found = sorted({str(v) for v in versions if v is not None})
    return TileYearSummary(int(year), None if tile is None else str(tile), int(items), vsum, int(vcount), tuple(found))


_POOLS: dict[str, Any] = {}
_POOLS_LOCK = threading.Lock()


def _serial_plans(conn: Any) -> None:
    """No parallel workers for the catalog's queries: they read tens to thousands of rows through an index in
    well under a millisecond, but on a fresh load (no planner statistics yet for the tile index) PostgreSQL
    picks a parallel plan, and launching its worker cost 20-36 ms on this 2-core host (docs/catalog-latency.md)."""
    conn.execute("SET max_parallel_workers_per_gather = 0")
    conn.commit()


def _pool(dsn: str) -> Any:
    """One psycopg connection pool per DSN and process, shared by every PgStacCatalog and thread."""
    from psycopg_pool import ConnectionPool

    with _POOLS_LOCK:
        if dsn not in _POOLS:
            _POOLS[dsn] = ConnectionPool(
                conninfo=dsn, min_size=1, max_size=8, max_idle=300, open=True, configure=_serial_plans
            )
        return _POOLS[dsn]


def open_catalog(settings: Settings) -> Catalog:
    """The catalog named by ``settings.catalog_uri``: a folder (embedded) or a PostgreSQL DSN (pgSTAC)."""
    if settings.catalog_is_pgstac:
        return PgStacCatalog(settings.catalog_uri)
    return EmbeddedCatalog(Path(settings.catalog_uri))
