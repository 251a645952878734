"""What a model relies on: permutation importance on the held-out split, for the person approving it.

Permutation importance (Breiman 2001; scikit-learn's ``permutation_importance``) is the drop in a score when one
feature's column is shuffled in held-out rows: model-agnostic (forests, boosting and MLPs alike) and measured
where the model was not fitted, unlike impurity importances. A model leaning on one terrain band or on an
artefact band shows up at the top of this list. Correlated features share their importance (shuffling one
leaves its twin), so a low value does not prove a feature is useless.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from terracover.dataset import split_xy
from terracover.missing import classifiable_rows

if TYPE_CHECKING:
    import pandas as pd

METRIC_PREFIX = "importance_"  # MLflow metric per feature: importance_<feature> (logged by the registry)
ARTIFACT = "importance/permutation_importance.json"  # the ranked table, an artifact of the model's run


@dataclass(frozen=True)
class FeatureImportance:
    """Mean and sd over repeats of the score drop per feature; ``score`` is the unshuffled score."""

    features: list[str]
    mean: list[float]
    std: list[float]
    score: float
    scoring: str
    n_rows: int
    n_repeats: int

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureImportance:
        """The inverse of :meth:`as_dict` (what the run's artifact holds)."""
        rows = d["features"]
        return cls(
            features=[r["feature"] for r in rows],
            mean=[float(r["mean"]) for r in rows],
            std=[float(r["std"]) for r in rows],
            score=float(d["score"]),
            scoring=str(d["scoring"]),
            n_rows=int(d["n_rows"]),
            n_repeats=int(d["n_repeats"]),
        )

    def ranked(self) -> list[tuple[str, float, float]]:
        return sorted(zip(self.features, self.mean, self.std, strict=True), key=lambda r: -r[1])

    def metrics(self) -> dict[str, float]:
        """MLflow metrics: one per feature (names are metric-safe: letters, digits and underscores)."""
        return {f"{METRIC_PREFIX}{f}": float(m) for f, m in zip(self.features, self.mean, strict=True)}

    def as_dict(self) -> dict[str, Any]:
        return {
            "scoring": self.scoring,
            "score": self.score,
            "n_rows": self.n_rows,
            "n_repeats": self.n_repeats,
            "features": [{"feature": f, "mean": m, "std": s} for f, m, s in self.ranked()],
        }

    def markdown(self, top: int = 8) -> str:
        """The approval summary: the top features, and a warning when one feature carries most of the model."""
        ranked = self.ranked()
        total = sum(max(m, 0.0) for _, m, _ in ranked) or 1.0
        lines = [
            f"Drop in {self.scoring} ({self.score:.3f} unshuffled) when one feature is shuffled in the held-out"
            f" split ({self.n_rows} rows, {self.n_repeats} repeats):",
            "",
            "| feature | drop | ± sd | share |",
            "|---|---:|---:|---:|",
        ]
        lines += [f"| {f} | {m:.4f} | {s:.4f} | {max(m, 0) / total:.0%} |" for f, m, s in ranked[:top]]
        lead, lead_mean, _ = ranked[0]
        if lead_mean / total > 0.5:
            lines += ["", f"**Warning:** `{lead}` alone carries {lead_mean / total:.0%} of the importance."]
        return "\n".join(lines)


def permutation_importance(
    estimator: Any,
    table: pd.DataFrame,
    features: Sequence[str],
    split: str = "test",
    *,
    n_repeats: int = 3,
    max_rows: int = 2000,
    seed: int = 0,
) -> FeatureImportance:
    """Permutation importance of ``features`` on the ``split`` rows the model can see (accuracy drop).

    At most ``max_rows`` rows (a seeded sample) and ``n_repeats`` shuffles keep it to seconds: the cost is
    features x repeats x rows predictions (150 x 3 x 2000 = 0.9 M pixels, ~10 s for a full-depth forest).
    """
    from sklearn.inspection import permutation_importance as sk_permutation_importance

    x, y = split_xy(table, features, split)
    seen = classifiable_rows(estimator, x)
    x, y = x[seen], y[seen]
    if len(y) == 0:
        raise ValueError(f"no {split} row the model can classify: permutation importance needs held-out rows")
    if len(y) > max_rows:
        pick = np.random.default_rng(seed).choice(len(y), max_rows, replace=False)
        x, y = x[pick], y[pick]
    result = sk_permutation_importance(estimator, x, y, scoring="accuracy", n_repeats=n_repeats, random_state=seed)
    score = float((estimator.predict(x) == y).mean())
    return FeatureImportance(
        features=list(features),
        mean=[float(v) for v in result.importances_mean],
        std=[float(v) for v in result.importances_std],
        score=score,
        scoring="accuracy",
        n_rows=len(y),
        n_repeats=n_repeats,
    )
