"""ingest_scenes against a local stand-in for Earth Search: stac-fastapi-pgstac serves the real 29RKH item
(from ../shared/data) whose assets are COGs on a local S3 API; the real pystac-client source searches it, the DAG
copies the region's bands into the store and catalogs the scene; a second run does nothing new."""

from __future__ import annotations

import json
from pathlib import Path

import pystac
import pytest
import rasterio
from terracover.simulate import simulate_dem

from tests.fixtures.airflow import AirflowEnv

pytestmark = [pytest.mark.airflow, pytest.mark.services, pytest.mark.realdata]

ITEM_DIR = "rio_tiler_pds_s2l2a_29RKH/S2A_29RKH_20200219_0_L2A"
PREFIX = "sentinel-s2-l2a-cogs/29/R/KH/2020/2/S2A_29RKH_20200219_0_L2A"
REGION = "[-11.60, 24.70, -11.50, 24.78]"  # ~10 km inside 29RKH (Western Sahara / Mauritania border)


@pytest.fixture
def earth_search_standin(shared_data: Path, s3_server: str, pgstac_dsn: str, stac_api_url: str) -> str:
    """Uploads the tile's COGs to a ``sentinel-cogs`` bucket and loads its item, hrefs rewritten to that bucket."""
    import boto3
    from terracover.catalog import PgStacCatalog

    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    buckets = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if "sentinel-cogs" not in buckets:
        s3.create_bucket(Bucket="sentinel-cogs")
    folder = shared_data / ITEM_DIR
    for tif in folder.glob("*.tif"):
        # Public like the real bucket: GDAL reads the https hrefs anonymously with ranged GETs.
        s3.upload_file(str(tif), "sentinel-cogs", f"{PREFIX}/{tif.name}", ExtraArgs={"ACL": "public-read"})
    item = json.loads((folder / "S2A_29RKH_20200219_0_L2A.json").read_text())
    for asset in item["assets"].values():
        asset["href"] = asset["href"].replace(
            "https://sentinel-cogs.s3.us-west-2.amazonaws.com", f"{s3_server}/sentinel-cogs"
        )
    item["links"] = []
    catalog = PgStacCatalog(pgstac_dsn)
    if "sentinel-2-l2a" not in catalog.collections():
        extent = pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]), pystac.TemporalExtent([[None, None]]))
        catalog.add_collection(pystac.Collection("sentinel-2-l2a", "Sentinel-2 L2A (test stand-in)", extent))
    catalog.upsert_items([item])
    return stac_api_url


def test_ingest_scenes_from_a_stac_api_and_s3(
    airflow: AirflowEnv, earth_search_standin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "TERRACOVER_HOME": str(tmp_path / "home"),
        "TERRACOVER_SCENE_SOURCE": "stac",
        "TERRACOVER_STAC_API_URL": earth_search_standin,
        "TERRACOVER_REGION_BBOX": REGION,
        "TERRACOVER_TILES": '["29RKH"]',
        "TERRACOVER_SUBTILE_SIZE": "366",
        "TERRACOVER_SCENE_ACCESS": "copy",  # reading in place (the default for STAC) is tested in test_read_in_place
    }
    # ingest_scenes also builds missing terrain; the DEM here is the simulator's (the default DEM source)
    archive = tmp_path / "home" / "archive"
    (archive / "items").mkdir(parents=True)
    dem = simulate_dem(tuple(json.loads(REGION)), archive)
    pystac.ItemCollection([dem]).save_object(str(archive / "items" / "dem.json"))
    first = airflow.dags_test("ingest_scenes", conf={"year": 2020}, extra_env=env)
    log = first.stdout + first.stderr
    assert "1 items in window" in log, log[-3000:]  # the pystac-client search against the stand-in
    store = tmp_path / "home" / "store" / "scenes" / "29RKH" / "2020-02-19"
    written = {p.name: p.stat().st_mtime_ns for p in store.glob("*.tif")}
    assert {"B02.tif", "B8A.tif", "B01.tif", "SCL.tif"} <= set(written), sorted(written)
    with rasterio.open(store / "B02.tif") as b02, rasterio.open(store / "SCL.tif") as scl:
        assert b02.crs.to_epsg() == 32629 and scl.crs.to_epsg() == 32629
        # Each band lands on the tile's lattice at its nominal resolution (this fixture is the real tile
        # downsampled 10x, so its 100 m pixels are resampled back onto the 10 m / 20 m grids).
        assert b02.res == (10.0, 10.0) and scl.res == (20.0, 20.0)
        assert b02.read(1).any() and set(scl.read(1).ravel().tolist()) <= set(range(12))

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from terracover.catalog import SCENES_COLLECTION, open_catalog
    from terracover.settings import get_settings

    get_settings.cache_clear()
    items = open_catalog(get_settings()).search(collections=[SCENES_COLLECTION])
    assert [i.id for i in items] == ["S2A_29RKH_20200219_0_L2A"]
    assert items[0].properties["terracover:tile"] == "29RKH"

    second = airflow.dags_test("ingest_scenes", conf={"year": 2020}, extra_env=env)
    assert {p.name: p.stat().st_mtime_ns for p in store.glob("*.tif")} == written, "a re-run must not rewrite"
    assert len(open_catalog(get_settings()).search(collections=[SCENES_COLLECTION])) == 1
    assert "0 not yet ingested" in second.stdout + second.stderr
    get_settings.cache_clear()
