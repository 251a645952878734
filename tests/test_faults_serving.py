"""A serving worker killed in the middle of a request: the client gets an error (not a hang), the next request
is served, and no partial COG or orphan STAC item remains.

The real service (`bentoml serve`, one worker) on a one-year data plane in an S3 bucket (moto) reached through
the failing proxy, built by the data-plane steps as functions (the DAGs that call them are covered by
test_dataplane_dags). "Mid-request" is made certain, not timed: the proxy holds the worker's upload of the
prediction's COG, so the worker is observably inside /predict, past classification, writing its answer; then
it is SIGKILLed and the held upload is dropped (its sender is dead). The supervisor starts a new worker.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from shapely.geometry import box, mapping

from tests.fixtures.faults import FaultyProxy, faulty_proxy
from tests.fixtures.mlflow_server import running_mlflow
from tests.fixtures.procs import terracover_env, wait_until
from tests.fixtures.serving import settings_now, start_service, train_and_approve

pytestmark = [pytest.mark.services]

YEAR = 2021
REGION = (-0.022, 39.950, -0.010, 39.960)  # ~1 x 1.1 km inside tile 30SYK
WORKER = "_bentoml_impl.worker.service"  # what a BentoML service worker runs


def _build(year: int) -> None:
    """A simulated year with its labels, through the data-plane steps."""
    from terracover import pipeline
    from terracover.keys import label_key
    from terracover.simulate import SimulationConfig, simulate_archive
    from terracover.store import open_store

    s = settings_now()
    cfg = SimulationConfig(s.region_bbox, year, 2, s.random_seed, subtile_size=s.subtile_size)
    archive = simulate_archive(cfg, s.home / "archive")
    with open_store(s).writer(label_key(f"simulated-{year}"), suffix=".parquet") as path:
        archive.labels.to_parquet(path, index=False)
    for tile in pipeline.region_tiles(s):
        pipeline.ingest_tile_year(year, tile, s)
        pipeline.terrain_for_tile(tile, settings=s)
        assert pipeline.build_stack_batch(year, tile, settings=s)["built"] > 0


@pytest.fixture(scope="module")
def served(s3_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import boto3

    home = tmp_path_factory.mktemp("kill-home")
    bucket = f"tc-kill-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    (home / "tmp").mkdir()
    with running_mlflow(home / "mlflow") as mlflow_url, faulty_proxy(s3_server) as proxy:
        env = {
            "TERRACOVER_HOME": str(home),
            "TERRACOVER_REGION_BBOX": json.dumps(list(REGION)),
            "TERRACOVER_SUBTILE_SIZE": "183",
            "TERRACOVER_SCENE_SOURCE": "simulator",
            "TERRACOVER_DEM_SOURCE": "simulator",
            "TERRACOVER_STORE_URI": f"s3://{bucket}/data",
            "TERRACOVER_S3_ENDPOINT_URL": proxy.url,
            "TERRACOVER_MLFLOW_TRACKING_URI": mlflow_url,
            "TERRACOVER_MODEL_REFRESH_S": "3600",
            "TERRACOVER_SERVING_WORKERS": "1",
            "TERRACOVER_MIN_SAMPLES_PER_CLASS": "2",  # a 1 km region holds a few points of its rarer classes
            "TERRACOVER_GIT_SHA": "dead" * 10,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "BENTOML_DO_NOT_TRACK": "true",
            "TMPDIR": str(home / "tmp"),
        }
        with terracover_env(env):
            _build(YEAR)
            train_and_approve("rf_fast", seed=1, year=YEAR)
            with start_service(env, home / "bentoml-kill.log") as url:
                yield {"url": url, "proxy": proxy, "home": home, "bucket": bucket, "s3": s3_server}


def _workers(home: Path) -> list[psutil.Process]:
    """This service's worker processes (other services on the machine have another TERRACOVER_HOME)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if WORKER in " ".join(p.info["cmdline"] or []) and p.environ().get("TERRACOVER_HOME") == str(home):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _bucket(served: dict[str, Any]) -> list[str]:
    """Every key in the bucket, temporaries included, read from the S3 API directly (not through the proxy)."""
    import boto3

    client = boto3.client("s3", endpoint_url=served["s3"], region_name="us-east-1")
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=served["bucket"])
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _predictions() -> dict[str, Any]:
    from terracover.catalog import PREDICTIONS_COLLECTION, open_catalog

    catalog = open_catalog(settings_now())
    if PREDICTIONS_COLLECTION not in catalog.collections():
        return {}
    return {i.id: i for i in catalog.search(collections=[PREDICTIONS_COLLECTION])}


def test_a_worker_killed_mid_request_leaves_nothing_and_the_next_request_is_served(served: dict[str, Any]) -> None:
    url, home = served["url"], served["home"]
    proxy: FaultyProxy = served["proxy"]
    body = {"aoi": mapping(box(*REGION).buffer(-0.001)), "year": YEAR}
    (worker,) = _workers(home)
    keys, items = _bucket(served), _predictions()

    answer: dict[str, Any] = {}

    def ask() -> None:
        try:
            answer["response"] = httpx.post(f"{url}/predict", json=body, timeout=300)
        except httpx.HTTPError as exc:
            answer["error"] = exc

    proxy.hold(lambda method, path, headers, data: method in ("PUT", "POST") and "/predictions/" in path)
    client = threading.Thread(target=ask)
    client.start()
    try:
        assert proxy.held.wait(300), "the worker never reached the upload of its prediction"
        assert client.is_alive(), "the request ended before its COG was stored"
        os.kill(worker.pid, signal.SIGKILL)
        client.join(120)
        assert not client.is_alive(), "the client hangs after its worker died"
    finally:
        proxy.release(drop=True)
        client.join(120)
    got = answer.get("response")
    assert "error" in answer or (got is not None and got.status_code >= 500), f"the client got {answer}"

    assert _bucket(served) == keys, "the killed request left an object (or a temporary) in the bucket"
    assert _predictions().keys() == items.keys(), "the killed request left a STAC item"

    wait_until(lambda: [w.pid for w in _workers(home)] not in ([], [worker.pid]), 180, "a new worker")
    wait_until(lambda: httpx.get(f"{url}/readyz", timeout=5).status_code == 200, 180, "the service ready again")
    r = httpx.post(f"{url}/predict", json=body, timeout=300)
    assert r.status_code == 200, r.text[:500]
    pid = r.json()["prediction_id"]
    new_keys = [k for k in _bucket(served) if k not in keys]
    assert new_keys == [f"data/predictions/{YEAR}/{pid}.tif", f"data/predictions/{YEAR}/{pid}_quality.tif"], new_keys
    assert list(_predictions().keys() - items.keys()) == [r.json()["stac_item"]["id"]]
