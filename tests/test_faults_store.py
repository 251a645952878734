"""The object store fails on write, and nothing half-written remains: the S3 API answering 500 or resetting the
connection (a proxy in front of the real moto server fails chosen PUTs), and a full local disk (RLIMIT_FSIZE in
a subprocess: writes past the limit fail with EFBIG, as on a full filesystem), during a prediction and during
``build_stack`` (on S3: a one-subtile data plane built by the library steps, without Airflow). After each fault
no object exists under a real key that was not there before (and one that was is unchanged), no temporary is
left behind, and a retry completes with the same bytes as a clean run."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from shapely.geometry import box
from terracover import grid
from terracover.catalog import open_catalog
from terracover.predict import predict_aoi
from terracover.settings import Settings, get_settings
from terracover.store import TMP_MARK, S3Store, StoreWriteError, open_store

from tests.fixtures.faults import FaultyProxy, faulty_proxy
from tests.synthetic_stacks import write_stack
from tests.test_predict import CROSSING, NAMES, SIZE, YEAR, _model

pytestmark = pytest.mark.services

PID = "20260101T000000-faultinjected"


def _s3_keys(store: S3Store) -> list[str]:
    """Every key in the bucket, temporaries included (store.list() hides them)."""
    pages = store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _s3_objects(store: S3Store) -> dict[str, str]:
    """Key -> sha256 of every object in the bucket, temporaries included."""
    get = store.client.get_object
    return {k: hashlib.sha256(get(Bucket=store.bucket, Key=k)["Body"].read()).hexdigest() for k in _s3_keys(store)}


def _fail_puts_of(fragment: str) -> Any:
    # A PUT or POST (an upload, a multipart part or its completion) of any object whose key contains ``fragment``.
    return lambda method, path, headers, body: method in ("PUT", "POST") and fragment in path


@pytest.fixture
def proxied_store(s3_server: str, s3_bucket: str, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Any:
    with faulty_proxy(s3_server) as proxy:
        monkeypatch.setenv("TERRACOVER_STORE_URI", f"s3://{s3_bucket}/data")
        monkeypatch.setenv("TERRACOVER_S3_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # botocore retries a 500: the fault must outlast them
        get_settings.cache_clear()
        s = get_settings().model_copy(update={"subtile_size": SIZE})
        yield proxy, s


@pytest.mark.parametrize(
    ("mode", "failing"),
    [
        ("500", "predictions/"),
        ("reset", "predictions/"),
        ("500", f"{PID}.tif"),  # the map only: its quality layer, already stored, must go too
    ],
)
def test_prediction_with_the_s3_api_failing_on_write_leaves_nothing_and_a_retry_is_identical(
    proxied_store: tuple[FaultyProxy, Settings], mode: str, failing: str
) -> None:
    proxy, s = proxied_store
    store, catalog = open_store(s), open_catalog(s)
    assert isinstance(store, S3Store)
    for st in grid.subtiles_for_geometry(CROSSING, SIZE):
        write_stack(store, catalog, YEAR, st, NAMES)
    before = _s3_keys(store)
    proxy.arm(_fail_puts_of(failing), mode)  # type: ignore[arg-type]
    with pytest.raises(Exception):  # noqa: B017 - whatever botocore raises; the point is what remains
        predict_aoi(CROSSING, YEAR, _model(), store, catalog, s, prediction_id=PID)
    assert proxy.failed, "the fault was never injected"
    assert _s3_keys(store) == before, "a failed write left an object (or a temporary) behind"
    proxy.disarm()
    p = predict_aoi(CROSSING, YEAR, _model(), store, catalog, s, prediction_id=PID)
    assert [k for k in _s3_keys(store) if k not in before] == sorted([f"data/{p.key}", f"data/{p.quality_key}"])
    retried = store.get_bytes(p.key), store.get_bytes(p.quality_key)
    store.delete(p.key)
    store.delete(p.quality_key)
    clean = predict_aoi(CROSSING, YEAR, _model(), store, catalog, s, prediction_id=PID)
    assert (store.get_bytes(clean.key), store.get_bytes(clean.quality_key)) == retried


def _run(code: str, env: dict[str, str], fsize: int | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code``; with ``fsize``, every file write past that many bytes fails from the marked line on."""
    limit = f"resource.setrlimit(resource.RLIMIT_FSIZE, ({fsize}, {fsize}))" if fsize else "pass"
    code = "import resource\n" + code.replace("# disk full from here\n", limit + "\n")
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@contextlib.contextmanager
def _catalog_held_open(s: Settings) -> Iterator[None]:
    """Keep a reader on the embedded catalog, so its WAL index exists at full size and reading it in the
    limited subprocess writes nothing: the limit then hits the object writes, which are under test."""
    con = sqlite3.connect(Path(s.catalog_uri) / "catalog.sqlite")
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        yield
    finally:
        con.close()


def _temporaries(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if TMP_MARK in p.name}


def _files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


PREDICT = """
from terracover.catalog import open_catalog
from terracover.predict import predict_aoi
from terracover.settings import get_settings
from terracover.store import open_store
from tests.test_predict import CROSSING, YEAR, _model
s = get_settings()
store, catalog, model = open_store(s), open_catalog(s), _model()
# disk full from here
predict_aoi(CROSSING, YEAR, model, store, catalog, s, prediction_id={pid!r})
"""


def test_prediction_on_a_full_disk_leaves_nothing_and_a_retry_is_identical(settings: Settings, tmp_path: Path) -> None:
    s = settings.model_copy(update={"subtile_size": SIZE})
    store, catalog = open_store(s), open_catalog(s)
    for st in grid.subtiles_for_geometry(CROSSING, SIZE):
        write_stack(store, catalog, YEAR, st, NAMES)
    (tmp_path / "tmp").mkdir()
    env = {"TERRACOVER_HOME": str(s.home), "TERRACOVER_SUBTILE_SIZE": str(SIZE), "TMPDIR": str(tmp_path / "tmp")}
    root = Path(store.root)
    before = _files(root)
    with _catalog_held_open(s):
        full = _run(PREDICT.format(pid=PID), env, fsize=1024)
    assert full.returncode != 0 and "File too large" in full.stderr, full.stderr[-2000:]
    assert _files(root) == before, "a failed write left a file in the store"
    assert not list((tmp_path / "tmp").iterdir()), "a failed write left a temporary behind"
    ok = _run(PREDICT.format(pid=PID), env)
    assert ok.returncode == 0, ok.stderr[-2000:]
    key = f"predictions/{YEAR}/{PID}.tif"
    retried = store.get_bytes(key)
    store.delete(key)
    assert _run(PREDICT.format(pid=PID), env).returncode == 0
    assert store.get_bytes(key) == retried


BUILD = """
from terracover import grid
from terracover.pipeline import ready_catalog
from terracover.settings import get_settings
from terracover.stacks import build_stack
from terracover.store import open_store
s = get_settings()
st = grid.subtile({tile!r}, {subtile!r}, s.subtile_size)
store, catalog = open_store(s), ready_catalog(s)
# disk full from here
print(build_stack({year}, st, store, catalog, overwrite=True).key)
"""


@pytest.mark.airflow
def test_build_stack_on_a_full_disk_keeps_the_old_stack_and_a_retry_is_identical(
    dataplane: dict[str, Any], tmp_path: Path
) -> None:
    from tests.fixtures.dataplane import YEAR as DP_YEAR

    home = tmp_path / "home"
    src = Path(dataplane["home"])
    for part in ("store", "catalog"):
        shutil.copytree(src / part, home / part)
    (tmp_path / "tmp").mkdir()
    env = {**dataplane["env"], "TERRACOVER_HOME": str(home), "TMPDIR": str(tmp_path / "tmp")}
    stacks = sorted((home / "store" / "composites" / str(DP_YEAR)).glob("*/*/features.tif"))
    assert stacks, "the data plane built no stack"
    tile, subtile = stacks[0].parts[-3], stacks[0].parts[-2]
    code = BUILD.format(tile=tile, subtile=subtile, year=DP_YEAR)
    root = home / "store"
    before = _files(root)
    temporaries = _temporaries(root)  # another test's killed writer may have left one in the shared data plane
    with _catalog_held_open(get_settings().model_copy(update={"catalog_uri": str(home / "catalog")})):
        full = _run(code, env, fsize=64 * 1024)
    assert full.returncode != 0 and "File too large" in full.stderr, full.stderr[-2000:]
    assert _files(root) == before, "a failed rebuild changed or added a file in the store"
    assert _temporaries(root) == temporaries, "a failed rebuild left a temporary behind"
    assert not list((tmp_path / "tmp").iterdir()), "a failed write left a temporary behind"
    ok = _run(code, env)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert _files(root) == before, "the retry did not reproduce the same stack"


REGION = (-0.505, 39.952, -0.497, 39.958)  # one subtile of 30SYK at SIZE_S3 pixels
SIZE_S3 = 366
S3_YEAR = 2022


@pytest.fixture(scope="module")
def s3_dataplane(
    s3_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FaultyProxy, Settings, bytes]]:
    """A one-subtile data plane in a bucket, reached through the failing proxy (disarmed): a simulated year
    ingested, terrain built, and the bytes of a clean build of the stack. Library steps (what the tasks
    call), without Airflow."""
    import boto3
    from terracover.pipeline import build_one_stack, ingest_tile_year, region_tiles, terrain_for_tile
    from terracover.simulate import SimulationConfig, simulate_archive

    from tests.fixtures.procs import terracover_env

    home = tmp_path_factory.mktemp("tc-s3-build")
    bucket = f"tc-build-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    with faulty_proxy(s3_server) as proxy:
        env = {
            "TERRACOVER_HOME": str(home),
            "TERRACOVER_REGION_BBOX": json.dumps(list(REGION)),
            "TERRACOVER_SUBTILE_SIZE": str(SIZE_S3),
            "TERRACOVER_STORE_URI": f"s3://{bucket}/data",
            "TERRACOVER_S3_ENDPOINT_URL": proxy.url,
            "AWS_MAX_ATTEMPTS": "2",  # botocore retries a 500: the fault must outlast them
        }
        with terracover_env(env):
            s = get_settings()
            simulate_archive(
                SimulationConfig(REGION, S3_YEAR, dates_per_season=1, subtile_size=SIZE_S3), home / "archive"
            )
            (tile,) = region_tiles(s)
            ingest_tile_year(S3_YEAR, tile, s)
            terrain_for_tile(tile, settings=s)
            (st,) = grid.subtiles_for_geometry(box(*REGION), SIZE_S3)
            clean = build_one_stack(S3_YEAR, tile, st.id, s)
            yield proxy, s, open_store(s).get_bytes(clean["key"])


@pytest.mark.parametrize(("mode", "step"), [("500", "complete"), ("reset", "part")])
def test_build_stack_with_the_s3_api_failing_on_write_leaves_nothing_and_a_retry_is_identical(
    s3_dataplane: tuple[FaultyProxy, Settings, bytes], mode: str, step: str
) -> None:
    """A stack is a multipart upload. ``part``: the upload of its parts fails; ``complete``: the request that
    publishes the finished upload fails. First a build with no stack yet, then a rebuild over an existing one:
    after each fault the bucket holds exactly what it held before (the old stack unchanged, no temporary, no
    unfinished upload, the catalog unchanged), and the retry gives the bytes of a clean build."""
    from terracover.catalog import COMPOSITES_COLLECTION
    from terracover.keys import stack_key, true_colour_key
    from terracover.pipeline import ready_catalog
    from terracover.stacks import build_stack, stack_item_id

    proxy, s, clean = s3_dataplane
    store, catalog = open_store(s), ready_catalog(s)
    assert isinstance(store, S3Store)
    (st,) = grid.subtiles_for_geometry(box(*REGION), SIZE_S3)
    key, item_id = stack_key(S3_YEAR, st), stack_item_id(S3_YEAR, st)
    store.delete(key)
    store.delete(true_colour_key(S3_YEAR, st))
    catalog.delete_item(COMPOSITES_COLLECTION, item_id)

    def fail(method: str, path: str, headers: dict[str, str], body: bytes) -> bool:
        if "composites/" not in path:
            return False
        if step == "part":
            return method == "PUT" and "partNumber=" in path
        return method == "POST" and "uploadId=" in path  # CompleteMultipartUpload

    for existing in (None, "kept"):
        before = _s3_objects(store)
        stack_item = catalog.get_item(COMPOSITES_COLLECTION, item_id)
        proxy.arm(fail, mode)  # type: ignore[arg-type]
        try:
            with pytest.raises(StoreWriteError):
                build_stack(S3_YEAR, st, store, catalog, overwrite=True)
        finally:
            proxy.disarm()
        assert proxy.failed and all("composites/" in f for f in proxy.failed), proxy.failed
        proxy.failed.clear()
        assert _s3_objects(store) == before, f"a failed {step} left or changed an object (stack before: {existing})"
        unfinished = store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
        assert not unfinished, f"unfinished multipart uploads were left behind: {unfinished}"
        got = catalog.get_item(COMPOSITES_COLLECTION, item_id)
        assert (got and got.to_dict()) == (stack_item and stack_item.to_dict()), "the catalog changed"
        retried = build_stack(S3_YEAR, st, store, catalog, overwrite=True)
        assert retried.key == key and not retried.skipped
        new = [] if existing else [f"data/{key}", f"data/{true_colour_key(S3_YEAR, st)}"]  # stack, true colour
        assert [k for k in _s3_keys(store) if k not in before] == new
        assert store.get_bytes(key) == clean, "the retry did not give the bytes of a clean build"
        assert not [k for k in _s3_keys(store) if TMP_MARK in k], "a temporary was left behind"
