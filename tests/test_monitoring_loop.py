"""The monitoring loop on loopback, every part real: the service answers unsure maps for land unlike its training
data; Prometheus scrapes it and fires TerracoverLowConfidence through Alertmanager; retrain_on_alert, under
Airflow, waits in its deferrable sensor, sees the alert and either records why it cannot act (no new labels) or
triggers train_model for that year (labelled points the champion was not trained on), once per label set while
the alert keeps firing."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from shapely.geometry import box, mapping

from tests.fixtures.airflow import BIN, ROOT, AirflowEnv
from tests.fixtures.dataplane import YEAR
from tests.fixtures.procs import wait_until
from tests.fixtures.prometheus import Monitoring
from tests.fixtures.serving import settings_now, start_service

pytestmark = [pytest.mark.services, pytest.mark.airflow]

# A subtile far from the simulated region, filled with features unlike any training pixel.
ODD_POINT = (-0.30, 39.70)


def _write_odd_stack() -> dict[str, Any]:
    from terracover import grid
    from terracover.catalog import open_catalog
    from terracover.features import all_features
    from terracover.store import open_store

    from tests.synthetic_stacks import write_stack

    s = settings_now()
    st = grid.subtile_of_point(*ODD_POINT, s.subtile_size)
    names = all_features()
    write_stack(open_store(s), open_catalog(s), YEAR, st, names)
    # Overwrite with independent noise per pixel and feature: every tree goes its own way.
    from terracover.cog import write_cog
    from terracover.keys import stack_key

    rng = np.random.default_rng(0)
    values = rng.uniform(0, 1, (len(names), *st.shape)).astype(np.float32)
    with open_store(s).writer(stack_key(YEAR, st), suffix=".tif") as path:
        write_cog(path, values, st.transform, st.crs, nodata=float("nan"), descriptions=names, overviews=False)
    lon, lat = ODD_POINT
    return mapping(box(lon - 0.003, lat - 0.003, lon + 0.003, lat + 0.003))


@pytest.fixture(scope="module")
def odd_aoi(serving_env: dict[str, str], champion_version: str) -> dict[str, Any]:
    return _write_odd_stack()


@pytest.fixture
def loop(
    serving_env: dict[str, str],
    champion_version: str,
    odd_aoi: dict[str, Any],
    monitoring_stack: Callable[[str, Path], AbstractContextManager[Monitoring]],
    tmp_path: Path,
) -> Iterator[tuple[str, Monitoring, dict[str, str]]]:
    from terracover.alert_rules import render

    rules_settings = settings_now().model_copy(
        update={"rule_interval": "1s", "confidence_alert_for": "5s", "confidence_threshold": 0.6}
    )
    rules = tmp_path / "rules.yml"
    rules.write_text(render(rules_settings))
    am = tmp_path / "alertmanager.yml"
    am.write_text(
        yaml.safe_dump(
            {
                "route": {"receiver": "none", "group_by": ["alertname", "year"], "group_wait": "1s",
                          "group_interval": "1s", "repeat_interval": "1h"},
                "receivers": [{"name": "none"}],
            }
        )
    )  # fmt: skip
    with start_service(serving_env, tmp_path / "bentoml-monitoring.log") as url:
        prom = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": ["__ALERTMANAGER__"]}]}]},
            "scrape_configs": [
                {"job_name": "terracover-serving", "static_configs": [{"targets": [url.removeprefix("http://")]}]}
            ],
        }
        with monitoring_stack(yaml.safe_dump(prom), am) as mon:
            env = {
                **serving_env,
                "TERRACOVER_ALERTMANAGER_URL": mon.alertmanager_url,
                "TERRACOVER_PROMETHEUS_URL": mon.prometheus_url,
                "TERRACOVER_ALERT_POLL_S": "2",
            }
            yield url, mon, env


def _predict(url: str, aoi: dict[str, Any]) -> dict[str, Any]:
    r = httpx.post(f"{url}/predict", json={"aoi": aoi, "year": YEAR}, timeout=300)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _decisions() -> list[dict[str, Any]]:
    from terracover.store import open_store

    store = open_store(settings_now())
    return [json.loads(store.get_bytes(k)) for k in sorted(store.list(f"monitoring/decisions/{YEAR}/"))]


def _start_dag(airflow: AirflowEnv, env: dict[str, str], conf: dict[str, Any], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(
        [str(BIN / "airflow"), "dags", "test", "retrain_on_alert",
         "--conf", json.dumps(conf)],
        env={**airflow.env, **env}, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip


# What `airflow dags test` logs when a task defers and it runs the trigger in its own process.
DEFERRED = "[DAG TEST] running trigger in line"


def _firing(mon: Monitoring) -> bool:
    alerts = httpx.get(f"{mon.alertmanager_url}/api/v2/alerts", timeout=10).json()
    return any(a["labels"].get("alertname") == "TerracoverLowConfidence" for a in alerts)


def _train_model_runs(airflow: AirflowEnv, env: dict[str, str]) -> int:
    out = airflow.run("dags", "list-runs", "train_model", "-o", "json", extra_env=env).stdout
    last = out.strip().splitlines()[-1] if out.strip() else "[]"  # log lines come first
    return len(json.loads(last))


# The body only: this test is the session's first user of the data plane and champion, whose set-up (bounded
# by its own waits) on a loaded machine must not eat the time of the three runs it makes.
@pytest.mark.timeout(2400, func_only=True)
def test_low_confidence_fires_and_the_sensor_acts_only_with_new_labels(
    airflow: AirflowEnv, loop: tuple[str, Monitoring, dict[str, str]], odd_aoi: dict[str, Any], tmp_path: Path
) -> None:
    from terracover.labels import read_labels, write_labels
    from terracover.store import open_store

    url, mon, env = loop
    store = open_store(settings_now())
    # Every labelled point is in the champion's training table: an alert cannot be acted on, even after the
    # label files are rewritten with identical content (new modification times, same points).
    for key in store.list("labels/"):
        store.put_bytes(key, store.get_bytes(key))

    # One request creates the metric series; `increase()` needs a second sample, so nothing is pending yet.
    first = _predict(url, odd_aoi)
    assert first["avg_confidence"] < 0.6, first["avg_confidence"]
    # The sensor must defer and be woken by its trigger: the requests that make the alert fire are sent only
    # once the run's log shows the sensor deferred (a state), whatever the machine's speed.
    log1 = tmp_path / "retrain-1.log"
    proc = _start_dag(airflow, env, {"labels": {"year": str(YEAR)}}, log1)
    try:
        wait_until(lambda: DEFERRED in log1.read_text(errors="replace"), 600, "wait_for_alert deferred", proc, log1)
        assert not _firing(mon), "the alert fired before the sensor deferred: the test proves nothing"
        for _ in range(3):
            _predict(url, odd_aoi)
        wait_until(lambda: _firing(mon), 300, "TerracoverLowConfidence in Alertmanager")
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log1.read_text(errors="replace")
    assert proc.returncode == 0, text[-4000:]
    assert "deferr" in text.lower(), "the sensor should have deferred while the alert was pending"
    assert "already in champion" in text, text[-4000:]
    last = _decisions()[-1]
    assert last["retrain"] is False and last["year"] == YEAR and last["alert"] == "TerracoverLowConfidence"

    # New validated labels arrive: the same (still firing) alert now starts a training run for the year. The
    # alert is a state, not an event the first run used up: the sensor returns at once while it is firing.
    labels = read_labels(store, year=YEAR).head(30).copy()
    labels["point_id"] = "campaign-2-" + labels["point_id"]
    write_labels(store, labels, "campaign-2")
    runs_before = _train_model_runs(airflow, env)
    text2 = _run_while_firing(airflow, env, mon, tmp_path / "retrain-2.log")
    assert _decisions()[-1]["retrain"] is True, text2[-4000:]
    assert _train_model_runs(airflow, env) == runs_before + 1, text2[-4000:]

    # The next run sees the same alert and the same labels: that training is already under way (waiting for
    # approval), so nothing new starts; the decision says why.
    text3 = _run_while_firing(airflow, env, mon, tmp_path / "retrain-3.log")
    last = _decisions()[-1]
    assert last["retrain"] is False and "already started training" in last["reason"], text3[-4000:]
    assert _train_model_runs(airflow, env) == runs_before + 1, text3[-4000:]
    store.delete("labels/campaign-2.parquet")


def _run_while_firing(airflow: AirflowEnv, env: dict[str, str], mon: Monitoring, log: Path) -> str:
    """One sensor-path run started while the alert is firing (a state waited for, not assumed); its log."""
    wait_until(lambda: _firing(mon), 300, "TerracoverLowConfidence still in Alertmanager")
    proc = _start_dag(airflow, env, {"labels": {"year": str(YEAR)}}, log)
    try:
        proc.wait(timeout=900)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(
            f"retrain_on_alert did not finish; alert firing now: {_firing(mon)}\n"
            + log.read_text(errors="replace")[-4000:]
        ) from None
    text = log.read_text(errors="replace")
    assert proc.returncode == 0, text[-4000:]
    return text
