"""build_training_set -> train_model on the data plane's real composites, under real Airflow and MLflow:
the Great Expectations gate passes, a human approves through the REST API and the champion alias moves;
defective labels stop the run with a readable report and write no table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from terracover.settings import Settings, get_settings

from tests.fixtures.airflow import AirflowEnv
from tests.fixtures.airflow_api import AirflowApi
from tests.fixtures.dataplane import YEAR
from tests.fixtures.procs import free_port, terracover_env
from tests.test_train_model_dag import run_until_answered

pytestmark = [pytest.mark.airflow, pytest.mark.services]


@pytest.fixture(scope="module")
def chain_env(dataplane: dict[str, Any], mlflow_server: str) -> Iterator[dict[str, str]]:
    env = {
        **dataplane["env"],
        "TERRACOVER_MLFLOW_TRACKING_URI": mlflow_server,
        "TERRACOVER_SERVING_URL": f"http://127.0.0.1:{free_port()}",
        "TERRACOVER_GIT_SHA": "c0ffee" * 6,
    }
    with terracover_env(env):
        yield env


def _settings() -> Settings:
    get_settings.cache_clear()
    return get_settings()


def test_training_set_then_approved_model(
    airflow: AirflowEnv, airflow_api: AirflowApi, chain_env: dict[str, str]
) -> None:
    from terracover import registry
    from terracover.store import open_store

    proc = airflow.dags_test("build_training_set", conf={"year": YEAR}, extra_env=chain_env)
    log = proc.stdout + proc.stderr
    assert "0 failed (passed)" in log, log[-3000:]
    s = _settings()
    tables = open_store(s).list(f"datasets/{YEAR}/")
    assert len(tables) == 1
    import hashlib

    assert (
        tables[0].removesuffix(".parquet").rsplit("/", 1)[-1]
        == hashlib.sha256(open_store(s).get_bytes(tables[0])).hexdigest()
    )

    _answered, train_log = run_until_answered(airflow, airflow_api, chain_env, {"year": YEAR}, "Approve")
    reg = registry.open_registry(s)
    champ = reg.champion(YEAR)
    assert champ is not None, train_log[-3000:]
    tags = reg.version_tags(champ)
    assert tags["dataset_uri"].endswith(tables[0]) and tags["approved_by"]
    model = reg.load_model(YEAR)
    assert len(model.features) > 0


def test_defective_labels_fail_the_gate_readably(airflow: AirflowEnv, chain_env: dict[str, str]) -> None:
    """A campaign that re-labels existing points under new ids duplicates locations: the gate names them,
    the task fails at once (no retry) and no table is stored."""
    from terracover.labels import read_labels, write_labels
    from terracover.store import open_store

    s = _settings()
    store = open_store(s)
    before = store.list("datasets/")
    dup = read_labels(store, year=YEAR).head(20).copy()
    dup["point_id"] = "dup-" + dup["point_id"]
    write_labels(store, dup, "duplicate-campaign")
    try:
        proc = airflow.run(
            "dags", "test", "build_training_set", "--conf", json.dumps({"year": YEAR}), extra_env=chain_env, check=False
        )
        text = proc.stdout + proc.stderr
        assert "state=failed" in text, text[-3000:]
        assert "points share their lon/lat with another point" in text and "dup-" in text, text[-3000:]
        assert text.count("[DAG TEST] running task <TaskInstance: build_training_set.build") == 1, "no retry"
        assert store.list("datasets/") == before, "a table that failed the gate must not be stored"
    finally:
        store.delete("labels/duplicate-campaign.parquet")
