"""Is the challenger better than the champion? Score both on the same rows, compare, and write the approval text."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from terracover.evaluate import Evaluation, evaluate_model
from terracover.registry.client import ModelRef, Registry

if TYPE_CHECKING:
    import pandas as pd

    from terracover.importance import FeatureImportance

log = logging.getLogger(__name__)


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


def score_champion(reg: Registry, year: int, table: pd.DataFrame) -> ChampionScore | None:
    """The champion's metrics on the CHALLENGER's test split (``table``'s ``split == "test"`` rows).

    Both models must be judged on the same rows, or a lucky test split decides a promotion. When the
    champion needs features the new table lacks, it cannot be re-scored: its logged metrics are returned
    with ``same_test_set=False`` and the approval request says so.
    """
    ref = reg.champion(year)
    if ref is None:
        return None
    dataset_uri = reg.version_tags(ref).get("dataset_uri", "")
    loaded = reg.load_version(ref)
    missing = [f for f in loaded.features if f not in table.columns]
    if missing:
        log.warning(
            "champion %s needs features %s absent from the new table: comparing logged metrics",
            ref.uri,
            missing,
        )
        return ChampionScore(ref, reg.run_metrics(ref), None, same_test_set=False, dataset_uri=dataset_uri)
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
    importance: FeatureImportance | None = None,
) -> str:
    """The body of the approval request: what a reviewer needs to decide without leaving the Airflow UI.

    ``importance`` (the run's permutation importance) adds what the model relies on: a model leaning on one
    terrain band or an artefact band shows at the top of that table.
    """
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
        *(
            ["#### Observed vs gap-filled test points, challenger", evaluation.observation_markdown()]
            if evaluation.by_observation
            else []
        ),
        "#### Data",
        data_added,
        "#### Confusion matrix, challenger (rows true, columns predicted)",
        evaluation.confusion_markdown(),
    ]
    if importance is not None:
        parts += ["#### What the model relies on (permutation importance, held-out split)", importance.markdown()]
    if champ is not None and champ.evaluation is not None:
        parts.append(f"#### Confusion matrix, champion v{champ.ref.version}\n\n{champ.evaluation.confusion_markdown()}")
    run = f"[MLflow run]({link})" if link.startswith(("http://", "https://")) else f"MLflow run `{link}`"
    parts.append(f"{run} · model `{ref.uri}` · majority-class accuracy {evaluation.majority_accuracy:.4f}")
    return "\n\n".join(parts)
