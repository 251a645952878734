"""The model-plane steps without Airflow, against a real MLflow server: what train_model's tasks do, as plain
JSON-in/JSON-out calls (tests/test_train_model_dag.py runs the same steps under a real scheduler)."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pandas as pd
import pytest
from pydantic import SecretStr
from terracover import model_plane, registry
from terracover.keys import dataset_key
from terracover.settings import Settings, get_settings
from terracover.store import open_store

from tests.fixtures.procs import free_port, terracover_env
from tests.test_train import synthetic_table

pytestmark = pytest.mark.services

YEAR = 2018  # a year no other test registers on the shared MLflow server
TOKEN = "model-plane-test-token"


@pytest.fixture(scope="module")
def env(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    values = {
        "TERRACOVER_HOME": str(tmp_path_factory.mktemp("tc-model-plane")),
        "TERRACOVER_MLFLOW_TRACKING_URI": mlflow_server,
        "TERRACOVER_GIT_SHA": "c0ffee" * 6 + "c0ff",
        "TERRACOVER_RELOAD_TOKEN": TOKEN,
        "TERRACOVER_MIN_MARGIN": "0.0",
    }
    with terracover_env(values):
        yield get_settings()


def publish(s: Settings, table: pd.DataFrame) -> str:
    """Store a table under its content hash, as build_training_set does; returns its URI."""
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    key = dataset_key(YEAR, hashlib.sha256(buf.getvalue()).hexdigest())
    store = open_store(s)
    store.put_bytes(key, buf.getvalue())
    return store.uri(key)


def response(choice: str, name: str) -> dict[str, Any]:
    return {
        "chosen_options": [choice],
        "responded_by_user": {"id": name, "name": name},
        "responded_at": datetime(2024, 2, 1, 8, 0, tzinfo=UTC).isoformat(),
    }


def test_train_compare_approve_then_reject(env: Settings) -> None:
    reg = registry.open_registry(env)
    publish(env, synthetic_table(n=1200, seed=21, year=YEAR))

    first = model_plane.train_and_register(YEAR, None, "rf_fast", dag_run_id="steps-1")
    assert json.loads(json.dumps(first)) == first, "a step's result must survive XCom (JSON)"
    assert first["ref"]["name"] == f"landcover-{YEAR}" and first["ref"]["version"] == "1"
    assert first["dataset_uri"].endswith(".parquet") and first["metrics"]["kappa"] > 0.2

    comparison = model_plane.compare_with_champion(first)
    assert comparison["better"] and comparison["reason"] == "no champion yet"
    assert "Confusion matrix, challenger" in comparison["markdown"]
    assert reg.by_alias(YEAR, "challenger") == registry.ModelRef(**first["ref"])

    assert not model_plane.record_rejection(first, response("Approve", "dana"))
    assert model_plane.promote(first, response("Approve", "dana")) == "champion"
    champion = reg.champion(YEAR)
    assert champion == registry.ModelRef(**first["ref"])
    assert reg.version_tags(champion)["approved_by"] == "dana"

    uri = publish(env, synthetic_table(n=1200, seed=22, year=YEAR, separation=1.5))
    second = model_plane.train_and_register(YEAR, uri, "mlp", dag_run_id="steps-2")
    assert second["dataset_uri"] == uri
    comparison = model_plane.compare_with_champion(second)
    assert "Confusion matrix, champion v1" in comparison["markdown"]
    assert "added since the champion's dataset: 1200 points" in comparison["markdown"]
    assert model_plane.record_rejection(second, response("Reject", "erin"))
    assert reg.champion(YEAR) == champion, "a rejection must leave the champion untouched"
    tags = reg.version_tags(registry.ModelRef(**second["ref"]))
    assert tags["rejected"] == "true" and tags["rejected_by"] == "erin"
    with pytest.raises(ValueError, match="not \\['Approve'\\]"):
        model_plane.promote(second, response("Reject", "erin"))


class _Reload(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_POST(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        body = b'{"reloaded": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_notify_serving_posts_the_reload_token_and_survives_a_dead_service(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Reload)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        live = settings.model_copy(
            update={"serving_url": f"http://127.0.0.1:{server.server_port}", "reload_token": SecretStr(TOKEN)}
        )
        assert model_plane.notify_serving("champion", live)
        assert _Reload.seen == [("/admin/reload", f"Bearer {TOKEN}")]
    finally:
        server.shutdown()
        server.server_close()
    dead = settings.model_copy(update={"serving_url": f"http://127.0.0.1:{free_port()}"})
    with caplog.at_level("WARNING", logger="terracover"):
        assert not model_plane.notify_serving("champion", dead)
    assert "could not notify serving" in caplog.text
