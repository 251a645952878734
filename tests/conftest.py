"""Shared fixtures. Real services (PostgreSQL+pgSTAC, S3 API, MLflow, Prometheus, ...) live in tests/fixtures/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from terracover.settings import Settings, get_settings

pytest_plugins = [
    "tests.fixtures.s3",
    "tests.fixtures.postgres",
    "tests.fixtures.stac_api",
    "tests.fixtures.airflow",
    "tests.fixtures.dataplane",
    "tests.fixtures.mlflow_server",
    "tests.fixtures.prometheus",
    "tests.fixtures.airflow_api",
    "tests.fixtures.serving",
]

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Embedded-default settings rooted in a fresh temporary folder (whatever TERRACOVER_* a session-scoped
    fixture exported for its services is hidden for the test)."""
    for key in [k for k in os.environ if k.startswith("TERRACOVER_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("TERRACOVER_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not found at {SHARED_DATA}")
    return SHARED_DATA
