"""Configured credentials never leave the process that needs them: not in the report, a log line, an answer or
error message, a STAC item, an MLflow tag, param or artifact.

A real run with secrets configured: the catalog DSN of a real pgSTAC with its password (report) and a reload
token. A model-plane step
(training set, training, logging and registering a version) and the real service (a prediction, a reload, the
readiness and model pages) run with the reload token configured; then every output is searched for it.
URI passwords are checked where they would surface: the report on a real pgSTAC DSN, run links, scrubbing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.procs import terracover_env
from tests.fixtures.serving import settings_now, start_service
from tests.test_serving import ONE_TILE_AOI, YEAR

pytestmark = [pytest.mark.services, pytest.mark.airflow]

PASSWORD = "mlflow-Pa55-word-1f3d"
TOKEN = "reload-T0ken-9c2e"


def test_uris_are_shown_and_linked_without_their_password() -> None:
    from terracover.registry import run_url
    from terracover.settings import Settings, redact_uri, scrub

    dsn = f"postgresql://terracover:{PASSWORD}@db:5432/stac"
    assert redact_uri(dsn) == "postgresql://terracover:***@db:5432/stac"
    assert run_url(f"https://ci:{PASSWORD}@mlflow.example", "1", "r") == "https://mlflow.example/#/experiments/1/runs/r"
    s = Settings(catalog_uri=dsn, reload_token=TOKEN)
    assert (
        scrub(f"connection to {dsn} failed; token {TOKEN}", s)
        == "connection to postgresql://terracover:***@db:5432/stac failed; token ***"
    )


def test_report_shows_the_catalog_dsn_without_its_password(pgstac_dsn: str, tmp_path: Path) -> None:
    from urllib.parse import urlsplit

    password = urlsplit(pgstac_dsn).password
    assert password and password in pgstac_dsn
    env = {**os.environ, "TERRACOVER_HOME": str(tmp_path), "TERRACOVER_CATALOG_URI": pgstac_dsn}
    out = subprocess.run(
        [sys.executable, "-m", "terracover.report"], env=env, capture_output=True, text=True, timeout=300, check=True
    )
    assert f":{password}@" not in out.stdout + out.stderr, out.stdout  # (the fixture's user name is its password)
    assert ":***@127.0.0.1" in out.stdout, out.stdout


def _registered_version_outputs(version: str) -> str:
    """Tags, params and artifacts MLflow holds for the version and its run, as one text."""
    import mlflow
    from terracover import registry

    mc = registry.open_registry(settings_now()).client
    mv = mc.get_model_version(registry.model_name(YEAR), version)
    run = mc.get_run(mv.run_id)
    texts: list[Any] = [mv.tags, mv.source, run.data.tags, run.data.params, run.info.artifact_uri]
    root = Path(mlflow.artifacts.download_artifacts(run_id=mv.run_id, tracking_uri=settings_now().mlflow_tracking_uri))
    texts += [p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*") if p.is_file()]
    return json.dumps(texts, default=str)


def test_no_output_of_a_model_and_service_run_carries_a_credential(
    serving_env: dict[str, str], champion_version: str, mlflow_server: str, tmp_path: Path
) -> None:
    from terracover import registry
    from terracover.dataset import load_table
    from terracover.evaluate import evaluate_model
    from terracover.pipeline import build_training_set
    from terracover.store import open_store
    from terracover.train import train

    env = {**serving_env, "TERRACOVER_MLFLOW_TRACKING_URI": mlflow_server, "TERRACOVER_RELOAD_TOKEN": TOKEN}
    with terracover_env(env):
        s = settings_now()
        info = build_training_set(YEAR, s)
        table = load_table(YEAR, info["dataset_uri"], open_store(s)).frame
        trained = train(table, "rf_fast", seed=7)
        ref = registry.log_and_register(  # registered, not approved: the served champion stays as it is
            registry.open_registry(s),
            trained,
            evaluate_model(trained.estimator, table, trained.features),
            table_uri=info["dataset_uri"],
            dataset_sha256=info["sha256"],
            year=YEAR,
            dag_run_id="secrets",
            table=table,
        )
        mlflow_text = _registered_version_outputs(ref.version)

    log = tmp_path / "bentoml-secrets.log"
    answers: list[str] = []
    with start_service(env, log) as url:
        r = httpx.post(f"{url}/predict", json={"aoi": ONE_TILE_AOI, "year": YEAR}, timeout=300)
        assert r.status_code == 200, r.text
        answers.append(r.text)
        for bad in ({"aoi": {"type": "Topology"}, "year": YEAR}, {"aoi": ONE_TILE_AOI, "year": 1999}):
            answers.append(httpx.post(f"{url}/predict", json=bad, timeout=60).text)
        ok = httpx.post(f"{url}/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
        assert ok.status_code == 200, ok.text
        answers += [ok.text, httpx.post(f"{url}/admin/reload", headers={"Authorization": "Bearer wrong"}).text]
        answers += [httpx.get(f"{url}/{p}", timeout=60).text for p in ("readyz", "models", "docs.json")]

    home = Path(serving_env["TERRACOVER_HOME"])
    stored = [(p, p.read_bytes()) for p in home.rglob("*") if p.is_file() and p.stat().st_size < 50_000_000]
    report = subprocess.run(
        [sys.executable, "-m", "terracover.report"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    outputs = {
        "service log": log.read_text(errors="replace"),
        "answers": "\n".join(answers),
        "mlflow tags, params and artifacts": mlflow_text,
        "report": report.stdout + report.stderr,
    }
    assert json.loads(answers[0])["stac_item"]["id"], answers[0]
    for secret in (TOKEN,):
        leaks = [name for name, text in outputs.items() if secret in text]
        leaks += [str(p) for p, data in stored if secret.encode() in data]
        assert not leaks, f"{secret!r} found in {leaks}"
