"""Prometheus rules, their unit tests, the Prometheus and Alertmanager configs and the Grafana dashboard,
checked with the real tools (promtool, amtool)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from terracover import alert_rules
from terracover.settings import Settings

MON = Path(__file__).resolve().parent.parent / "include" / "monitoring"
RULES = MON / "rules" / "terracover.rules.yml"
# Metrics the service exports (docs/CONTRACTS.md) and BentoML's own.
EXPORTED = {
    "terracover_predictions_total",
    "terracover_prediction_confidence_sum",
    "terracover_prediction_confidence_count",
    "terracover_prediction_confidence_bucket",
    "terracover_prediction_seconds_bucket",
    "terracover_pixels_classified_total",
    "terracover_feature_drift_psi",
    "terracover_shadow_agreement_sum",
    "terracover_shadow_agreement_count",
    "terracover_models_loaded",
    "bentoml_service_request_total",
}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (make setup installs Debian's prometheus packages)")
    return path


def _run(*cmd: str, cwd: Path = MON) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_committed_rules_are_the_render_of_the_default_settings(settings: Settings) -> None:
    assert RULES.read_text() == alert_rules.render(settings), "run: python -m terracover.alert_rules > " + str(RULES)


def test_rules_check_and_unit_tests_pass() -> None:
    promtool = _tool("promtool")
    check = _run(promtool, "check", "rules", str(RULES))
    assert check.returncode == 0, check.stdout + check.stderr
    tests = _run(promtool, "test", "rules", "rules/terracover.rules.test.yml")
    assert tests.returncode == 0, tests.stdout + tests.stderr


def test_unit_tests_catch_a_broken_threshold(tmp_path: Path, settings: Settings) -> None:
    """The rule tests can fail: a threshold of 0.4 must not fire for 0.5 confidence."""
    promtool = _tool("promtool")
    broken = settings.model_copy(update={"confidence_threshold": 0.4})
    (tmp_path / "terracover.rules.yml").write_text(alert_rules.render(broken))
    shutil.copy(MON / "rules" / "terracover.rules.test.yml", tmp_path)
    result = _run(promtool, "test", "rules", "terracover.rules.test.yml", cwd=tmp_path)
    assert result.returncode != 0 and "TerracoverLowConfidence" in result.stdout + result.stderr


def test_rendered_thresholds_follow_settings(tmp_path: Path, settings: Settings) -> None:
    custom = settings.model_copy(update={"confidence_threshold": 0.7, "confidence_alert_for": "30m"})
    doc = yaml.safe_load(alert_rules.render(custom))
    (low,) = [r for g in doc["groups"] for r in g["rules"] if r.get("alert") == "TerracoverLowConfidence"]
    assert "< 0.7" in low["expr"] and low["for"] == "30m"
    path = tmp_path / "r.yml"
    path.write_text(alert_rules.render(custom))
    assert _run(_tool("promtool"), "check", "rules", str(path)).returncode == 0


def test_prometheus_and_alertmanager_configs_are_valid() -> None:
    config = _run(_tool("promtool"), "check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    am = _run(_tool("amtool"), "check-config", "alertmanager.yml")
    assert am.returncode == 0, am.stdout + am.stderr


def _metric_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', "", expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_strings)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_ranges))
    return {w for w in words if w.startswith(("terracover", "bentoml"))}


def test_dashboard_queries_only_exported_metrics_and_defined_rules() -> None:
    dash = json.loads((MON / "grafana" / "dashboards" / "terracover.json").read_text())
    recorded = {r["record"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "record" in r}
    assert dash["uid"] == "terracover" and dash["panels"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        assert panel["datasource"]["uid"] == "prometheus", panel["title"]
        for target in panel["targets"]:
            names = _metric_names(target["expr"])
            assert names, target["expr"]
            unknown = names - EXPORTED - recorded
            assert not unknown, (panel["title"], unknown)
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for topic in ("confidence", "latency", "drift", "replica", "shadow", "requests"):
        assert topic in titles


def test_alerts_use_defined_recording_rules() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    for rule in (r for g in groups for r in g["rules"] if "alert" in r):
        used = {n for n in _metric_names(rule["expr"]) if ":" in n}
        assert used <= recorded, (rule["alert"], used - recorded)
        assert rule["labels"]["severity"] and "runbook_url" in rule["annotations"]
