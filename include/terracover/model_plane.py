"""The model-plane steps as functions with JSON-friendly inputs and outputs: what each task of train_model calls.

Like :mod:`terracover.pipeline` for the data plane: a step opens the store and the registry from settings, so
it runs the same in a DAG task, a script or a test, and the DAG file is only wiring (schedule, the approval
operator, trigger rules).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from terracover.dataset import data_added_summary, load_table
from terracover.evaluate import evaluate_model
from terracover.registry import (
    REJECT_OPTION,
    Approval,
    ModelRef,
    approval_markdown,
    approve,
    compare,
    log_and_register,
    open_registry,
    record_comparison,
    reject,
    responder,
    score_champion,
    set_challenger,
)
from terracover.settings import Settings, get_settings
from terracover.store import open_store
from terracover.train import train

log = logging.getLogger(__name__)


def train_and_register(
    year: int,
    dataset_uri: str | None,
    config: str,
    rfe_target: int | None = None,
    dag_run_id: str | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Train ``config`` on the table (``dataset_uri``, else the year's newest), evaluate it on the held-out
    split, log it with its lineage and register it: ``{ref, dataset_uri, metrics, throughput}``."""
    s = settings or get_settings()
    table = load_table(year, dataset_uri, open_store(s))
    trained = train(table.frame, config, seed=s.random_seed, rfe_target=rfe_target)
    evaluation = evaluate_model(trained.estimator, table.frame, trained.features)
    reg = open_registry(s)
    ref = log_and_register(
        reg,
        trained,
        evaluation,
        table_uri=table.uri,
        dataset_sha256=table.sha256,
        year=year,
        dag_run_id=dag_run_id,
        table=table.frame,
    )
    return {
        "ref": asdict(ref),
        "run_link": reg.run_link(ref),  # the task's "MLflow run" button (MlflowRunLink)
        "dataset_uri": table.uri,
        "metrics": evaluation.metrics(),
        "throughput": trained.throughput_pixels_per_s,
    }


def compare_with_champion(result: Mapping[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """Score the champion on the challenger's test split and compare (``primary_metric``, ``min_margin``).

    The challenger is re-scored from the registry, which proves the registered artifact loads and scores. A
    better model (or the year's first) gets alias ``challenger``. Returns ``{better, reason, markdown}``; the
    Markdown is the body of the approval request.
    """
    s = settings or get_settings()
    store, reg = open_store(s), open_registry(s)
    ref = ModelRef(**result["ref"])
    table = load_table(ref.year, result["dataset_uri"], store)
    champ = score_champion(reg, ref.year, table.frame)
    loaded = reg.load_version(ref)
    evaluation = evaluate_model(loaded.estimator, table.frame, loaded.features)
    comparison = compare(evaluation.metrics(), champ.metrics if champ else None, s.primary_metric, s.min_margin)
    record_comparison(reg, ref, champ.ref if champ else None)
    if comparison.better:
        set_challenger(reg, ref)
    previous = load_table(ref.year, champ.dataset_uri, store).frame if champ and champ.dataset_uri else None
    markdown = approval_markdown(
        ref,
        evaluation,
        comparison,
        champ=champ,
        data_added=data_added_summary(table.frame, previous, table.uri),
        link=reg.run_link(ref),
        throughput=result["throughput"],
        importance=reg.importance(ref),
    )
    return {"better": comparison.better, "reason": comparison.reason, "markdown": markdown}


def promote(
    result: Mapping[str, Any], response: Mapping[str, Any], shadow: bool = False, settings: Settings | None = None
) -> str:
    """Set ``champion`` (or ``shadow``) on the human's approval response; returns the alias set.

    Raises :class:`terracover.registry.SupersededError` when another promotion moved the champion after this
    version was compared (two runs for one year at once): the version is tagged ``superseded``, not promoted."""
    s = settings or get_settings()
    return approve(open_registry(s), ModelRef(**result["ref"]), Approval.from_hitl_response(response), shadow=shadow)


def record_rejection(result: Mapping[str, Any], response: Mapping[str, Any], settings: Settings | None = None) -> bool:
    """Tag the version rejected when the human chose Reject (the champion stays); False when they did not."""
    if list(response.get("chosen_options") or []) != [REJECT_OPTION]:
        return False
    s = settings or get_settings()
    reg = open_registry(s)
    reject(reg, ModelRef(**result["ref"]), responder(response), "rejected in the Airflow approval task")
    return True


def notify_serving(alias: str, settings: Settings | None = None) -> bool:
    """Ask the service to reload its models (best effort: it also polls every ``model_refresh_s``)."""
    import httpx

    s = settings or get_settings()
    url = f"{s.serving_url.rstrip('/')}/admin/reload"
    try:
        r = httpx.post(url, headers={"Authorization": f"Bearer {s.reload_token.get_secret_value()}"}, timeout=10)
        r.raise_for_status()
    except httpx.HTTPError as e:
        log.warning("could not notify serving at %s (%s); it will poll", url, e)
        return False
    log.info("serving reloaded after %s change: %s", alias, r.text[:200])
    return True
