"""The MLflow model registry with full lineage: one registered model ``landcover-{year}``, versions moved by aliases.

Open it like the store and the catalog: ``reg = open_registry(settings)``; the :class:`Registry` holds the one
MLflow client every call goes through. Split by concern:

- :mod:`~terracover.registry.client`: the registry object, model references, lookups and loading;
- :mod:`~terracover.registry.tracking`: logging a trained model as a run and registering it (lineage);
- :mod:`~terracover.registry.promotion`: scoring the champion on the challenger's rows, comparing, approval text;
- :mod:`~terracover.registry.aliases`: the only code that moves an alias, and only on a human's approval;
- :mod:`~terracover.registry.lock`: one promotion at a time per model (a lock kept in the registry).

No other module of the project imports ``MlflowClient``.
"""

from __future__ import annotations

from terracover.registry.aliases import (
    APPROVE_OPTION,
    REJECT_OPTION,
    Approval,
    SupersededError,
    approve,
    record_comparison,
    reject,
    responder,
    set_challenger,
)
from terracover.registry.client import (
    CHALLENGER,
    CHAMPION,
    SHADOW,
    LoadedModel,
    ModelRef,
    Registry,
    model_name,
    open_registry,
    run_url,
)
from terracover.registry.promotion import ChampionScore, Comparison, approval_markdown, compare, score_champion
from terracover.registry.tracking import git_sha, log_and_register

__all__ = [
    "APPROVE_OPTION",
    "CHALLENGER",
    "CHAMPION",
    "REJECT_OPTION",
    "SHADOW",
    "Approval",
    "ChampionScore",
    "Comparison",
    "LoadedModel",
    "ModelRef",
    "Registry",
    "SupersededError",
    "approval_markdown",
    "approve",
    "compare",
    "git_sha",
    "log_and_register",
    "model_name",
    "open_registry",
    "record_comparison",
    "reject",
    "responder",
    "run_url",
    "score_champion",
    "set_challenger",
]
