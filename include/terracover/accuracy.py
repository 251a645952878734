"""The reference sample behind a model's area estimates, and what the API says about it.

The stratified estimator (:mod:`terracover.area`) needs an error matrix from a probability sample. What a
model has is its held-out test points: labelled points, split from the training points by location and
drawn per class as the labelling campaign drew them, not a design-based sample of the map. That matrix is
used, and the answer says so (``accuracy_sample`` block with the sample's name, its size per class and the
caveat). Where a year's labels carry dedicated accuracy-assessment points (``purpose`` = ``"accuracy"``, see
:mod:`terracover.labels`), the training table keeps them in their own split (``accuracy``), never trained on
nor used for model selection, and their matrix is used instead, saying so.

The sample is logged with the model at training (:data:`ARTIFACT` in the MLflow run) and loaded with the
champion by serving.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from terracover.area import AreaEstimate, estimate_for_codes
from terracover.classes import CLASS_BY_CODE, class_name
from terracover.dataset import ACCURACY_SPLIT

if TYPE_CHECKING:
    import pandas as pd

    from terracover.evaluate import Evaluation

ARTIFACT = "evaluation/accuracy_sample.json"

Kind = Literal["accuracy_labels", "held_out_test_points"]

CAVEATS: dict[str, str] = {
    "held_out_test_points": (
        "The error matrix comes from the model's held-out test points: labelled points kept out of training"
        " by location, drawn per class as the labels were collected, not a probability sample of the map."
        " The stratified estimator (Olofsson et al. 2014) treats them as a random sample within each mapped"
        " class and assumes the model errs in this area as it does on those points: read the intervals as"
        " indicative, not design-based."
    ),
    "accuracy_labels": (
        "The error matrix comes from dedicated accuracy-assessment labels (purpose = accuracy), never used"
        " for training or model selection. The estimator is design-unbiased only if those points were drawn"
        " as a stratified random sample of the mapped classes; it assumes the model errs in this area as it"
        " does on those points."
    ),
}


@dataclass(frozen=True)
class AccuracySample:
    """An error matrix of reference-sample counts (rows map class, columns reference class) and its origin."""

    name: str
    kind: Kind
    codes: list[int]
    error_matrix: list[list[int]]
    dataset_sha256: str = ""

    @property
    def caveat(self) -> str:
        return CAVEATS[self.kind]

    @property
    def size(self) -> int:
        return int(np.asarray(self.error_matrix).sum())

    def size_per_class(self) -> dict[str, int]:
        """Sample points per reference class (the labels' class), by class name."""
        ref = np.asarray(self.error_matrix).sum(axis=0)
        return {class_name(c): int(n) for c, n in zip(self.codes, ref, strict=True) if n > 0}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> AccuracySample:
        d = json.loads(text)
        return cls(
            name=str(d["name"]),
            kind=d["kind"],
            codes=[int(c) for c in d["codes"]],
            error_matrix=[[int(v) for v in row] for row in d["error_matrix"]],
            dataset_sha256=str(d.get("dataset_sha256", "")),
        )

    def block(self) -> dict[str, Any]:
        """The ``accuracy_sample`` block of an answer."""
        return {
            "name": self.name,
            "kind": self.kind,
            "size": self.size,
            "size_per_class": self.size_per_class(),
            "caveat": self.caveat,
        }

    def estimate(self, mapped_ha_by_code: Mapping[int, float]) -> AreaEstimate:
        return estimate_for_codes(mapped_ha_by_code, self.codes, self.error_matrix)


def code_of(name: str) -> int | None:
    for code, c in CLASS_BY_CODE.items():
        if c.name == name:
            return code
    return int(name.removeprefix("class_")) if name.startswith("class_") and name[6:].isdigit() else None


def from_predictions(
    y_reference: Sequence[int] | np.ndarray,
    y_map: Sequence[int] | np.ndarray,
    name: str,
    kind: Kind,
    dataset_sha256: str = "",
) -> AccuracySample:
    """Count (map class, reference class) pairs; rows and columns over every class seen in either."""
    ref = np.asarray(y_reference, dtype=np.int64)
    mapped = np.asarray(y_map, dtype=np.int64)
    if ref.shape != mapped.shape or ref.size == 0:
        raise ValueError(f"need equally long, non-empty reference and map classes (got {ref.shape}, {mapped.shape})")
    codes = sorted(set(ref.tolist()) | set(mapped.tolist()))
    index = {c: i for i, c in enumerate(codes)}
    matrix = np.zeros((len(codes), len(codes)), dtype=np.int64)
    np.add.at(matrix, (np.vectorize(index.get)(mapped), np.vectorize(index.get)(ref)), 1)
    return AccuracySample(name, kind, codes, matrix.tolist(), dataset_sha256)


def for_model(
    estimator: Any,
    evaluation: Evaluation,
    table: pd.DataFrame | None,
    features: Sequence[str],
    dataset_uri: str = "",
    dataset_sha256: str = "",
) -> AccuracySample:
    """A trained model's reference sample: its table's ``accuracy`` split when the year has dedicated
    accuracy labels (scored here), else the held-out ``test`` split ``evaluation`` already scored."""
    from terracover.evaluate import evaluate_model

    where = dataset_uri or (f"dataset {dataset_sha256[:12]}" if dataset_sha256 else "the training table")
    if table is not None and "split" in table and bool((table["split"] == ACCURACY_SPLIT).any()):
        ev = evaluate_model(estimator, table, features, split=ACCURACY_SPLIT)
        matrix = np.asarray(ev.confusion, dtype=np.int64).T
        name = f"accuracy-assessment labels ({ACCURACY_SPLIT} split) of {where}"
        return AccuracySample(name, "accuracy_labels", list(ev.labels), matrix.tolist(), dataset_sha256)
    return from_evaluation(evaluation, f"held-out test points (test split) of {where}", dataset_sha256)


def from_evaluation(evaluation: Evaluation, name: str, dataset_sha256: str = "") -> AccuracySample:
    """The held-out test split's confusion matrix (rows true, columns predicted) in rows-map orientation."""
    matrix = np.asarray(evaluation.confusion, dtype=np.int64).T
    return AccuracySample(name, "held_out_test_points", list(evaluation.labels), matrix.tolist(), dataset_sha256)


def load_logged(run_id: str, artifact_text: Callable[[str], str | None]) -> AccuracySample | None:
    """The sample logged with a model's run (:data:`ARTIFACT`); for runs logged before it existed, their
    ``evaluation/confusion_matrix.csv``; None when the run has neither. ``artifact_text(path)`` reads one
    artifact of the run (``lambda p: reg.artifact_text(run_id, p)`` with a :class:`terracover.registry.Registry`)."""
    for artifact in (ARTIFACT, "evaluation/confusion_matrix.csv"):
        text = artifact_text(artifact)
        if text is None:
            continue
        if artifact == ARTIFACT:
            return AccuracySample.from_json(text)
        return from_confusion_csv(text, f"held-out test points of run {run_id} (its confusion matrix)")
    return None


def from_confusion_csv(text: str, name: str, dataset_sha256: str = "") -> AccuracySample:
    """A model logged before the sample artifact existed: its ``confusion_matrix.csv`` (rows true, columns
    predicted, class names) is the same test split, transposed into rows-map orientation."""
    import io

    import pandas as pd

    frame = pd.read_csv(io.StringIO(text), index_col=0)
    codes = [code_of(str(n)) for n in frame.index]
    if any(c is None for c in codes) or [code_of(str(n)) for n in frame.columns] != codes:
        raise ValueError("confusion_matrix.csv rows and columns must name the same classes")
    matrix = frame.to_numpy(dtype=np.int64).T  # rows true -> rows map
    return AccuracySample(
        name, "held_out_test_points", [int(c) for c in codes if c is not None], matrix.tolist(), dataset_sha256
    )


def area_estimates(class_areas_ha: Mapping[str, float], sample: AccuracySample) -> dict[str, Any]:
    """The ``area_estimates`` block of a prediction: per class mapped and error-adjusted hectares with the
    95 % interval half-width, user's and producer's accuracy with theirs, and the overall accuracy."""
    mapped = {}
    for name, ha in class_areas_ha.items():
        code = code_of(name)
        if code is not None:
            mapped[code] = float(ha)
    if sum(mapped.values()) <= 0:
        raise ValueError("no mapped area to estimate from")
    est = sample.estimate(mapped)

    def r(x: float | None, nd: int) -> float | None:
        return None if x is None else round(x, nd)

    per_class = {
        class_name(c.code): {
            "mapped_ha": round(c.mapped, 4),
            "estimated_ha": round(c.estimated, 4),
            "ci95_ha": round(c.ci95, 4),
            "se_ha": round(c.se, 4),
            "users_accuracy": r(c.users_accuracy, 4),
            "users_accuracy_ci95": r(c.users_ci95, 4),
            "producers_accuracy": r(c.producers_accuracy, 4),
            "producers_accuracy_ci95": r(c.producers_ci95, 4),
        }
        for c in est.classes
        if c.mapped > 0 or c.estimated > 0
    }
    return {
        "method": "stratified estimator, Olofsson et al. 2014 (Remote Sens. Environ. 148: 42-57); ci95 = ±1.96 SE",
        "classes": per_class,
        "overall_accuracy": round(est.overall_accuracy, 4),
        "overall_accuracy_ci95": round(est.overall_ci95, 4),
        "unassessed_classes": [class_name(c) for c in est.unassessed],
        "accuracy_sample": sample.block(),
    }
