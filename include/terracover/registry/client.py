"""The registry object: one MLflow client for one tracking server, and every read of registered models.

Model ``landcover-{year}``; versions are found by alias (``champion``, ``challenger``, ``shadow``). Writes that
move an alias live in :mod:`terracover.registry.aliases`, logging a run in :mod:`terracover.registry.tracking`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from terracover.settings import Settings, redact_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from terracover.importance import FeatureImportance

CHAMPION = "champion"
CHALLENGER = "challenger"
SHADOW = "shadow"
MODEL_PREFIX = "landcover-"


def model_name(year: int) -> str:
    return f"{MODEL_PREFIX}{int(year)}"


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


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """Where a human opens the run: the MLflow UI for a server, the ``runs:/`` URI otherwise."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"{redact_uri(tracking_uri, keep_user=False).rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    return f"runs:/{run_id}"


class Registry:
    """The MLflow registry of one tracking server, through one client (like ``open_store``'s store)."""

    def __init__(self, settings: Settings) -> None:
        import mlflow

        self.settings = settings
        self.tracking_uri = settings.mlflow_tracking_uri
        self.ui_url = settings.mlflow_ui_url or settings.mlflow_tracking_uri  # where people open runs
        self.client: MlflowClient = mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def use_fluent_api(self) -> None:
        """Point MLflow's process-global fluent API (runs, ``log_model``, ``models:/`` loads) at this server.

        Only the operations that use that API call it, right before they do, so two registries in one process
        (tests, a migration) never send a run or a load to the other's server.
        """
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)

    # --- lookups -----------------------------------------------------------------------------------------

    def aliases(self, name: str) -> dict[str, str]:
        """alias -> version of a registered model; empty when the model does not exist yet."""
        from mlflow.exceptions import MlflowException

        try:
            return {str(k): str(v) for k, v in self.client.get_registered_model(name).aliases.items()}
        except MlflowException as e:
            if e.error_code == "RESOURCE_DOES_NOT_EXIST":
                return {}
            raise

    def _version(self, ref: ModelRef) -> ModelVersion:
        return self.client.get_model_version(ref.name, ref.version)

    def ref(self, name: str, version: str) -> ModelRef:
        mv = self.client.get_model_version(name, version)
        return ModelRef(name=name, version=str(mv.version), run_id=str(mv.run_id), year=int(name.rsplit("-", 1)[1]))

    def by_alias(self, year: int, alias: str) -> ModelRef | None:
        """The version holding ``alias`` for ``year``, or None."""
        version = self.aliases(model_name(year)).get(alias)
        return self.ref(model_name(year), version) if version else None

    def champion(self, year: int) -> ModelRef | None:
        return self.by_alias(year, CHAMPION)

    def served(self) -> dict[int, tuple[ModelRef, ModelRef | None]]:
        """year -> (champion, shadow) of every ``landcover-*`` model with a champion: one search call."""
        index: dict[int, tuple[ModelRef, ModelRef | None]] = {}
        for rm in self.client.search_registered_models(filter_string=f"name LIKE '{MODEL_PREFIX}%'"):
            year_part = rm.name.removeprefix(MODEL_PREFIX)
            aliases = dict(rm.aliases or {})
            if not year_part.isdigit() or CHAMPION not in aliases:
                continue
            shadow = self.ref(rm.name, aliases[SHADOW]) if SHADOW in aliases else None
            index[int(year_part)] = (self.ref(rm.name, aliases[CHAMPION]), shadow)
        return index

    def version_tags(self, ref: ModelRef) -> dict[str, str]:
        return dict(self._version(ref).tags)

    def created_at(self, ref: ModelRef) -> datetime:
        """When the version was registered (UTC)."""
        return datetime.fromtimestamp(int(self._version(ref).creation_timestamp) / 1000, UTC)

    def champion_dataset_uri(self, year: int) -> str | None:
        """The table the champion of ``year`` learned from (build_training_set merges it with new labels)."""
        ref = self.champion(year)
        return None if ref is None else self.version_tags(ref).get("dataset_uri")

    def run_metrics(self, ref: ModelRef) -> dict[str, float]:
        return dict(self.client.get_run(ref.run_id).data.metrics)

    def run_link(self, ref: ModelRef) -> str:
        """The MLflow UI page of the version's run."""
        run = self.client.get_run(ref.run_id)
        return run_url(self.ui_url, run.info.experiment_id, ref.run_id)

    def artifact_text(self, run_id: str, path: str) -> str | None:
        """The text of an artifact a run logged; None when the run has nothing at ``path``."""
        import tempfile
        from pathlib import Path

        import mlflow.artifacts
        from mlflow.exceptions import MlflowException

        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=path, dst_path=tmp, tracking_uri=self.tracking_uri
                )
            except (MlflowException, OSError):
                return None
            return Path(local).read_text()

    def importance(self, ref: ModelRef) -> FeatureImportance | None:
        """The permutation importance the version's run logged (None for runs logged without a table)."""
        import json

        from terracover.importance import ARTIFACT, FeatureImportance

        text = self.artifact_text(ref.run_id, ARTIFACT)
        return FeatureImportance.from_dict(json.loads(text)) if text else None

    # --- loading -----------------------------------------------------------------------------------------

    def load_model(self, year: int, alias: str = CHAMPION) -> LoadedModel:
        """The estimator holding ``alias`` for ``year``, with its feature order (serving's entry point)."""
        ref = self.by_alias(year, alias)
        if ref is None:
            raise LookupError(f"no {alias!r} model for {year}: train one (dag train_model) and approve it")
        return self.load_version(ref)

    def load_version(self, ref: ModelRef) -> LoadedModel:
        """One pinned version (by number, so a concurrent alias move cannot mix two versions' parts)."""
        import mlflow

        mv = self._version(ref)
        run = self.client.get_run(str(mv.run_id))
        self.use_fluent_api()
        return LoadedModel(
            name=ref.name,
            version=ref.version,
            run_id=str(mv.run_id),
            features=json.loads(run.data.params["features"]),
            estimator=mlflow.sklearn.load_model(ref.uri),
            dataset_sha256=mv.tags.get("dataset_sha256", ""),
            git_sha=mv.tags.get("git_sha", "unknown"),
        )

    # --- tags --------------------------------------------------------------------------------------------

    def set_tags(self, ref: ModelRef, tags: dict[str, str]) -> None:
        """Tags on a model version (lineage, approval and rejection records)."""
        for key, value in tags.items():
            self.client.set_model_version_tag(ref.name, ref.version, key, value)


def open_registry(settings: Settings) -> Registry:
    """The registry of ``settings.mlflow_tracking_uri``."""
    return Registry(settings)
