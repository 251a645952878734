"""Yearly land-cover model: train, evaluate, register, compare, ask a human, promote, tell serving."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import (
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    TriggerRule,
    dag,
    get_current_context,
    task,
)
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from terracover_airflow import CHAMPION_ASSET, DEFAULT_ARGS, TRAINING_SET_ASSET, events_by_year, setup_logging
from terracover_airflow.links import MlflowRunLink

DOC = """
### train_model
One run trains, registers and (after a human says so) promotes the model of **one year**: `landcover-{year}`.

**When it runs, and for which year**
- *Schedule*: 15 January 03:00 UTC, for the **previous** calendar year (`logical_date.year - 1`), whose
  composites are complete by then. Airflow 3 cron schedules are `CronTriggerTimetable`s with zero-length
  data intervals, so the year comes from `logical_date`. Backfill builds past years:
  `airflow backfill create --dag-id train_model --from-date 2019-01-01 --to-date 2024-02-01` (2018..2023).
- *Asset*: a `terracover_training_set` event of `build_training_set` (extra `year`, `dataset_uri`, `sha256`).
- *Conf*: `{"year": 2023}` (e.g. from `retrain_on_alert`), optionally `dataset_uri`, `config`,
  `rfe_target`, `shadow_first`.

**Many years at once.** The approval step (`ApprovalOperator`) waits per model version; a mapped HITL task
would tie every year's promotion, retries and failures to one run. So a run that has several years to do
(several asset events at once) trains none itself: `trigger_year_runs` starts one `train_model` run per
year with conf `{"year", "dataset_uri"}`. A year that fails or is rejected never blocks another.

A scheduled run whose year has no training table yet ends **skipped** with that reason; a run asked for a
year (conf or asset) whose table is missing fails at once (no retries) saying to run `build_training_set`.

**Steps of a one-year run.** `train_and_register` loads the table (conf/asset `dataset_uri`, else the
newest `datasets/{year}/*.parquet`), trains the configuration in param `config`, evaluates on the held-out
split, logs params/metrics/artifacts/lineage to MLflow and registers a version with its STAC MLM item.
`compare_with_champion` re-scores the champion on the **challenger's** test split and applies
`primary_metric` + `min_margin` from settings: a better model (or the year's first) gets alias
`challenger`, otherwise the run stops there. `approval` asks a human in *Required Actions* (Markdown:
metrics side by side, both confusion matrices, data added, MLflow link). **Approve** -> `promote` sets
`champion` (or `shadow` with `shadow_first`), `approved_by` = the responder; then `notify_serving` POSTs
`/admin/reload` (best effort). **Reject** -> `record_rejection` tags the version; the champion stays.

**Two runs for one year at once.** `promote` is a check-and-set under a per-year lock kept in MLflow: a version
is promoted only while the champion is still the one it was compared with. If the other run promoted first,
this run's `promote` fails (no retry) saying so and tags the version `superseded`; run it again to compare
with the new champion.

Each task is a call to a JSON-in/JSON-out step of `terracover.model_plane` (tested without Airflow in
`tests/test_model_plane.py`); this file only wires them.
"""

DAG_ID = "train_model"
RESPONSE_KEY = "response"


class RecordedApprovalOperator(ApprovalOperator):
    """ApprovalOperator that keeps the human's answer in XCom ``response`` whatever it is.

    On "Reject" the parent skips its downstream tasks by raising before it returns, so its return value never
    reaches XCom; record_rejection needs the answer (and who gave it) in that case too.
    """

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" not in event:
            keep = ("chosen_options", "responded_by_user", "responded_at")
            context["ti"].xcom_push(key=RESPONSE_KEY, value={k: event.get(k) for k in keep})
        return super().execute_complete(context, event)


# The names of terracover.train.CONFIGS, default first: literal so parsing stays light (tests/test_train.py keeps
# them equal).
CONFIGS = ["rf_fast_hgb", "mlp_hgb", "rf_fast", "rf_full", "lgbm", "hgb", "mlp"]


@dag(
    dag_id=DAG_ID,
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 15 1 *", timezone="UTC"), assets=TRAINING_SET_ASSET
    ),
    start_date=datetime(2016, 1, 1),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["terracover", "model-plane"],
    doc_md=DOC,
    max_active_runs=4,
    params={
        "year": Param(None, type=["null", "integer"], minimum=2015, description="Model year (default: see doc)"),
        "dataset_uri": Param(None, type=["null", "string"], description="Training table (default: newest)"),
        "config": Param(CONFIGS[0], enum=CONFIGS, description="Model configuration (terracover.train.CONFIGS)"),
        "rfe_target": Param(None, type=["null", "integer"], minimum=1, description="RFE down to N features"),
        "shadow_first": Param(False, type="boolean", description="On approval set alias shadow, not champion"),
    },
)
def train_model() -> None:
    @task
    def plan() -> list[dict[str, Any]]:
        """The (year, dataset_uri) jobs of this run, newest event per year."""
        ctx = get_current_context()
        params = ctx["params"]
        if params.get("year"):
            return [{"year": int(params["year"]), "dataset_uri": params.get("dataset_uri")}]
        events = events_by_year(ctx["triggering_asset_events"])
        if events:
            return [{"year": y, "dataset_uri": extra.get("dataset_uri")} for y, extra in events.items()]
        logical_date = ctx.get("logical_date")
        if logical_date is None:
            raise ValueError('no year: trigger with conf {"year": 2023}, an asset event, or run on the schedule')
        year = logical_date.year - 1
        from terracover.pipeline import training_tables

        if not training_tables(year):
            raise AirflowSkipException(
                f"scheduled run for {year}: no training table under datasets/{year}/ yet, so nothing to train"
                f" (build_training_set writes one, and starts train_model, once {year} has labels and composites)"
            )
        return [{"year": year, "dataset_uri": None}]

    @task
    def child_runs(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Confs of the per-year runs to start: none when this run handles a single year itself."""
        return jobs if len(jobs) > 1 else []

    @task
    def this_year(jobs: list[dict[str, Any]]) -> dict[str, Any]:
        if len(jobs) != 1:
            raise AirflowSkipException(f"{len(jobs)} years: handled by one triggered run each")
        return jobs[0]

    @task
    def train_and_register(job: dict[str, Any]) -> dict[str, Any]:
        setup_logging()
        from terracover.model_plane import train_and_register

        ctx = get_current_context()
        params = ctx["params"]
        try:
            return train_and_register(
                job["year"], job.get("dataset_uri"), params["config"], params.get("rfe_target"), ctx["run_id"]
            )
        except (FileNotFoundError, ValueError) as exc:  # missing or wrong data: a retry finds the same
            raise AirflowFailException(str(exc)) from exc

    @task
    def compare_with_champion(result: dict[str, Any]) -> dict[str, Any]:
        setup_logging()
        from terracover.model_plane import compare_with_champion

        return compare_with_champion(result)

    @task.short_circuit
    def needs_approval(comparison: dict[str, Any]) -> bool:
        print(comparison["reason"])
        return bool(comparison["better"])

    approval = RecordedApprovalOperator(
        task_id="approval",
        subject="Promote {{ ti.xcom_pull(task_ids='train_and_register')['ref']['name'] }} version "
        "{{ ti.xcom_pull(task_ids='train_and_register')['ref']['version'] }}"
        "{{ ' as shadow' if params.shadow_first else '' }}?",
        body="{{ ti.xcom_pull(task_ids='compare_with_champion')['markdown'] }}",
        response_timeout=timedelta(days=14),
    )

    @task(outlets=[CHAMPION_ASSET])
    def promote(result: dict[str, Any]) -> str:
        """Move the alias on the human's answer; a new champion updates `terracover_champion` (publish_map)."""
        setup_logging()
        from terracover.model_plane import promote
        from terracover.registry import SupersededError

        ctx = get_current_context()
        response = ctx["ti"].xcom_pull(task_ids="approval", key=RESPONSE_KEY)
        try:
            alias = promote(result, response, shadow=bool(ctx["params"]["shadow_first"]))
        except SupersededError as exc:  # another run of this year promoted first: a retry would find the same
            raise AirflowFailException(str(exc)) from exc
        ref = result["ref"]
        ctx["outlet_events"][CHAMPION_ASSET].extra = {"year": ref["year"], "version": ref["version"], "alias": alias}
        return alias

    @task(trigger_rule=TriggerRule.ALL_SKIPPED)
    def record_rejection() -> None:
        """Runs when promote (its only upstream) was skipped; acts only if a human chose Reject.

        The model reference is pulled, not passed, so train_and_register is no upstream of the trigger rule.
        """
        setup_logging()
        from terracover.model_plane import record_rejection

        ti = get_current_context()["ti"]
        response = ti.xcom_pull(task_ids="approval", key=RESPONSE_KEY) or {}
        if not record_rejection(ti.xcom_pull(task_ids="train_and_register"), response):
            raise AirflowSkipException("no rejection to record")

    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def notify_serving(alias: str) -> None:
        """Best effort: the service also polls the registry every ``model_refresh_s``."""
        setup_logging()
        from terracover.model_plane import notify_serving

        notify_serving(alias)

    # XComArgs stand in for the task values at parse time (Any: mypy checks the task bodies, not the wiring).
    jobs: Any = plan()
    TriggerDagRunOperator.partial(task_id="trigger_year_runs", trigger_dag_id=DAG_ID, logical_date=None).expand(
        conf=child_runs(jobs)
    )
    job: Any = this_year(jobs)
    result: Any = train_and_register(job)
    result.operator.operator_extra_links = [MlflowRunLink()]
    comparison: Any = compare_with_champion(result)
    promoted: Any = promote(result)
    needs_approval(comparison) >> approval >> promoted
    promoted >> record_rejection()
    notify_serving(promoted)


train_model()
