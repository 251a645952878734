"""train_model under real Airflow and a real MLflow server: the run blocks at the ApprovalOperator, a human's
answer arrives through Airflow's REST API, and the champion alias moves (approve) or stays (reject)."""

from __future__ import annotations

import hashlib
import io
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from terracover.settings import Settings, get_settings

from tests.fixtures.airflow import AirflowEnv
from tests.fixtures.airflow_api import AirflowApi
from tests.fixtures.procs import free_port, terracover_env
from tests.test_train import synthetic_table

pytestmark = [pytest.mark.airflow, pytest.mark.services]

YEAR = 2019  # distinct from the years tests/test_registry.py uses on the same MLflow server


@pytest.fixture(scope="module")
def env(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """TERRACOVER_* for the DAG runs (and this process); serving points at a closed port on purpose."""
    home = tmp_path_factory.mktemp("tc-train-dag")
    values = {
        "TERRACOVER_HOME": str(home),
        "TERRACOVER_MLFLOW_TRACKING_URI": mlflow_server,
        "TERRACOVER_GIT_SHA": "feedface" * 5,
        "TERRACOVER_SERVING_URL": f"http://127.0.0.1:{free_port()}",
        "TERRACOVER_MIN_MARGIN": "0.0",
    }
    with terracover_env(values):
        yield values


def publish_table(s: Settings, table: pd.DataFrame) -> str:
    """Write a table the way build_training_set does: ``datasets/{year}/{sha256}.parquet``."""
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    path = Path(s.store_uri) / "datasets" / str(YEAR) / f"{sha}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return str(path)


def run_until_answered(
    airflow: AirflowEnv, api: AirflowApi, env: dict[str, str], conf: dict[str, Any], option: str
) -> tuple[dict[str, Any], str]:
    """Start ``dags test``, answer its approval request through the REST API, wait for the run to finish."""
    with ThreadPoolExecutor(1) as pool:
        run: Future[subprocess.CompletedProcess[str]] = pool.submit(
            airflow.dags_test, "train_model", conf=conf, extra_env=env
        )
        try:
            detail = api.wait_for_hitl("train_model", alive=lambda: not run.done())
        except AssertionError:
            run.result()  # raises with the run's log when the run failed before asking
            raise
        answer = api.respond(detail, option)
        proc = run.result(timeout=600)
    return {"detail": detail, "answer": answer}, proc.stdout + proc.stderr


def test_approve_moves_champion_then_reject_leaves_it(
    airflow: AirflowEnv, airflow_api: AirflowApi, env: dict[str, str]
) -> None:
    from terracover import registry

    s = get_settings()
    reg = registry.open_registry(s)
    assert reg.champion(YEAR) is None

    # 1) first model of the year: no champion, still needs a human. Newest table is found by the DAG itself.
    publish_table(s, synthetic_table(n=1500, seed=11, year=YEAR))
    first, log = run_until_answered(airflow, airflow_api, env, {"year": YEAR, "config": "rf_fast"}, "Approve")
    body = first["detail"]["body"]
    assert "no champion yet" in body and "Confusion matrix, challenger" in body and "MLflow run" in body
    assert first["detail"]["subject"].startswith(f"Promote landcover-{YEAR} version 1")
    champ = reg.champion(YEAR)
    assert champ is not None and champ.version == "1"
    tags = reg.version_tags(champ)
    assert tags["approved_by"] == first["answer"]["responded_by"]["name"] and tags["approved_at"]
    assert tags["airflow_dag_run_id"] == first["detail"]["task_instance"]["dag_run_id"]
    assert "could not notify serving" in log, "an unreachable service must only warn"
    assert reg.champion_dataset_uri(YEAR) == tags["dataset_uri"]

    # 2) a new dataset (other feature/class relation: the champion is poor on it): the challenger wins the
    #    comparison on the new test split, a human rejects it, the champion stays.
    uri = publish_table(s, synthetic_table(n=1500, seed=12, year=YEAR, separation=1.5))
    second, _ = run_until_answered(
        airflow, airflow_api, env, {"year": YEAR, "config": "mlp", "dataset_uri": uri}, "Reject"
    )
    body = second["detail"]["body"]
    assert "beats champion" in body and "Confusion matrix, champion v1" in body
    assert "added since the champion's dataset: 1500 points" in body
    after = reg.champion(YEAR)
    assert after == champ, "a rejection must leave the champion untouched"
    rejected = reg.version_tags(registry.ModelRef(champ.name, "2", "", YEAR))
    assert rejected["rejected"] == "true" and rejected["rejected_by"] == second["answer"]["responded_by"]["name"]
    assert "approved_by" not in rejected
    assert reg.by_alias(YEAR, "challenger") is None
