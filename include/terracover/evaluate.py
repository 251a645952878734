"""Held-out evaluation: accuracy, kappa, macro F1, per-class scores and the confusion matrix.

Convention, everywhere: confusion matrix rows are the TRUE class, columns the PREDICTED class
(``sklearn.metrics.confusion_matrix(y_true, y_pred)``). Precision of a class is its diagonal cell over its
column sum, recall over its row sum. KHAOS built the matrix with the arguments swapped, which silently
exchanges precision and recall; tests/test_evaluate.py pins the orientation with an asymmetric example.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from terracover.classes import class_name
from terracover.dataset import split_xy
from terracover.missing import classifiable_rows

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int  # true samples of the class in the test set


@dataclass(frozen=True)
class GroupScore:
    """Accuracy on the test points of one observation status (observed, gap-filled, missing features)."""

    n: int
    classified: int  # of those the model could classify (the others count as errors, as on the map)
    accuracy: float


@dataclass(frozen=True)
class Evaluation:
    """Scores of one model on one test set."""

    labels: list[int]  # class codes, the order of the confusion matrix's rows and columns
    confusion: np.ndarray  # rows = true class, columns = predicted class
    overall_accuracy: float
    kappa: float
    macro_f1: float
    per_class: dict[int, ClassScores]
    # Per observation status (terracover.observation.STATUS_NAMES): a model is only as good as the data under
    # a pixel, and filled pixels are where it guesses most. Empty when scored from bare labels.
    by_observation: dict[str, GroupScore] = field(default_factory=dict)
    unclassified: int = 0  # test points the model cannot classify (counted as errors of their class)

    @property
    def n_test(self) -> int:
        return int(self.confusion.sum())

    @property
    def majority_accuracy(self) -> float:
        """Accuracy of always predicting the most frequent true class: the floor a useful model must beat."""
        return float(self.confusion.sum(axis=1).max() / max(self.n_test, 1))

    def metrics(self) -> dict[str, float]:
        """Flat metric names for MLflow: headline scores plus ``{f1,precision,recall}_<class name>``."""
        out = {"overall_accuracy": self.overall_accuracy, "kappa": self.kappa, "macro_f1": self.macro_f1}
        for code, s in self.per_class.items():
            name = class_name(code)
            out |= {f"f1_{name}": s.f1, f"precision_{name}": s.precision, f"recall_{name}": s.recall}
        for status, g in self.by_observation.items():
            out[f"n_test_{status}"] = float(g.n)
            out[f"accuracy_{status}"] = g.accuracy
        if self.by_observation:
            out["n_test_unclassified"] = float(self.unclassified)
        return out

    def observation_markdown(self) -> str:
        """Accuracy on fully observed test points vs those that needed filling (approval request, MLflow)."""
        lines = ["| test points | n | classified | overall accuracy |", "|---|---|---|---|"]
        for status, g in self.by_observation.items():
            lines.append(f"| {status.replace('_', ' ')} | {g.n} | {g.classified} | {g.accuracy:.4f} |")
        lines.append("")
        lines.append("Points a model cannot classify (missing features, model not NaN-aware) count as errors.")
        return "\n".join(lines)

    def confusion_frame(self) -> pd.DataFrame:
        """The confusion matrix with class names: index ``true``, columns ``predicted``."""
        import pandas as pd

        names = [class_name(c) for c in self.labels]
        return pd.DataFrame(
            self.confusion, index=pd.Index(names, name="true"), columns=pd.Index(names, name="predicted")
        )

    def confusion_csv(self) -> str:
        return str(self.confusion_frame().to_csv())

    def confusion_markdown(self) -> str:
        """GitHub-flavoured Markdown table (rows true, columns predicted), for the approval request."""
        names = [class_name(c) for c in self.labels]
        lines = ["| true \\ predicted | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for name, row in zip(names, self.confusion, strict=True):
            lines.append(f"| **{name}** | " + " | ".join(str(int(v)) for v in row) + " |")
        return "\n".join(lines)

    def save_confusion_png(self, path: Path, title: str) -> Path:
        """Row-normalised heat map (colour = recall share) annotated with counts."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = [class_name(c) for c in self.labels]
        rows = self.confusion.sum(axis=1, keepdims=True)
        share = np.divide(self.confusion, rows, out=np.zeros(self.confusion.shape), where=rows > 0)
        size = 1.6 + 0.7 * len(names)
        fig, ax = plt.subplots(figsize=(size + 1.5, size))
        try:
            im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
            ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
            ax.set_yticks(range(len(names)), names)
            ax.set_xlabel("predicted class")
            ax.set_ylabel("true class")
            ax.set_title(title)
            for i, j in np.ndindex(self.confusion.shape):
                ax.text(
                    j,
                    i,
                    str(int(self.confusion[i, j])),
                    ha="center",
                    va="center",
                    color="white" if share[i, j] > 0.5 else "black",
                    fontsize=8,
                )
            fig.colorbar(im, ax=ax, label="share of true class")
            fig.tight_layout()
            fig.savefig(path, dpi=110)
        finally:
            plt.close(fig)
        return path


def evaluate(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    labels: Sequence[int] | None = None,
) -> Evaluation:
    """Score predictions against truth; ``labels`` fixes the matrix order (default: every class seen)."""
    from sklearn.metrics import (
        accuracy_score,
        cohen_kappa_score,
        confusion_matrix,
        precision_recall_fscore_support,
    )

    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape or t.size == 0:
        raise ValueError(f"need equally long, non-empty y_true and y_pred (got {t.shape} and {p.shape})")
    codes = sorted({int(c) for c in labels}) if labels is not None else sorted(set(t.tolist()) | set(p.tolist()))
    cm = confusion_matrix(t, p, labels=codes)
    precision, recall, f1, support = precision_recall_fscore_support(t, p, labels=codes, zero_division=0)
    present = [i for i, c in enumerate(codes) if c in set(t.tolist()) | set(p.tolist())]
    return Evaluation(
        labels=codes,
        confusion=cm,
        overall_accuracy=float(accuracy_score(t, p)),
        kappa=float(cohen_kappa_score(t, p)),
        macro_f1=float(np.mean(f1[present])),
        per_class={
            c: ClassScores(float(precision[i]), float(recall[i]), float(f1[i]), int(support[i]))
            for i, c in enumerate(codes)
        },
    )


def evaluate_model(estimator: Any, table: pd.DataFrame, features: Sequence[str], split: str = "test") -> Evaluation:
    """Score a fitted estimator on one split of a training table (its columns in ``features`` order).

    Points with missing features are scored only by models that accept them (as serving does); the others
    count as ``unclassified``. Accuracy is also reported per observation status, from the table's ``qa_*``
    meta columns: fully observed points, points with a gap-filled season, points with missing features.
    """
    from dataclasses import replace

    from terracover.observation import STATUS_NAMES, qa_bands_for, status

    x, y = split_xy(table, features, split)
    # A row the model cannot see (terracover.missing) is predicted "unclassified" (0): an error for its class.
    predicted = np.zeros(len(y), dtype=np.int64)
    seen = classifiable_rows(estimator, x)
    if seen.any():
        predicted[seen] = estimator.predict(x[seen])
    scored = evaluate(y, predicted, labels=sorted(set(y.tolist()) | {int(c) for c in estimator.classes_}))
    rows = table if split is None else table[table["split"] == split]
    qa_names = [q for q in qa_bands_for(features) if q in rows.columns]
    groups = status(x, rows[qa_names].to_numpy(np.float32) if qa_names else None)
    by_status = {}
    for code, name in STATUS_NAMES.items():
        here = groups == code
        if here.any():
            right = here & (predicted == y)
            by_status[name] = GroupScore(int(here.sum()), int((here & seen).sum()), float(right.sum() / here.sum()))
    return replace(scored, by_observation=by_status, unclassified=int((~seen).sum()))
