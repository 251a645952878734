"""The data plane end to end under real Airflow: simulated archive -> ingest_scenes -> ingest_dem ->
build_composites, on a small region that crosses the UTM 30/31 boundary (two tiles, two zones)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from tests.fixtures.airflow import ROOT

pytestmark = [pytest.mark.airflow]

YEAR = 2023


def _settings_for(env: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    from terracover.settings import get_settings

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    return get_settings()


def test_ingest_copies_scenes_of_both_tiles(dataplane: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from terracover.catalog import SCENES_COLLECTION, open_catalog

    s = _settings_for(dataplane["env"], monkeypatch)
    items = open_catalog(s).search(collections=[SCENES_COLLECTION])
    tiles = {i.properties["terracover:tile"] for i in items}
    assert len(tiles) == 2 and {t[:2] for t in tiles} == {"30", "31"}, tiles
    assert len(items) == 2 * 4 * 2  # tiles x seasons x dates per season
    for item in items:
        for key in (a.extra_fields["terracover:key"] for a in item.assets.values()):
            assert (Path(s.store_uri) / key).is_file(), key


def test_second_ingest_does_nothing_new(dataplane: dict) -> None:
    scenes = dataplane["scenes_after_first"]
    assert scenes, "first run ingested nothing"
    now = {p: p.stat().st_mtime_ns for p in scenes}
    assert now == scenes, "a re-run rewrote scene objects"
    assert "0 not yet ingested" in dataplane["second"], dataplane["second"][-3000:]


def test_composites_are_cogs_with_feature_bands(dataplane: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from terracover.catalog import COMPOSITES_COLLECTION, open_catalog
    from terracover.features import SEASONS, all_features

    s = _settings_for(dataplane["env"], monkeypatch)
    items = open_catalog(s).search(collections=[COMPOSITES_COLLECTION], properties={"terracover:year": YEAR})
    assert items, "no composite items"
    assert {i.properties["terracover:tile"][:2] for i in items} == {"30", "31"}
    for item in items:
        path = Path(s.store_uri) / item.assets["features"].extra_fields["terracover:key"]
        valid, errors, _ = cog_validate(str(path))
        assert valid, errors
        qa_names = [f"qa_{season.name}" for season in SEASONS]
        with rasterio.open(path) as src:
            assert list(src.descriptions) == [*all_features(), *qa_names]
            assert src.dtypes[0] == "float32"
            ndvi = src.read(src.descriptions.index("summer_ndvi") + 1)
            qa = src.read([src.descriptions.index(n) + 1 for n in qa_names])
        assert (ndvi[np.isfinite(ndvi)] <= 1).all()
        assert min(item.properties["terracover:valid_fraction"].values()) > 0.2
        # gap filling is on by default: the quality bands say how each season was obtained, the item sums them up
        assert set(np.unique(qa[np.isfinite(qa)])) <= {-1.0, 0.0} | set(range(1, 100))
        quality = item.properties["terracover:season_quality"]
        assert item.properties["terracover:gap_fill"] == "on" and list(quality) == [s.name for s in SEASONS]
        for k, q in enumerate(quality.values()):
            assert q["observed"] == pytest.approx(float((qa[k] >= 1).mean()), abs=1e-5)
            assert q["observed"] + q["filled"] + q["missing"] == pytest.approx(1.0, abs=1e-5)


def test_killed_stack_build_leaves_nothing_and_rebuild_is_identical(dataplane: dict, tmp_path: Path) -> None:
    """SIGKILL a stack build while it writes; the key must not exist; a re-run gives the same bytes."""
    env = {**os.environ, **dataplane["env"]}  # type: ignore[dict-item]
    store = Path(dataplane["home"]) / "store"  # type: ignore[arg-type]
    built = sorted((store / "composites").rglob("features.tif"))
    target = built[0]
    reference = hashlib.sha256(target.read_bytes()).hexdigest()
    tile, subtile = target.parent.parent.name, target.parent.name
    target.unlink()
    code = f"from terracover.pipeline import build_one_stack; build_one_stack({YEAR}, '{tile}', '{subtile}')"
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        # wait until the temporary file of the write appears, then kill hard
        while time.monotonic() < deadline and proc.poll() is None:
            if any(p.name.startswith(".") for p in target.parent.glob("*")):
                break
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert not target.exists(), "a killed build left an object under the real key"
    # A SIGKILL cannot clean up: its temporary may remain, hidden from listings; remove it, since the
    # data plane is shared with later tests that check that *their* faults leave no temporary behind.
    from terracover.store import TMP_MARK, LocalStore

    orphans = [p for p in target.parent.iterdir() if TMP_MARK in p.name]
    assert not [k for k in LocalStore(store).list("composites") if TMP_MARK in k], "a listing shows a temporary"
    for orphan in orphans:
        orphan.unlink()
    subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True, timeout=600)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == reference
