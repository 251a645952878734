"""Log a trained model as an MLflow run with full lineage, and register it as a version of ``landcover-{year}``.

The run holds params, metrics, evaluation artifacts, the test split, per-split point-id hashes, exact
requirements and the STAC MLM item; the version carries the lineage tags of docs/CONTRACTS.md.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from terracover.classes import class_name
from terracover.evaluate import Evaluation
from terracover.registry.client import ModelRef, Registry, model_name, run_url
from terracover.train import TrainedModel

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def _ensure_experiment(reg: Registry, name: str) -> None:
    """Create the year's experiment; with a local (SQLite/file) store its artifacts go under ``home``, not
    into MLflow's default ``./mlruns`` of whatever directory the process happens to run in."""
    mc, s = reg.client, reg.settings
    if mc.get_experiment_by_name(name) is not None:
        return
    local = not s.mlflow_tracking_uri.startswith(("http://", "https://", "databricks"))
    location = (s.home.expanduser().resolve() / "mlartifacts").as_uri() if local else None
    mc.create_experiment(name, artifact_location=location)


def git_sha() -> str:
    """The code version: ``TERRACOVER_GIT_SHA`` (images ship no .git), else ``git rev-parse HEAD``."""
    if sha := os.environ.get("TERRACOVER_GIT_SHA", "").strip():
        return sha
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else "unknown"


def pip_requirements(trained: TrainedModel) -> list[str]:
    """Exact pins of what loading the model needs (explicit: MLflow's inference of these costs ~9 s)."""
    from importlib.metadata import version

    pkgs = ["scikit-learn", "skops", "numpy", "scipy"] + (["lightgbm"] if trained.config.uses_lightgbm else [])
    return [f"{p}=={version(p)}" for p in pkgs]


def log_and_register(
    reg: Registry,
    trained: TrainedModel,
    evaluation: Evaluation,
    *,
    table_uri: str,
    dataset_sha256: str,
    year: int,
    dag_run_id: str | None,
    table: pd.DataFrame | None = None,
) -> ModelRef:
    """Log one trained model with its evaluation and lineage as an MLflow run and register it as a version.

    ``table`` (the training table) adds the test split and per-split point-id hashes as artifacts and the
    STAC MLM item's footprint; the table itself stays in the store, referenced by URI and content hash.
    """
    import mlflow
    import skops.io
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from terracover import accuracy, mlm

    name = model_name(year)
    _ensure_experiment(reg, name)
    reg.use_fluent_api()
    mlflow.set_experiment(name)
    lineage = {
        "git_sha": git_sha(),
        "dataset_sha256": dataset_sha256,
        "dataset_uri": table_uri,
        "airflow_dag_run_id": dag_run_id or "manual",
        "year": str(year),
        "model_type": trained.config.name,
    }
    with (
        mlflow.start_run(run_name=f"{name}-{trained.config.name}", tags=lineage) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        out = Path(tmp)
        mlflow.log_params({**trained.params(), "features": json.dumps(trained.features), "year": year})
        if trained.rfe_target:
            mlflow.log_param("rfe_candidate_features", json.dumps(trained.candidate_features))
        mlflow.log_metrics(
            {
                **evaluation.metrics(),
                "throughput_pixels_per_s": trained.throughput_pixels_per_s,
                "train_seconds": trained.train_seconds,
                "n_test": evaluation.n_test,
                "majority_class_accuracy": evaluation.majority_accuracy,
            }
        )
        _log_evaluation(evaluation, out, f"{name} {trained.config.name} (test split)")
        # the error matrix serving corrects mapped areas with (terracover.accuracy): logged with the model
        sample = accuracy.for_model(trained.estimator, evaluation, table, trained.features, table_uri, dataset_sha256)
        (out / "accuracy_sample.json").write_text(sample.to_json())
        mlflow.log_artifact(str(out / "accuracy_sample.json"), "evaluation")
        _log_importance(trained, table)
        record = {
            "uri": table_uri,
            "sha256": dataset_sha256,
            "n_train": trained.n_train,
            "n_test": evaluation.n_test,
        }
        _log_data_lineage(table, record, out)
        requirements = pip_requirements(trained)
        (out / "requirements.txt").write_text("\n".join(requirements) + "\n")
        mlflow.log_artifact(str(out / "requirements.txt"), "environment")

        signature = ModelSignature(
            inputs=Schema([ColSpec("float", f) for f in trained.features]),
            outputs=Schema([ColSpec("long", "class_code")]),
        )
        example = _input_example(table, trained.features)
        # skops refuses unknown types at load time: trust exactly the types of the estimator we just fitted.
        trusted = skops.io.get_untrusted_types(data=skops.io.dumps(trained.estimator))
        info = mlflow.sklearn.log_model(
            trained.estimator,
            name="model",
            signature=signature,
            input_example=example,
            pip_requirements=requirements,
            serialization_format="skops",
            skops_trusted_types=trusted,
        )
        version = mlflow.register_model(info.model_uri, name, tags=lineage)
        ref = ModelRef(name=name, version=str(version.version), run_id=run.info.run_id, year=int(year))

        item = mlm.build_item(
            trained,
            evaluation,
            name=ref.name,
            version=ref.version,
            run_id=ref.run_id,
            year=int(year),
            model_uri=ref.uri,
            run_link=run_url(reg.ui_url, run.info.experiment_id, run.info.run_id),
            bbox=_bbox(table),
            dataset_sha256=dataset_sha256,
        )
        mlm.validate_item(item)
        (out / "item.json").write_text(json.dumps(item.to_dict(), indent=2))
        mlflow.log_artifact(str(out / "item.json"), "stac")
        mlm.register_item(item, reg.settings)
    reg.set_tags(ref, {"stac_item_id": item.id})
    log.info(
        "registered %s (run %s): %s",
        ref.uri,
        ref.run_id,
        {k: round(evaluation.metrics()[k], 4) for k in ("overall_accuracy", "kappa", "macro_f1")},
    )
    return ref


def _log_importance(trained: TrainedModel, table: pd.DataFrame | None) -> None:
    """Permutation importance on the held-out split (terracover.importance): one metric per feature and the
    ranked table as an artifact, so the approval text can show what the model relies on."""
    import mlflow

    from terracover.importance import ARTIFACT, permutation_importance

    if table is None:
        return
    try:
        imp = permutation_importance(trained.estimator, table, trained.features, seed=trained.seed)
    except ValueError as exc:  # no held-out row the model can classify: nothing to measure on
        log.warning("no permutation importance for %s: %s", trained.config.name, exc)
        return
    mlflow.log_metrics(imp.metrics())
    mlflow.log_dict(imp.as_dict(), ARTIFACT)


def _log_evaluation(evaluation: Evaluation, out: Path, title: str) -> None:
    import mlflow
    import pandas as pd

    evaluation.save_confusion_png(out / "confusion_matrix.png", title)
    (out / "confusion_matrix.csv").write_text(evaluation.confusion_csv())
    (out / "confusion_matrix.md").write_text(evaluation.confusion_markdown() + "\n")

    per_class = pd.DataFrame(
        [{"class_code": c, "class": class_name(c), **asdict(s)} for c, s in evaluation.per_class.items()]
    )
    per_class.to_csv(out / "per_class.csv", index=False)
    for f in ("confusion_matrix.png", "confusion_matrix.csv", "confusion_matrix.md", "per_class.csv"):
        mlflow.log_artifact(str(out / f), "evaluation")


def _log_data_lineage(table: pd.DataFrame | None, record: dict[str, Any], out: Path) -> None:
    """``data/dataset.json`` (URI, hash, per-split sizes and point-id hashes) and the test split itself."""
    import hashlib

    import mlflow

    if table is not None:
        for split, rows in table.groupby("split"):
            ids = "\n".join(sorted(rows["point_id"].astype(str)))
            record[f"{split}_point_ids_sha256"] = hashlib.sha256(ids.encode()).hexdigest()
        test = table[table["split"] == "test"]
        test.to_parquet(out / "test.parquet", index=False)
        mlflow.log_artifact(str(out / "test.parquet"), "data")
    (out / "dataset.json").write_text(json.dumps(record, indent=2))
    mlflow.log_artifact(str(out / "dataset.json"), "data")


def _input_example(table: pd.DataFrame | None, features: list[str]) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    if table is not None:
        return table[features].head(5).astype(np.float32).reset_index(drop=True)
    return pd.DataFrame(np.zeros((1, len(features)), dtype=np.float32), columns=features)


def _bbox(table: pd.DataFrame | None) -> tuple[float, float, float, float] | None:
    if table is None or not {"lon", "lat"} <= set(table.columns) or table.empty:
        return None
    return (
        float(table["lon"].min()),
        float(table["lat"].min()),
        float(table["lon"].max()),
        float(table["lat"].max()),
    )
