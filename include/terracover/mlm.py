"""STAC Machine Learning Model (MLM) items for registered model versions, built with ``stac-model``.

The item says what the model consumes (the ordered feature list, float32, no normalisation: scaling lives
in the estimator) and what it produces (the legend's classes with codes and colours), and links back to the
MLflow run and model version, so a catalog search finds which model made which map and from what.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from importlib.metadata import version as pkg_version
from typing import TYPE_CHECKING, Any

import pystac

from terracover.classes import CLASS_BY_CODE

if TYPE_CHECKING:
    from terracover.evaluate import Evaluation
    from terracover.settings import Settings
    from terracover.train import TrainedModel

TASK = "semantic-segmentation"


def total_parameters(estimator: Any) -> int | None:
    """Learned parameters: tree nodes for forests and boosted trees, weights for networks; None if unknown."""
    from sklearn.pipeline import Pipeline

    model = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    if hasattr(model, "estimators_"):  # forest
        return int(sum(t.tree_.node_count for t in model.estimators_))
    if hasattr(model, "booster_"):  # LightGBM: splits + leaves per tree
        return int(sum(2 * t["num_leaves"] - 1 for t in model.booster_.dump_model()["tree_info"]))
    if hasattr(model, "coefs_"):  # MLP
        return int(sum(w.size for w in model.coefs_) + sum(b.size for b in model.intercepts_))
    return None


def build_item(
    trained: TrainedModel,
    evaluation: Evaluation,
    *,
    name: str,
    version: str,
    run_id: str,
    year: int,
    model_uri: str,
    run_link: str,
    bbox: tuple[float, float, float, float] | None,
    dataset_sha256: str,
) -> pystac.Item:
    """The MLM item ``{name}-v{version}`` of ``terracover-models`` (footprint: the training points)."""
    from shapely.geometry import box, mapping
    from stac_model.input import InputStructure, ModelInput
    from stac_model.output import MLMClassification, ModelOutput, ModelResult
    from stac_model.schema import MLModelExtension, MLModelProperties

    from terracover.catalog import MODELS_COLLECTION

    west, south, east, north = bbox or (-180.0, -90.0, 180.0, 90.0)
    item = pystac.Item(
        id=f"{name}-v{version}",
        geometry=mapping(box(west, south, east, north)),
        bbox=[west, south, east, north],
        datetime=None,
        start_datetime=datetime(year, 1, 1, tzinfo=UTC),
        end_datetime=datetime(year, 12, 31, 23, 59, 59, tzinfo=UTC),
        properties={
            "description": f"Land-cover classifier for {year}: {trained.config.description}",
            "terracover:year": year,
            "terracover:model_name": name,
            "terracover:model_version": version,
            "terracover:run_id": run_id,
            "terracover:dataset_sha256": dataset_sha256,
            "terracover:metrics": {k: round(v, 6) for k, v in evaluation.metrics().items()},
            "terracover:throughput_pixels_per_s": round(trained.throughput_pixels_per_s, 1),
        },
        collection=MODELS_COLLECTION,
    )
    n = len(trained.features)
    classes = [CLASS_BY_CODE[c] for c in trained.classes if c in CLASS_BY_CODE]
    props = MLModelProperties(
        name=name,
        architecture=f"{type(trained.estimator).__name__} ({trained.config.name})",
        tasks={TASK},
        framework=trained.config.framework,
        framework_version=pkg_version(trained.config.framework),
        accelerator="cpu",
        accelerator_constrained=False,
        pretrained=False,
        total_parameters=total_parameters(trained.estimator),
        hyperparameters={k: list(v) if isinstance(v, tuple) else v for k, v in trained.config.hyperparameters.items()},
        input=[
            ModelInput(
                name="feature stack",
                bands=list(trained.features),
                value_scaling=None,
                input=InputStructure(shape=[-1, n], dim_order=["batch", "bands"], data_type="float32"),
            )
        ],
        output=[
            ModelOutput(
                name="land cover class probabilities",
                tasks={TASK},
                result=ModelResult(shape=[-1, len(trained.classes)], dim_order=["batch", "class"], data_type="float32"),
                classes=[
                    MLMClassification(value=c.code, name=c.name, color_hint=c.colour.lstrip("#")) for c in classes
                ],
            )
        ],
    )
    MLModelExtension.ext(item, add_if_missing=True).apply(props)
    item.add_asset(
        "model",
        pystac.Asset(
            href=model_uri,
            title=f"MLflow model version {version}",
            media_type="application/octet-stream; framework=scikit-learn; application=skops",
            roles=["mlm:model", "mlm:weights", "data"],
            extra_fields={"mlm:artifact_type": "mlflow.sklearn"},
        ),
    )
    item.add_link(pystac.Link(rel="via", target=run_link, media_type="text/html", title="MLflow run"))
    item.add_link(
        pystac.Link(rel="collection", target=f"../../collections/{MODELS_COLLECTION}", media_type="application/json")
    )
    return item


def validate_item(item: pystac.Item) -> None:
    """Offline validation: STAC core JSON schema (bundled with pystac) plus the MLM fields via stac-model.

    The MLM JSON schema lives on the web; stac-model's pydantic models encode the same rules and need no
    network, so the ``mlm:`` properties are re-parsed by them and the rest is checked against core STAC.
    """
    import pystac.validation
    from stac_model.schema import SCHEMA_URI, MLModelProperties

    data = item.to_dict()
    if SCHEMA_URI not in data.get("stac_extensions", []):
        raise ValueError(f"item {item.id} does not declare the MLM extension {SCHEMA_URI}")
    MLModelProperties.model_validate({k: v for k, v in data["properties"].items() if k.startswith("mlm:")})
    core = copy.deepcopy(data)
    core["stac_extensions"] = []
    pystac.validation.validate_dict(core)


def register_item(item: pystac.Item, settings: Settings) -> None:
    """Upsert the item into the catalog's ``terracover-models`` collection (created on first use)."""
    from terracover.catalog import MODELS_COLLECTION, collection, open_catalog

    catalog = open_catalog(settings)
    if MODELS_COLLECTION not in set(catalog.collections()):
        catalog.add_collection(collection(MODELS_COLLECTION, "Land-cover models (STAC MLM), one item per version"))
    catalog.upsert_items([item])
