"""One suite, two backends: a local folder and S3 (moto's server on loopback)."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from affine import Affine
from rasterio.windows import Window
from terracover.cog import write_cog
from terracover.settings import Settings
from terracover.store import TMP_MARK, ObjectStore, open_store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, settings: Settings) -> ObjectStore:
    if request.param == "s3":
        return open_store(request.getfixturevalue("s3_settings"))
    return open_store(settings)


def test_round_trip_and_overwrite(store: ObjectStore) -> None:
    store.put_bytes("a/b/c.txt", b"one")
    assert store.get_bytes("a/b/c.txt") == b"one"
    store.put_bytes("a/b/c.txt", b"two")
    assert store.get_bytes("a/b/c.txt") == b"two"
    assert store.exists("a/b/c.txt") and not store.exists("a/b/missing.txt")
    store.delete("a/b/c.txt")
    assert not store.exists("a/b/c.txt")


def test_missing_key_says_which(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.txt"):
        store.get_bytes("nope.txt")
    with pytest.raises(FileNotFoundError, match=r"nope\.txt"):
        store.download("nope.txt", tmp_path / "x")


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "dir/", f"x{TMP_MARK}1"])
def test_bad_keys_are_rejected(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid store key"):
        store.put_bytes(key, b"x")


def test_list_by_prefix_recursive_sorted(store: ObjectStore) -> None:
    for key in [
        "scenes/T1/2023-01-02/B04.tif",
        "scenes/T1/2023-01-01/B04.tif",
        "scenes/T2/x.tif",
        "labels/a.csv",
    ]:
        store.put_bytes(key, b"x")
    assert store.list("scenes/") == [
        "scenes/T1/2023-01-01/B04.tif",
        "scenes/T1/2023-01-02/B04.tif",
        "scenes/T2/x.tif",
    ]
    assert store.list("scenes/T1/") == ["scenes/T1/2023-01-01/B04.tif", "scenes/T1/2023-01-02/B04.tif"]
    assert store.list("lab") == ["labels/a.csv"]
    assert len(store.list()) == 4
    assert store.list("nothing/") == []


def test_failed_write_publishes_nothing(store: ObjectStore) -> None:
    with pytest.raises(RuntimeError), store.writer("out/obj.bin") as path:
        path.write_bytes(b"half")
        raise RuntimeError("task crashed mid-write")
    assert not store.exists("out/obj.bin")
    assert store.list("out/") == []


def test_writer_publishes_and_hides_temporaries(store: ObjectStore) -> None:
    with store.writer("out/obj.bin", suffix=".bin") as path:
        assert path.suffix == ".bin"
        path.write_bytes(b"whole")
    assert store.get_bytes("out/obj.bin") == b"whole"
    assert store.list("out/") == ["out/obj.bin"]
    assert store.modified("out/obj.bin").tzinfo is not None


def test_urls_fetch_the_object(store: ObjectStore) -> None:
    store.put_bytes("u/file.txt", b"payload")
    url = store.url("u/file.txt")
    if url.startswith("file://"):
        assert Path(url.removeprefix("file://")).read_bytes() == b"payload"
    else:
        assert httpx.get(url, timeout=10).content == b"payload"
    assert store.uri("u/file.txt").endswith("u/file.txt")


def test_rasterio_windowed_read_of_a_cog(store: ObjectStore) -> None:
    rng = np.random.default_rng(1)
    data = rng.random((3, 700, 900), dtype=np.float32)
    with store.writer("cogs/stack.tif", suffix=".tif") as path:
        write_cog(
            path,
            data,
            Affine(10, 0, 600000, 0, -10, 4400000),
            32630,
            float("nan"),
            descriptions=["a", "b", "c"],
        )
    with store.open_raster("cogs/stack.tif") as src:
        assert src.descriptions == ("a", "b", "c")
        window = Window(col_off=513, row_off=257, width=100, height=60)
        got = src.read([2, 3], window=window)
    np.testing.assert_array_equal(got, data[1:, 257:317, 513:613])


def test_presigned_urls_use_the_public_endpoint(
    s3_settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Reads and writes go to the in-cluster endpoint; links handed to clients are signed for the public one."""
    from terracover.settings import get_settings

    internal = open_store(s3_settings)
    internal.put_bytes("maps/x.tif", b"map")
    monkeypatch.setenv("TERRACOVER_S3_PUBLIC_ENDPOINT_URL", "https://s3.maps.example.org")
    get_settings.cache_clear()
    public = open_store(get_settings())
    url = public.url("maps/x.tif")
    assert url.startswith(f"https://s3.maps.example.org/{internal.root.removeprefix('s3://').split('/')[0]}/")
    assert "Signature=" in url
    assert public.get_bytes("maps/x.tif") == b"map"  # still through the internal endpoint


def test_windowed_reads_on_s3_build_no_session_per_open(
    s3_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """One subtile opens many rasters: no boto3 credential lookup (and its log line) per open."""
    import logging

    s3 = open_store(s3_settings)
    data = np.arange(256 * 256, dtype=np.uint16).reshape(256, 256)
    for k in range(3):
        with s3.writer(f"r/{k}.tif", suffix=".tif") as path:
            write_cog(path, data, Affine(10, 0, 0, 0, -10, 2560), 32630, nodata=0, blocksize=128, overviews=False)
    caplog.set_level(logging.DEBUG, logger="botocore")
    with s3.open_rasters() as rasters:
        for _ in range(4):
            for k in range(3):
                assert rasters.get(s3.gdal_path(f"r/{k}.tif")).read(1, window=Window(0, 0, 64, 64)).sum() > 0
        assert rasters.opened == 3
    assert not [r for r in caplog.records if "credentials" in r.getMessage().lower()]
