"""Every DAG file imports cleanly under real Airflow, declares owner, tags and retries, and parses light."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.airflow import ROOT, airflow_environment

pytestmark = pytest.mark.airflow

EXPECTED_DAGS = {
    "ingest_scenes",
    "ingest_dem",
    "build_composites",
    "build_training_set",
    "train_model",
    "retrain_on_alert",
    "publish_map",
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("af-integrity")
    proc = subprocess.run(  # noqa: PLW1510 - the caller inspects returncode
        [sys.executable, str(ROOT / "tests" / "dag_report.py"), str(ROOT / "dags")],
        env=airflow_environment(home),
        capture_output=True,
        text=True,
        timeout=600,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT")), None)
    assert line, f"dag report failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return dict(json.loads(line.removeprefix("REPORT")))


def test_no_import_errors(report: dict[str, Any]) -> None:
    assert report["import_errors"] == {}


def test_every_dag_file_defines_a_dag(report: dict[str, Any]) -> None:
    files = {p.name for p in (ROOT / "dags").glob("*.py")}
    with_dags = {d["file"] for d in report["dags"].values()}
    assert files == with_dags, f"files without a DAG: {files - with_dags}"
    assert set(report["dags"]) >= EXPECTED_DAGS, f"missing DAGs: {EXPECTED_DAGS - set(report['dags'])}"


@pytest.mark.parametrize("field", ["owners", "tags", "retries", "doc"])
def test_dag_metadata(report: dict[str, Any], field: str) -> None:
    for dag_id, dag in report["dags"].items():
        if field == "owners":
            assert dag["owners"] and "airflow" not in dag["owners"], f"{dag_id}: set a real owner"
        elif field == "tags":
            assert dag["tags"], f"{dag_id}: no tags"
        elif field == "retries":
            assert min(dag["retries"]) >= 1, f"{dag_id}: every task needs retries >= 1"
        else:
            assert dag["doc"], f"{dag_id}: needs doc_md or description"


def test_parse_is_light(report: dict[str, Any]) -> None:
    """Heavy libraries belong inside tasks: the scheduler re-parses these files every few seconds."""
    heavy = {f: r["heavy_imports"] for f, r in report["files"].items() if r["heavy_imports"]}
    assert heavy == {}, f"top-level heavy imports: {heavy}"


def test_dag_files_import_no_bentoml() -> None:
    for path in Path(ROOT / "dags").glob("*.py"):
        assert "bentoml" not in path.read_text(), f"{path.name} must not depend on bentoml"
