"""One suite, two backends: the embedded SQLite catalog and pgSTAC (through pypgstac) on a real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pystac
import pytest
from terracover.catalog import Catalog, EmbeddedCatalog, PgStacCatalog, collection

pytestmark = pytest.mark.services


@pytest.fixture(params=["embedded", "pgstac"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Catalog:
    if request.param == "pgstac":
        return PgStacCatalog(request.getfixturevalue("pgstac_dsn"))
    return EmbeddedCatalog(tmp_path / "catalog")


@pytest.fixture
def cid(catalog: Catalog) -> str:
    """A fresh collection per test, so tests sharing the pgSTAC database stay independent."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    catalog.add_collection(collection(name, "test items"))
    return name


def make_item(cid: str, item_id: str, lon: float, lat: float, day: int, **props: object) -> pystac.Item:
    geom = {
        "type": "Polygon",
        "coordinates": [[[lon, lat], [lon + 0.1, lat], [lon + 0.1, lat + 0.1], [lon, lat + 0.1], [lon, lat]]],
    }
    return pystac.Item(
        id=item_id,
        geometry=geom,
        bbox=[lon, lat, lon + 0.1, lat + 0.1],
        datetime=datetime(2023, 1, day, 10, tzinfo=UTC),
        properties=dict(props),
        collection=cid,
    )


def test_collections_upsert(catalog: Catalog, cid: str) -> None:
    catalog.add_collection(collection(cid, "described again"))
    assert catalog.collections().count(cid) == 1


def test_upsert_is_idempotent_and_updates(catalog: Catalog, cid: str) -> None:
    assert catalog.upsert_items([make_item(cid, "a", 0, 40, 1, v=1)]) == 1
    catalog.upsert_items([make_item(cid, "a", 0, 40, 1, v=2)])
    found = catalog.search(collections=[cid])
    assert [i.id for i in found] == ["a"]
    assert found[0].properties["v"] == 2


def test_search_filters(catalog: Catalog, cid: str) -> None:
    catalog.upsert_items(
        [
            make_item(cid, "west", -1.0, 40, 3, tile="30SYK", year=2023),
            make_item(cid, "east", 1.0, 40, 1, tile="31SBE", year=2023),
            make_item(cid, "late", 1.0, 40, 20, tile="31SBE", year=2024),
        ]
    )
    assert [i.id for i in catalog.search(collections=[cid])] == ["east", "west", "late"]
    assert [i.id for i in catalog.search(collections=[cid], bbox=(0.9, 39.9, 1.2, 40.2))] == ["east", "late"]
    assert catalog.search(collections=[cid], bbox=(5.0, 39.9, 6.0, 40.2)) == []
    assert [i.id for i in catalog.search(collections=[cid], datetime="2023-01-02T00:00:00Z/2023-01-10T00:00:00Z")] == [
        "west"
    ]
    assert [i.id for i in catalog.search(collections=[cid], datetime="2023-01-10T00:00:00Z/..")] == ["late"]
    assert [i.id for i in catalog.search(collections=[cid], datetime="2023-01-01T10:00:00Z")] == ["east"]
    assert [i.id for i in catalog.search(collections=[cid], ids=["late", "west"])] == ["west", "late"]
    assert [i.id for i in catalog.search(collections=[cid], properties={"tile": "31SBE"})] == ["east", "late"]
    assert [i.id for i in catalog.search(collections=[cid], properties={"tile": "31SBE", "year": 2024})] == ["late"]
    assert len(catalog.search(collections=[cid], limit=2)) == 2


def test_interval_items_match_by_overlap(catalog: Catalog, cid: str) -> None:
    item = make_item(cid, "year", 0, 40, 1)
    item.datetime = None
    item.properties.update({"start_datetime": "2022-12-01T00:00:00Z", "end_datetime": "2023-11-30T23:59:59Z"})
    catalog.upsert_items([item])
    assert [i.id for i in catalog.search(collections=[cid], datetime="2023-06-01T00:00:00Z")] == ["year"]
    assert catalog.search(collections=[cid], datetime="2024-06-01T00:00:00Z") == []


def test_get_and_delete(catalog: Catalog, cid: str) -> None:
    catalog.upsert_items([make_item(cid, "x", 0, 40, 1)])
    got = catalog.get_item(cid, "x")
    assert got is not None and got.collection_id == cid
    catalog.delete_item(cid, "x")
    assert catalog.get_item(cid, "x") is None


def test_summarise_aggregates_per_year_and_tile_in_the_database(catalog: Catalog, cid: str) -> None:
    """What the control room shows per year (stack count, mean valid fraction, map version) comes from one
    aggregate, equal to what summing the searched items gives."""
    vf, mv = "terracover:valid_fraction", "terracover:model_version"

    def tile_year(year: int, tile: str, **props: object) -> dict[str, object]:
        return {"terracover:year": year, "terracover:tile": tile, **props}

    catalog.upsert_items(
        [
            make_item(cid, "a", 0, 40, 1, **tile_year(2023, "30SYJ", **{vf: {"spring": 0.5, "summer": 1.0}})),
            make_item(cid, "b", 0, 40, 2, **tile_year(2023, "30SYJ", **{vf: {"spring": 0.25}})),
            make_item(cid, "c", 0, 40, 3, **tile_year(2023, "31SBD", **{vf: {}})),
            make_item(cid, "d", 0, 40, 4, **tile_year(2024, "30SYJ", **{mv: "3"})),
            make_item(cid, "e", 0, 40, 5, **tile_year(2024, "30SYJ", **{mv: "12"})),
            make_item(cid, "f", 0, 40, 6, other=1),  # no year: not counted
        ]
    )
    rows = catalog.summarise(cid)
    assert [(r.year, r.tile, r.items) for r in rows] == [(2023, "30SYJ", 2), (2023, "31SBD", 1), (2024, "30SYJ", 2)]
    assert rows[0].valid_fraction_sum == pytest.approx(1.75) and rows[0].valid_fraction_values == 3
    assert rows[1].valid_fraction_values == 0 and rows[1].model_versions == ()
    assert rows[2].model_versions == ("12", "3")
    assert [(r.year, r.items) for r in catalog.summarise(cid, year=2024)] == [(2024, 2)]
    assert catalog.summarise(cid, year=2022) == []


def test_unknown_collection_is_a_clear_error(catalog: Catalog) -> None:
    with pytest.raises(KeyError, match="add_collection"):
        catalog.upsert_items([make_item("nope-never-added", "x", 0, 40, 1)])


def test_pystac_client_finds_pypgstac_items_through_stac_fastapi(pgstac_dsn: str, stac_api_url: str) -> None:
    from pystac_client import Client

    cat = PgStacCatalog(pgstac_dsn)
    cid = f"api-{uuid.uuid4().hex[:8]}"
    cat.add_collection(collection(cid, "served by stac-fastapi-pgstac"))
    cat.upsert_items([make_item(cid, f"s{i}", 0.1 * i, 40, 1 + i) for i in range(5)])
    search = Client.open(stac_api_url).search(
        collections=[cid], bbox=[0.0, 40.0, 0.25, 40.2], datetime="2023-01-01/2023-01-03"
    )
    assert sorted(i.id for i in search.items()) == ["s0", "s1", "s2"]


def test_pgstac_search_returns_the_items_pgstacs_own_search_hydrates(pgstac_dsn: str) -> None:
    """PgStacCatalog hydrates pgSTAC's stored rows itself (the per-item PL/pgSQL formatting of ``search()`` cost
    ~2 ms an item): every item must equal what pgSTAC's ``search()`` returns, including the parts pgSTAC strips
    into the collection's base item (``item_assets``) and restores on the way out."""
    import json

    from pypgstac.db import PgstacDB

    cat = PgStacCatalog(pgstac_dsn)
    cid = f"hydrate-{uuid.uuid4().hex[:8]}"
    coll = collection(cid, "a base item to hydrate from").to_dict(include_self_link=False)
    coll["item_assets"] = {"B04": {"type": "image/tiff", "roles": ["data"], "title": "red"}}
    cat.add_collection(coll)
    items = [make_item(cid, f"h{i}", 0.1 * i, 40, 1 + i, tile="30TYK", n=i) for i in range(4)]
    for i, item in enumerate(items):
        item.add_asset("B04", pystac.Asset(href=f"s3://b/h{i}/B04.tif", media_type="image/tiff", roles=["data"],
                                           title="red"))  # fmt: skip
    cat.upsert_items(items)
    with PgstacDB(dsn=pgstac_dsn) as db:
        stored = db.query_one("SELECT content->'assets'->'B04' FROM pgstac.items WHERE collection = %s LIMIT 1", (cid,))
        assert stored is not None and "title" not in stored, stored  # dehydrated: the title lives in the base item
        body = {"collections": [cid], "limit": 100, "filter-lang": "cql2-json",
                "filter": {"op": "=", "args": [{"property": "tile"}, "30TYK"]}}  # fmt: skip
        reference = {f["id"]: f for f in json.loads(db.search(body))["features"]}
    found = cat.search(collections=[cid], properties={"tile": "30TYK"})
    assert [i.id for i in found] == ["h0", "h1", "h2", "h3"]
    for item in found:
        got = item.to_dict(include_self_link=False)
        want = reference[item.id]
        assert got["assets"]["B04"] == want["assets"]["B04"]
        assert got["assets"]["B04"]["title"] == "red"  # restored from the collection's base item
        assert got["geometry"] == want["geometry"]
        assert got["properties"] == want["properties"]
        assert got["bbox"] == want["bbox"]
