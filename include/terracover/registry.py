"""MLflow registry with full lineage: one registered model ``landcover-{year}``, versions moved by aliases.

Aliases: ``challenger`` (trained, beats the champion, waiting for a human), ``champion`` (served), ``shadow``
(served alongside, answers logged). Promotion rule: no version becomes ``champion`` or ``shadow`` without a
recorded human approval. :func:`approve` is the only code that sets those aliases and it takes an
:class:`Approval`, which can only be made from a human-in-the-loop response naming the person who approved;
it writes ``approved_by``/``approved_at`` before it moves the alias. tests/test_registry.py checks that no
other code in the project sets a registry alias.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from terracover.evaluate import Evaluation, evaluate_model
from terracover.settings import Settings, get_settings
from terracover.train import TrainedModel

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
SHADOW = "shadow"
APPROVE_OPTION = "Approve"  # the ApprovalOperator's option text


def model_name(year: int) -> str:
    return f"landcover-{int(year)}"


@dataclass(frozen=True)
class ModelRef:
    """One registered model version; JSON-friendly (``asdict``/``ModelRef(**d)``) for Airflow XCom."""

    name: str
    version: str
    run_id: str
    year: int

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class LoadedModel:
    """What serving needs of a model version: the estimator and the feature order it consumes."""

    name: str
    version: str
    run_id: str
    features: list[str]
    estimator: Any
    dataset_sha256: str
    git_sha: str


@dataclass(frozen=True)
class Comparison:
    """Challenger vs champion on one metric; ``better`` decides whether a human is asked at all."""

    better: bool
    primary_metric: str
    challenger: float
    champion: float | None
    min_margin: float
    reason: str


@dataclass(frozen=True)
class ChampionScore:
    """The current champion scored for a comparison, preferably re-scored on the challenger's test split."""

    ref: ModelRef
    metrics: dict[str, float]
    evaluation: Evaluation | None  # None when the champion could not be re-scored (see score_champion)
    same_test_set: bool
    dataset_uri: str


_FROM_HITL = object()


@dataclass(frozen=True)
class Approval:
    """A human's recorded "Approve": the one key that lets :func:`approve` set ``champion`` or ``shadow``.

    Build it with :meth:`from_hitl_response`; direct construction raises, so no code path can promote a
    model without an answer from the approval task that names who gave it.
    """

    approved_by: str
    approved_at: datetime
    _origin: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._origin is not _FROM_HITL:
            raise TypeError("an Approval is made only by Approval.from_hitl_response(<ApprovalOperator result>)")

    @classmethod
    def from_hitl_response(cls, response: Mapping[str, Any]) -> Approval:
        """From an ApprovalOperator result (``chosen_options``, ``responded_by_user``, ``responded_at``)."""
        chosen = list(response.get("chosen_options") or [])
        if chosen != [APPROVE_OPTION]:
            raise ValueError(f"the human response chose {chosen}, not [{APPROVE_OPTION!r}]: nothing to approve")
        who = responder(response)
        if not who:
            raise ValueError("the response names no responder (timed-out default?): a promotion needs a person")
        at = response.get("responded_at")
        when = datetime.fromisoformat(at) if isinstance(at, str) else at
        if not isinstance(when, datetime):
            raise ValueError("the response has no responded_at timestamp")
        return cls(approved_by=who, approved_at=when, _origin=_FROM_HITL)


def responder(response: Mapping[str, Any]) -> str:
    """Who answered a human-in-the-loop request (``responded_by_user`` name, else id; "" when nobody did)."""
    user = response.get("responded_by_user") or {}
    return str(user.get("name") or user.get("id") or "")


def client(settings: Settings | None = None) -> MlflowClient:
    """An MLflow client for the configured server; also points the fluent API (runs, log_model) at it."""
    import mlflow

    uri = (settings or get_settings()).mlflow_tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _ensure_experiment(mc: MlflowClient, name: str, s: Settings) -> None:
    """Create the year's experiment; with a local (SQLite/file) store its artifacts go under ``home``, not
    into MLflow's default ``./mlruns`` of whatever directory the process happens to run in."""
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


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """Where a human opens the run: the MLflow UI for a server, the ``runs:/`` URI otherwise."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    return f"runs:/{run_id}"


def pip_requirements(trained: TrainedModel) -> list[str]:
    """Exact pins of what loading the model needs (explicit: MLflow's inference of these costs ~9 s)."""
    from importlib.metadata import version

    pkgs = ["scikit-learn", "skops", "numpy", "scipy"] + (["lightgbm"] if trained.config.family == "lightgbm" else [])
    return [f"{p}=={version(p)}" for p in pkgs]


def log_and_register(
    trained: TrainedModel,
    evaluation: Evaluation,
    *,
    table_uri: str,
    dataset_sha256: str,
    year: int,
    dag_run_id: str | None,
    settings: Settings | None = None,
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

    s = settings or get_settings()
    mc = client(s)
    name = model_name(year)
    _ensure_experiment(mc, name, s)
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
            run_link=run_url(s.mlflow_tracking_uri, run.info.experiment_id, run.info.run_id),
            bbox=_bbox(table),
            dataset_sha256=dataset_sha256,
        )
        mlm.validate_item(item)
        (out / "item.json").write_text(json.dumps(item.to_dict(), indent=2))
        mlflow.log_artifact(str(out / "item.json"), "stac")
        mlm.register_item(item, s)
    mc.set_model_version_tag(name, ref.version, "stac_item_id", item.id)
    log.info(
        "registered %s (run %s): %s",
        ref.uri,
        ref.run_id,
        {k: round(evaluation.metrics()[k], 4) for k in ("overall_accuracy", "kappa", "macro_f1")},
    )
    return ref


def _log_evaluation(evaluation: Evaluation, out: Path, title: str) -> None:
    import mlflow
    import pandas as pd

    from terracover.classes import class_name

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


def _aliases(mc: MlflowClient, name: str) -> dict[str, str]:
    """alias -> version of a registered model; empty when the model does not exist yet."""
    from mlflow.exceptions import MlflowException

    try:
        return {str(k): str(v) for k, v in mc.get_registered_model(name).aliases.items()}
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise


def _ref(mc: MlflowClient, name: str, version: str) -> ModelRef:
    mv = mc.get_model_version(name, version)
    return ModelRef(name=name, version=str(mv.version), run_id=str(mv.run_id), year=int(name.rsplit("-", 1)[1]))


def by_alias(year: int, alias: str, settings: Settings | None = None) -> ModelRef | None:
    """The version holding ``alias`` for ``year``, or None."""
    mc = client(settings)
    version = _aliases(mc, model_name(year)).get(alias)
    return _ref(mc, model_name(year), version) if version else None


def champion(year: int, settings: Settings | None = None) -> ModelRef | None:
    return by_alias(year, CHAMPION, settings)


def champion_dataset_uri(year: int, settings: Settings | None = None) -> str | None:
    """The table the champion of ``year`` learned from (build_training_set merges it with new labels)."""
    mc = client(settings)
    ref = champion(year, settings)
    if ref is None:
        return None
    return mc.get_model_version(ref.name, ref.version).tags.get("dataset_uri")


def version_tags(ref: ModelRef, settings: Settings | None = None) -> dict[str, str]:
    return dict(client(settings).get_model_version(ref.name, ref.version).tags)


def run_metrics(ref: ModelRef, settings: Settings | None = None) -> dict[str, float]:
    return dict(client(settings).get_run(ref.run_id).data.metrics)


def load_model(year: int, alias: str = CHAMPION, settings: Settings | None = None) -> LoadedModel:
    """The estimator holding ``alias`` for ``year``, with its feature order (serving's entry point)."""
    ref = by_alias(year, alias, settings)
    if ref is None:
        raise LookupError(f"no {alias!r} model for {year}: train one (dag train_model) and approve it")
    return load_version(ref, settings)


def load_version(ref: ModelRef, settings: Settings | None = None) -> LoadedModel:
    """One pinned version (by number, so a concurrent alias move cannot mix two versions' parts)."""
    import mlflow

    mc = client(settings)
    mv = mc.get_model_version(ref.name, ref.version)
    run = mc.get_run(str(mv.run_id))
    return LoadedModel(
        name=ref.name,
        version=ref.version,
        run_id=str(mv.run_id),
        features=json.loads(run.data.params["features"]),
        estimator=mlflow.sklearn.load_model(ref.uri),
        dataset_sha256=mv.tags.get("dataset_sha256", ""),
        git_sha=mv.tags.get("git_sha", "unknown"),
    )


def run_link(ref: ModelRef, settings: Settings | None = None) -> str:
    """The MLflow UI page of the version's run."""
    s = settings or get_settings()
    run = client(s).get_run(ref.run_id)
    return run_url(s.mlflow_tracking_uri, run.info.experiment_id, ref.run_id)


def score_champion(year: int, table: pd.DataFrame, settings: Settings | None = None) -> ChampionScore | None:
    """The champion's metrics on the CHALLENGER's test split (``table``'s ``split == "test"`` rows).

    Both models must be judged on the same rows, or a lucky test split decides a promotion. When the
    champion needs features the new table lacks, it cannot be re-scored: its logged metrics are returned
    with ``same_test_set=False`` and the approval request says so.
    """
    s = settings or get_settings()
    mc = client(s)
    ref = champion(year, s)
    if ref is None:
        return None
    dataset_uri = mc.get_model_version(ref.name, ref.version).tags.get("dataset_uri", "")
    loaded = load_model(year, CHAMPION, s)
    missing = [f for f in loaded.features if f not in table.columns]
    if missing:
        log.warning(
            "champion %s needs features %s absent from the new table: comparing logged metrics",
            ref.uri,
            missing,
        )
        return ChampionScore(ref, run_metrics(ref, s), None, same_test_set=False, dataset_uri=dataset_uri)
    evaluation = evaluate_model(loaded.estimator, table, loaded.features, split="test")
    return ChampionScore(ref, evaluation.metrics(), evaluation, same_test_set=True, dataset_uri=dataset_uri)


def compare(
    challenger_metrics: Mapping[str, float],
    champion_metrics: Mapping[str, float] | None,
    primary_metric: str,
    min_margin: float,
) -> Comparison:
    """Is the challenger better? It must beat the champion's ``primary_metric`` by more than ``min_margin``.

    With no champion any model is "better": a first model for a year still goes to a human for approval.
    """
    if primary_metric not in challenger_metrics:
        raise KeyError(f"challenger has no metric {primary_metric!r}; known: {sorted(challenger_metrics)}")
    new = float(challenger_metrics[primary_metric])
    if champion_metrics is None:
        return Comparison(True, primary_metric, new, None, min_margin, "no champion yet")
    if primary_metric not in champion_metrics:
        raise KeyError(f"champion has no metric {primary_metric!r}; known: {sorted(champion_metrics)}")
    old = float(champion_metrics[primary_metric])
    better = new - old > min_margin
    verb = "beats" if better else "does not beat"
    return Comparison(
        better,
        primary_metric,
        new,
        old,
        min_margin,
        f"challenger {primary_metric} {new:.4f} {verb} champion {old:.4f} by more than {min_margin}",
    )


def approval_markdown(
    ref: ModelRef,
    evaluation: Evaluation,
    comparison: Comparison,
    *,
    champ: ChampionScore | None,
    data_added: str,
    link: str,
    throughput: float,
) -> str:
    """The body of the approval request: what a reviewer needs to decide without leaving the Airflow UI."""
    head = f"champion v{champ.ref.version}" if champ else "champion"
    rows = [
        "overall_accuracy",
        "kappa",
        "macro_f1",
        *sorted(k for k in evaluation.metrics() if k.startswith("f1_")),
    ]
    new = evaluation.metrics()
    table = [f"| metric | challenger v{ref.version} | {head} |", "|---|---|---|"]
    for k in rows:
        old = champ.metrics.get(k) if champ else None
        table.append(f"| {k} | {new[k]:.4f} | {'-' if old is None else f'{old:.4f}'} |")
    table.append(f"| throughput (pixels/s) | {throughput:,.0f} | - |")
    if champ is None:
        basis = "First model for this year: there is no champion to compare with."
    elif champ.same_test_set:
        basis = f"Both models scored on the challenger's test split ({evaluation.n_test} points)."
    else:
        basis = "The champion needs features this dataset lacks: its own logged test metrics are shown."
    parts = [
        f"### {ref.name} version {ref.version}",
        f"**{comparison.reason}** (primary metric `{comparison.primary_metric}`, margin {comparison.min_margin}).",
        basis,
        "\n".join(table),
        "#### Data",
        data_added,
        "#### Confusion matrix, challenger (rows true, columns predicted)",
        evaluation.confusion_markdown(),
    ]
    if champ is not None and champ.evaluation is not None:
        parts.append(f"#### Confusion matrix, champion v{champ.ref.version}\n\n{champ.evaluation.confusion_markdown()}")
    parts.append(
        f"[MLflow run]({link}) · model `{ref.uri}` · majority-class accuracy {evaluation.majority_accuracy:.4f}"
    )
    return "\n\n".join(parts)


def set_challenger(ref: ModelRef, settings: Settings | None = None) -> None:
    """Mark ``ref`` as waiting for approval (the alias a reviewer can load and inspect)."""
    _set_alias(client(settings), ref, CHALLENGER)


def approve(ref: ModelRef, approval: Approval, shadow: bool = False, settings: Settings | None = None) -> str:
    """Promote ``ref`` to ``champion`` (or ``shadow``) on a human's :class:`Approval`; returns the alias set.

    The approval record (tags) is written before the alias moves, so a served version always has one.
    """
    if not isinstance(approval, Approval):
        raise TypeError("approve() needs an Approval made by Approval.from_hitl_response(...)")
    mc = client(settings)
    alias = SHADOW if shadow else CHAMPION
    for key, value in {
        "approved_by": approval.approved_by,
        "approved_at": approval.approved_at.isoformat(),
        "approved_as": alias,
    }.items():
        mc.set_model_version_tag(ref.name, ref.version, key, value)
    _set_alias(mc, ref, alias)
    if _aliases(mc, ref.name).get(CHALLENGER) == ref.version:
        mc.delete_registered_model_alias(ref.name, CHALLENGER)
    log.info("%s is now %s of %s (approved by %s)", ref.uri, alias, ref.year, approval.approved_by)
    return alias


def reject(ref: ModelRef, rejected_by: str, reason: str = "", settings: Settings | None = None) -> None:
    """Record a rejection on the version; the champion alias is not touched."""
    mc = client(settings)
    tags = {
        "rejected": "true",
        "rejected_by": rejected_by or "unknown",
        "rejected_at": datetime.now(UTC).isoformat(),
        "rejection_reason": reason or "-",
    }
    for key, value in tags.items():
        mc.set_model_version_tag(ref.name, ref.version, key, value)
    if _aliases(mc, ref.name).get(CHALLENGER) == ref.version:
        mc.delete_registered_model_alias(ref.name, CHALLENGER)
    log.info("%s rejected by %s: %s", ref.uri, rejected_by, reason)


def _set_alias(mc: MlflowClient, ref: ModelRef, alias: str) -> None:
    # The only call that moves an alias in the whole project (tests/test_registry.py enforces it).
    mc.set_registered_model_alias(ref.name, alias, ref.version)
