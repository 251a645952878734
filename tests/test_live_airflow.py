"""terracover as users run it: a live scheduler, dag-processor, triggerer and api-server (LocalExecutor).

One trigger of ``ingest_scenes`` and the assets carry the chain (scenes -> composites -> training set ->
train_model); a person approves in the UI's *Required Actions* (headless Chromium, logged in as the admin);
the champion alias moves with ``approved_by`` recorded. Then ``retrain_on_alert``'s deferrable sensor waits in
the real triggerer until Alertmanager holds a firing TerracoverLowConfidence and records why it does not
retrain. Every wait is for a state, never for a clock. The region is tiny and the archive thin (2 dates per
season) so the module runs in a few minutes; the tests run in order on one installation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import ARTIFACTS
from tests.fixtures.airflow import ROOT
from tests.fixtures.airflow_live import FINISHED as FINISHED_STATES
from tests.fixtures.airflow_live import LiveAirflow, live_airflow
from tests.fixtures.browser import chromium_page
from tests.fixtures.mlflow_server import running_mlflow
from tests.fixtures.procs import free_port, terracover_env
from tests.fixtures.prometheus import _alertmanager

pytestmark = [pytest.mark.airflow, pytest.mark.services, pytest.mark.live, pytest.mark.timeout(1800)]

YEAR = 2023
REGION = "[-0.012, 39.950, 0.012, 39.962]"  # the data plane tests' region: enough labels per class for the gate
CHAIN = ["ingest_scenes", "build_composites", "build_training_set", "train_model", "publish_map"]
ALL = {*CHAIN, "ingest_dem", "retrain_on_alert"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveAirflow, str]]:
    """A live Airflow over a simulated archive, its own MLflow server (a fresh install: the session's shared
    server holds other tests' 2023 champions, whose tables live in other stores) and an Alertmanager."""
    work = tmp_path_factory.mktemp("live")
    am_config = work / "alertmanager.yml"
    am_config.write_text(yaml.safe_dump({"route": {"receiver": "none"}, "receivers": [{"name": "none"}]}))
    with _alertmanager(work, am_config) as am_url, running_mlflow(work / "mlflow") as mlflow_server:
        env = {
            "TERRACOVER_HOME": str(work / "tc"),
            "TERRACOVER_REGION_BBOX": REGION,
            "TERRACOVER_SUBTILE_SIZE": "366",
            "TERRACOVER_SCENE_SOURCE": "simulator",
            "TERRACOVER_DEM_SOURCE": "simulator",
            "TERRACOVER_ALERTMANAGER_URL": am_url,
            "TERRACOVER_MLFLOW_TRACKING_URI": mlflow_server,
            "TERRACOVER_ALERT_POLL_S": "2",
            "TERRACOVER_LABELS_POLL_S": "5",
            "TERRACOVER_SERVING_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens: reload is best effort
            "TERRACOVER_GIT_SHA": "c0ffee" * 6,
        }
        subprocess.run(
            [sys.executable, "-m", "terracover.simulate", "--years", str(YEAR), "--dates-per-season", "2"],
            env={**os.environ, **env}, check=True, cwd=ROOT, timeout=600, capture_output=True,
        )  # fmt: skip
        with terracover_env(env), live_airflow(work / "airflow", env) as af:
            af.wait(lambda: af.dag_ids() >= ALL, 600, "the dag-processor parsing dags/")
            yield af, am_url


def _no_failed_runs(af: LiveAirflow) -> None:
    if failed := af.failed_runs(ALL):
        raise AssertionError(f"failed runs: {failed}\n{_failure_logs(af, failed)}")


def _failure_logs(af: LiveAirflow, failed: list[str]) -> str:
    out = []
    for key in failed[:3]:
        dag_id, run_id = key.split("/", 1)
        for ti in af.task_instances(dag_id, run_id):
            if ti["state"] == "failed":
                text = af.task_log(dag_id, run_id, ti["task_id"], ti["try_number"], ti["map_index"])
                out.append(f"--- {dag_id}.{ti['task_id']}:\n{text[-3000:]}")
    return "\n".join(out)


@contextmanager
def _logged_in(af: LiveAirflow) -> Iterator[Any]:
    """A headless Chromium page logged in to the Airflow UI as its admin, the way a person logs in."""
    with chromium_page(1400, 1000) as page:
        page.goto(f"{af.url}/auth/login")
        page.fill("input[name=username]", af.user)
        page.fill("input[name=password]", af.password)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{af.url}/", timeout=120_000)
        yield page


def _approve_in_the_ui(af: LiveAirflow, subject: str, shot: Path) -> None:
    """As a person: log in, open Required Actions, open the request, click Approve."""
    with _logged_in(af) as page:
        page.goto(f"{af.url}/required_actions")
        page.get_by_text(subject).first.click(timeout=120_000)
        approve = page.get_by_role("button", name="Approve")
        approve.wait_for(timeout=120_000)
        page.screenshot(path=str(shot), full_page=True)
        approve.click()


def test_one_trigger_carries_the_chain_to_a_champion_approved_in_the_ui(live: tuple[LiveAirflow, str]) -> None:
    from terracover import registry
    from terracover.settings import get_settings

    af, _ = live
    for dag_id in CHAIN:
        af.unpause(dag_id)
    af.trigger("ingest_scenes", {"year": YEAR})
    pending = af.wait(lambda: af.pending_hitl("train_model"), 1500, "train_model asking for approval",
                      guard=lambda: _no_failed_runs(af))  # fmt: skip
    detail = pending[0]
    link = detail["body"].split("[MLflow run](", 1)[1].split(")", 1)[0]  # a page a browser opens
    assert link.startswith(af.env["TERRACOVER_MLFLOW_TRACKING_URI"]) and "/#/experiments/" in link, link
    ARTIFACTS.mkdir(exist_ok=True)
    _approve_in_the_ui(af, detail["subject"], ARTIFACTS / "live-required-action.png")

    run_id = detail["task_instance"]["dag_run_id"]
    run = af.wait_run("train_model", run_id, 900)
    states = {t["task_id"]: t["state"] for t in af.task_instances("train_model", run_id)}
    assert run["state"] == "success", states
    assert states["promote"] == "success" and states["record_rejection"] == "skipped", states

    s = get_settings()
    champ = registry.open_registry(s).champion(YEAR)
    assert champ is not None
    assert registry.open_registry(s).version_tags(champ).get("approved_by") == af.user

    # The promotion's asset event starts publish_map: every stack of the year classified by the new champion.
    maps = af.wait(lambda: [r for r in af.runs("publish_map") if r["state"] in FINISHED_STATES], 900,
                   "publish_map after the promotion", guard=lambda: _no_failed_runs(af))  # fmt: skip
    assert maps[0]["state"] == "success" and maps[0]["run_type"] == "asset_triggered", maps
    from terracover.catalog import COMPOSITES_COLLECTION, MAPS_COLLECTION
    from terracover.pipeline import ready_catalog

    catalog = ready_catalog(s)
    stacks = catalog.search(collections=[COMPOSITES_COLLECTION], properties={"terracover:year": YEAR})
    published = catalog.search(collections=[MAPS_COLLECTION], properties={"terracover:year": YEAR})
    assert {i.id for i in published} == {i.id for i in stacks}
    assert {i.properties["terracover:model_version"] for i in published} == {champ.version}

    # Runs with nothing to do ended skipped, never failed: the schedule's train_model run (no table for its
    # year) and the labels watcher's build_training_set run that came before any stack existed.
    _no_failed_runs(af)
    scheduled = [r for r in af.runs("train_model") if r["run_type"] == "scheduled"]
    for r in scheduled:
        plan = next(t for t in af.task_instances("train_model", r["dag_run_id"]) if t["task_id"] == "plan")
        assert plan["state"] == "skipped"
        assert "no training table" in af.task_log("train_model", r["dag_run_id"], "plan", plan["try_number"])


def test_the_alert_wakes_the_sensor_deferred_in_the_triggerer(live: tuple[LiveAirflow, str]) -> None:
    from terracover.settings import get_settings
    from terracover.store import open_store

    af, am_url = live
    af.unpause("retrain_on_alert")  # its schedule starts a run at once: the sensor defers in the triggerer

    def deferred() -> str | None:
        for r in af.runs("retrain_on_alert"):
            for t in af.task_instances("retrain_on_alert", r["dag_run_id"]):
                if t["task_id"] == "wait_for_alert" and t["state"] == "deferred":
                    return str(r["dag_run_id"])
        return None

    run_id = af.wait(deferred, 600, "wait_for_alert deferred", guard=lambda: _no_failed_runs(af))
    alert = {
        "labels": {"alertname": "TerracoverLowConfidence", "year": str(YEAR), "severity": "warning"},
        "annotations": {"summary": "test"},
        "startsAt": datetime.now(UTC).isoformat(),
    }
    httpx.post(f"{am_url}/api/v2/alerts", json=[alert], timeout=30).raise_for_status()
    run = af.wait_run("retrain_on_alert", run_id, 900)
    states = {t["task_id"]: t["state"] for t in af.task_instances("retrain_on_alert", run_id)}
    assert run["state"] == "success", states
    assert states["wait_for_alert"] == "success" and states["nothing_to_do"] == "skipped", states
    assert states.get("trigger_training") in (None, "skipped"), states

    store = open_store(get_settings())
    decisions = [json.loads(store.get_bytes(k)) for k in sorted(store.list(f"monitoring/decisions/{YEAR}/"))]
    last: dict[str, Any] = decisions[-1]
    assert last["retrain"] is False and "already in champion" in last["reason"], last
    _no_failed_runs(af)


def test_the_terracover_view_in_the_airflow_ui(live: tuple[LiveAirflow, str]) -> None:
    """The plugin's page, opened from the UI's navigation as a person would: the year's champion with its
    approval record, the published map and a link to the MLflow run."""
    from terracover import registry
    from terracover.settings import get_settings

    af, _ = live
    assert httpx.get(f"{af.url}/terracover/", timeout=60).status_code == 401  # not without a login
    champ = registry.open_registry(get_settings()).champion(YEAR)
    assert champ is not None
    with _logged_in(af) as page:
        page.goto(f"{af.url}/plugin/terracover")
        frame = page.frame_locator("iframe").first
        frame.get_by_text(f"{YEAR}", exact=True).wait_for(timeout=120_000)
        row = frame.locator("tr", has_text="champion")
        assert champ.version in row.inner_text() and af.user in row.inner_text()
        assert frame.get_by_role("link", name="run").first.get_attribute("href", timeout=60_000).startswith("http")
        assert "map: v" in frame.locator("body").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "terracover-view.png"), full_page=True)
