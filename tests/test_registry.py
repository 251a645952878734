"""MLflow registry against a real MLflow server: full lineage per run, the MLM item, champion comparison on
the same test rows, approval/rejection semantics, and that no code path sets champion without an approval."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from terracover import registry
from terracover.classes import CLASS_BY_CODE
from terracover.evaluate import evaluate_model
from terracover.settings import Settings, get_settings
from terracover.train import train

from tests.test_train import FEATURES, synthetic_table

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parent.parent
GIT_SHA = "0123456789abcdef0123456789abcdef01234567"
ALIASES = ROOT / "include" / "terracover" / "registry" / "aliases.py"  # the only module that may move an alias


@pytest.fixture(scope="module")
def mlflow_env(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings pointing at the real MLflow server, an embedded catalog in a temp home, a pinned git SHA."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TERRACOVER_HOME", str(tmp_path_factory.mktemp("tc-registry")))
        mp.setenv("TERRACOVER_MLFLOW_TRACKING_URI", mlflow_server)
        mp.setenv("TERRACOVER_GIT_SHA", GIT_SHA)
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        get_settings.cache_clear()
        yield get_settings()
    get_settings.cache_clear()


def register(table: pd.DataFrame, year: int, s: Settings, config: str = "rf_fast", seed: int = 1) -> registry.ModelRef:
    trained = train(table, config, seed=seed)
    ev = evaluate_model(trained.estimator, table, trained.features)
    return registry.log_and_register(
        registry.open_registry(s),
        trained,
        ev,
        table_uri=f"{s.store_uri}/datasets/{year}/abc.parquet",
        dataset_sha256="abc" * 21 + "a",
        year=year,
        dag_run_id="manual__2024-01-15",
        table=table,
    )


def hitl_response(choice: str = "Approve", name: str | None = "alice") -> dict[str, Any]:
    """What the ApprovalOperator returns to XCom after a human answers."""
    return {
        "chosen_options": [choice],
        "params_input": {},
        "responded_by_user": {"id": name, "name": name} if name else None,
        "responded_at": datetime(2024, 1, 16, 9, 30, tzinfo=UTC),
    }


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return synthetic_table()


@pytest.fixture(scope="module")
def lineage_ref(mlflow_env: Settings, table: pd.DataFrame) -> registry.ModelRef:
    return register(table, 2020, mlflow_env, config="rf_full")


def test_run_logs_every_param_metric_and_tag(mlflow_env: Settings, lineage_ref: registry.ModelRef) -> None:
    mc = registry.open_registry(mlflow_env).client
    run = mc.get_run(lineage_ref.run_id)
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["model_type"] == "rf_full" and params["estimator_class"] == "RandomForestClassifier"
    assert json.loads(params["features"]) == FEATURES
    assert params["seed"] == "1" and params["hp_n_estimators"] == "100" and params["hp_max_depth"] == "None"
    class_names = {CLASS_BY_CODE[c].name for c in range(1, 7)}
    assert {"overall_accuracy", "kappa", "macro_f1", "throughput_pixels_per_s"} <= set(metrics)
    assert {f"f1_{n}" for n in class_names} <= set(metrics)
    assert metrics["kappa"] > 0.2 and metrics["throughput_pixels_per_s"] > 1000
    version_tags = mc.get_model_version(lineage_ref.name, lineage_ref.version).tags
    for t in (tags, version_tags):
        assert t["git_sha"] == GIT_SHA
        assert t["dataset_sha256"] == "abc" * 21 + "a"
        assert t["dataset_uri"].endswith("datasets/2020/abc.parquet")
        assert t["airflow_dag_run_id"] == "manual__2024-01-15"
    assert lineage_ref.name == "landcover-2020"


def test_run_logs_every_artifact(
    mlflow_env: Settings, lineage_ref: registry.ModelRef, table: pd.DataFrame, tmp_path: Path
) -> None:
    import mlflow

    mc = registry.open_registry(mlflow_env).client
    files = {
        a.path for d in ("data", "evaluation", "environment", "stac") for a in mc.list_artifacts(lineage_ref.run_id, d)
    }
    assert files == {
        "data/dataset.json",
        "data/test.parquet",
        "evaluation/confusion_matrix.png",
        "evaluation/confusion_matrix.csv",
        "evaluation/confusion_matrix.md",
        "evaluation/per_class.csv",
        "evaluation/accuracy_sample.json",
        "environment/requirements.txt",
        "stac/item.json",
    }
    local = Path(mlflow.artifacts.download_artifacts(run_id=lineage_ref.run_id, dst_path=str(tmp_path)))
    dataset = json.loads((local / "data" / "dataset.json").read_text())
    assert dataset["sha256"] == "abc" * 21 + "a" and dataset["n_test"] == (table["split"] == "test").sum()
    assert len(dataset["train_point_ids_sha256"]) == 64
    assert (local / "evaluation" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    sample = json.loads((local / "evaluation" / "accuracy_sample.json").read_text())
    assert sample["kind"] == "held_out_test_points" and sum(map(sum, sample["error_matrix"])) == dataset["n_test"]
    reqs = (local / "environment" / "requirements.txt").read_text()
    assert "scikit-learn==" in reqs and "skops==" in reqs
    assert len(pd.read_parquet(local / "data" / "test.parquet")) == dataset["n_test"]


def test_model_has_signature_example_and_explicit_requirements(
    mlflow_env: Settings, lineage_ref: registry.ModelRef
) -> None:
    from mlflow.models import get_model_info

    info = get_model_info(lineage_ref.uri)
    assert info.signature.inputs.input_names() == FEATURES
    assert info.saved_input_example_info is not None
    assert info.flavors["sklearn"]["serialization_format"] == "skops"


def test_load_model_roundtrip_predicts_like_the_trained_model(mlflow_env: Settings, table: pd.DataFrame) -> None:
    trained = train(table, "lgbm", seed=3)
    ev = evaluate_model(trained.estimator, table, trained.features)
    reg = registry.open_registry(mlflow_env)
    ref = registry.log_and_register(
        reg,
        trained,
        ev,
        table_uri="datasets/2021/x.parquet",
        dataset_sha256="x",
        year=2021,
        dag_run_id=None,
    )
    registry.approve(reg, ref, registry.Approval.from_hitl_response(hitl_response()))
    loaded = reg.load_model(2021)
    assert (loaded.name, loaded.version, loaded.run_id) == (ref.name, ref.version, ref.run_id)
    assert loaded.features == FEATURES and loaded.git_sha == GIT_SHA and loaded.dataset_sha256 == "x"
    x = table[FEATURES].to_numpy(np.float32)[:500]
    np.testing.assert_allclose(loaded.estimator.predict_proba(x), trained.estimator.predict_proba(x), rtol=1e-6)
    assert list(loaded.estimator.classes_) == trained.classes
    with pytest.raises(LookupError, match="no 'shadow' model for 2021"):
        reg.load_model(2021, "shadow")


def test_mlm_item_validates_and_is_in_the_catalog(mlflow_env: Settings, lineage_ref: registry.ModelRef) -> None:
    import mlflow
    import pystac
    from stac_model.schema import SCHEMA_URI
    from terracover import mlm
    from terracover.catalog import MODELS_COLLECTION, open_catalog

    raw = mlflow.artifacts.load_text(f"runs:/{lineage_ref.run_id}/stac/item.json")
    item = pystac.Item.from_dict(json.loads(raw))
    mlm.validate_item(item)
    props = item.properties
    assert SCHEMA_URI in item.stac_extensions
    assert props["mlm:tasks"] == ["semantic-segmentation"] and props["mlm:framework"] == "scikit-learn"
    assert props["mlm:accelerator"] == "cpu" and props["mlm:total_parameters"] > 100
    assert props["mlm:input"][0]["bands"] == FEATURES
    assert props["mlm:input"][0]["input"]["shape"] == [-1, len(FEATURES)]
    classes = props["mlm:output"][0]["classification:classes"]
    assert [(c["value"], c["name"], c["color_hint"]) for c in classes] == [
        (c, CLASS_BY_CODE[c].name, CLASS_BY_CODE[c].colour.lstrip("#")) for c in range(1, 7)
    ]
    assert item.assets["model"].href == lineage_ref.uri
    assert any(link.rel == "via" and lineage_ref.run_id in link.href for link in item.links)
    stored = open_catalog(mlflow_env).get_item(MODELS_COLLECTION, item.id)
    assert stored is not None and stored.properties["terracover:model_version"] == lineage_ref.version

    broken = item.clone()
    broken.properties["mlm:input"][0]["input"]["dim_order"] = ["batch"]  # shape has two dims
    with pytest.raises(ValueError, match="Dimension order and shape"):
        mlm.validate_item(broken)


def test_compare_rules() -> None:
    first = registry.compare({"kappa": 0.5}, None, "kappa", 0.02)
    assert first.better and first.champion is None
    assert registry.compare({"kappa": 0.80}, {"kappa": 0.70}, "kappa", 0.05).better
    tie = registry.compare({"kappa": 0.74}, {"kappa": 0.70}, "kappa", 0.05)
    assert not tie.better and "does not beat" in tie.reason
    assert not registry.compare({"kappa": 0.69}, {"kappa": 0.70}, "kappa", 0.0).better
    assert registry.compare({"macro_f1": 0.9, "kappa": 0.1}, {"macro_f1": 0.8, "kappa": 0.9}, "macro_f1", 0).better
    with pytest.raises(KeyError, match="no metric 'kappa'"):
        registry.compare({"overall_accuracy": 0.9}, None, "kappa", 0)


def test_champion_is_rescored_on_the_challengers_test_split(mlflow_env: Settings, table: pd.DataFrame) -> None:
    ref = register(table, 2022, mlflow_env)
    reg = registry.open_registry(mlflow_env)
    registry.approve(reg, ref, registry.Approval.from_hitl_response(hitl_response()))
    new_table = synthetic_table(seed=0, n=2400)  # same classes and features, more points, new split
    score = registry.score_champion(reg, 2022, new_table)
    assert score is not None and score.ref == ref and score.same_test_set
    assert score.evaluation is not None
    assert score.evaluation.n_test == (new_table["split"] == "test").sum()
    expected = evaluate_model(reg.load_model(2022).estimator, new_table, FEATURES)
    assert score.metrics["kappa"] == pytest.approx(expected.kappa)
    assert score.dataset_uri.endswith("datasets/2022/abc.parquet")
    assert reg.champion_dataset_uri(2022) == score.dataset_uri
    assert registry.score_champion(reg, 1999, new_table) is None
    assert reg.champion_dataset_uri(1999) is None

    narrowed = new_table.drop(columns=["dem"])
    fallback = registry.score_champion(reg, 2022, narrowed)
    assert fallback is not None and not fallback.same_test_set and fallback.evaluation is None
    assert "kappa" in fallback.metrics


def test_approve_reject_and_shadow(mlflow_env: Settings, table: pd.DataFrame) -> None:
    year = 2017  # a year no other test registers on the shared MLflow server
    first = register(table, year, mlflow_env)
    reg = registry.open_registry(mlflow_env)
    registry.set_challenger(reg, first)
    assert reg.by_alias(year, "challenger") == first
    assert reg.champion(year) is None, "challenger alone must not serve"

    assert registry.approve(reg, first, registry.Approval.from_hitl_response(hitl_response(name="alice"))) == "champion"
    assert reg.champion(year) == first
    assert reg.by_alias(year, "challenger") is None
    tags = reg.version_tags(first)
    assert tags["approved_by"] == "alice" and tags["approved_at"].startswith("2024-01-16T09:30")

    second = register(table, year, mlflow_env, seed=2)
    registry.set_challenger(reg, second)
    registry.reject(reg, second, "bob", "worse on wetlands")
    assert reg.champion(year) == first, "rejection must leave the champion untouched"
    assert reg.by_alias(year, "challenger") is None
    rejected = reg.version_tags(second)
    assert rejected["rejected"] == "true" and rejected["rejected_by"] == "bob" and "rejected_at" in rejected
    assert "approved_by" not in rejected

    third = register(table, year, mlflow_env, seed=3)
    assert (
        registry.approve(
            reg,
            third,
            registry.Approval.from_hitl_response(hitl_response(name="carol")),
            shadow=True,
        )
        == "shadow"
    )
    assert reg.by_alias(year, "shadow") == third
    assert reg.champion(year) == first, "shadow-first approval must not move champion"


def test_an_approval_comes_only_from_a_human_response() -> None:
    with pytest.raises(TypeError, match="from_hitl_response"):
        registry.Approval(approved_by="mallory", approved_at=datetime.now(UTC))
    with pytest.raises(ValueError, match="not \\['Approve'\\]"):
        registry.Approval.from_hitl_response(hitl_response("Reject"))
    with pytest.raises(ValueError, match="names no responder"):
        registry.Approval.from_hitl_response(hitl_response(name=None))
    ok = registry.Approval.from_hitl_response({**hitl_response(), "responded_at": "2024-01-16T09:30:00+00:00"})
    assert ok.approved_by == "alice" and ok.approved_at.year == 2024
    with pytest.raises(TypeError, match="needs an Approval"):
        registry.approve(None, registry.ModelRef("landcover-2023", "1", "r", 2023), "alice")  # type: ignore[arg-type]


def _calls(tree: ast.AST) -> list[tuple[str, ast.Call]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            out.append((f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", ""), node))
    return out


def test_no_code_path_moves_an_alias_except_registry_set_challenger_and_approve() -> None:
    """Structural guard: the MLflow alias setter is called once, inside registry.aliases._set_alias; _set_alias is
    called only by set_challenger (with CHALLENGER) and approve (after checking the Approval)."""
    offenders = []
    for path in [
        *ROOT.glob("include/**/*.py"),
        *ROOT.glob("dags/*.py"),
        *ROOT.glob("plugins/**/*.py"),
        *ROOT.glob("scripts/*.py"),
    ]:
        if path == ALIASES:
            continue
        text = path.read_text()
        if "set_registered_model_alias" in text or "_set_alias" in text or "transition_model_version_stage" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []

    tree = ast.parse(ALIASES.read_text())
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    setters = [name for name, fn in functions.items() if any(c == "set_registered_model_alias" for c, _ in _calls(fn))]
    assert setters == ["_set_alias"]
    callers = {name: [call for c, call in _calls(fn) if c == "_set_alias"] for name, fn in functions.items()}
    callers = {k: v for k, v in callers.items() if v}
    assert set(callers) == {"set_challenger", "approve"}
    assert ast.unparse(callers["set_challenger"][0].args[2]) == "CHALLENGER"
    approve_src = ast.unparse(functions["approve"])
    assert approve_src.index("isinstance(approval, Approval)") < approve_src.index("_set_alias(")


def test_embedded_sqlite_store_keeps_artifacts_under_home(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With the default SQLite tracking store, nothing lands in ./mlruns of the working directory."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    ref = register(synthetic_table(n=600), 2016, settings)
    assert settings.mlflow_tracking_uri.startswith("sqlite:")
    assert not (cwd / "mlruns").exists()
    assert any((settings.home / "mlartifacts").rglob("MLmodel"))
    assert registry.open_registry(settings).load_version(ref).features


def test_permutation_importance_is_logged_and_summarised_for_approval(
    mlflow_env: Settings, lineage_ref: registry.ModelRef, table: pd.DataFrame
) -> None:
    reg = registry.open_registry(mlflow_env)
    metrics = reg.run_metrics(lineage_ref)
    assert {f"importance_{f}" for f in FEATURES} <= set(metrics)
    imp = reg.importance(lineage_ref)
    assert imp is not None and sorted(imp.features) == sorted(FEATURES) and imp.ranked()[0][1] > 0
    loaded = reg.load_version(lineage_ref)
    ev = evaluate_model(loaded.estimator, table, loaded.features)
    md = registry.approval_markdown(
        lineage_ref,
        ev,
        registry.compare(ev.metrics(), None, "kappa", 0.0),
        champ=None,
        data_added="-",
        link="http://mlflow/run",
        throughput=1.0,
        importance=imp,
    )
    assert "What the model relies on" in md and f"| {imp.ranked()[0][0]} |" in md
