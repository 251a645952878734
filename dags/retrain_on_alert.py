"""Close the monitoring loop: a firing TerracoverLowConfidence alert -> retrain that year, if new labels allow."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, TriggerRule, dag, get_current_context, task
from terracover.settings import get_settings
from terracover_airflow import DEFAULT_ARGS, setup_logging
from terracover_airflow.alerts import AlertFiringSensor

ALERT = "TerracoverLowConfidence"

DOC = f"""
### retrain_on_alert
Every 30 minutes `wait_for_alert` (a **deferrable** sensor: it waits in the triggerer, holding no worker slot)
watches Alertmanager for `{ALERT}` (params `alertname`, `labels`, e.g. `{{"year": "2023"}}`). When it fires,
`decide` checks, per alerting `year`, for labelled points (by content: id, position, class) that the year's
champion was not trained on; rewriting an identical label file is not new:
- new labels -> `trigger_training` starts `train_model` with conf `{{"year": ...}}` (a human still approves);
- none, or a retraining on this same label set already started by an earlier run -> nothing is trained, and
  the reason is logged, returned in XCom, shown as the skipped `nothing_to_do` task and written to the store
  under `monitoring/decisions/{{year}}/`.

An alert is a state: it keeps firing for its window and every run that sees it decides again, so new labels
act while the same alert fires; a label set starts one retraining, however many runs see the alert.

**Webhook path.** Alertmanager (or anything) can start a run through Airflow's REST API with the alerts in
the conf; the sensor is then skipped:
`POST /api/v2/dags/retrain_on_alert/dagRuns` with body
`{{"logical_date": null, "conf": {{"alerts": [{{"labels": {{"alertname": "{ALERT}", "year": "2023"}}}}]}}}}`
(Alertmanager's own webhook body cannot be shaped like that; use a relay such as `alertmanager-webhook-relay`
or the sensor path, see include/monitoring/README.md).
"""


@dag(
    dag_id="retrain_on_alert",
    schedule=timedelta(minutes=30),
    start_date=datetime(2024, 1, 1),
    catchup=False,
    # The scheduled run's sensor (deferred, no worker slot) must not hold back a webhook run with the alerts in
    # its conf; two sensor runs never overlap (the sensor times out before the next schedule).
    max_active_runs=2,
    render_template_as_native_obj=True,  # params.labels reaches the sensor as a dict
    default_args=DEFAULT_ARGS,
    tags=["terracover", "monitoring"],
    doc_md=DOC,
    params={
        "alertname": Param(ALERT, type="string"),
        "labels": Param({}, type="object", description="Label filter, e.g. {'year': '2023'}"),
        "alerts": Param([], type="array", description="Alerts given directly (webhook path): skip the sensor"),
    },
)
def retrain_on_alert() -> None:
    @task.branch
    def source() -> str:
        return "alerts_from_conf" if get_current_context()["params"].get("alerts") else "wait_for_alert"

    from_conf = EmptyOperator(task_id="alerts_from_conf")

    wait = AlertFiringSensor(
        task_id="wait_for_alert",
        alertname="{{ params.alertname }}",
        labels="{{ params.labels }}",  # rendered to a dict (render_template_as_native_obj)
        poll_interval=get_settings().alert_poll_s,
        timeout=timedelta(minutes=25).total_seconds(),
        soft_fail=True,  # no alert in this window: the run is skipped, not failed
    )

    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def decide() -> dict[str, Any]:
        setup_logging()
        import logging
        from dataclasses import asdict

        from terracover.retraining import decide as decide_year
        from terracover.retraining import years_of

        ctx = get_current_context()
        alerts = ctx["params"].get("alerts") or ctx["ti"].xcom_pull(task_ids="wait_for_alert") or []
        name = ctx["params"]["alertname"]
        decisions = [decide_year(y, name, get_settings()) for y in years_of(alerts)]
        log = logging.getLogger("terracover")
        for d in decisions:
            log.log(logging.INFO if d.retrain else logging.WARNING, "alert %s, year %d: %s", name, d.year, d.reason)
        if not decisions:
            log.warning("alerts %s carry no year label: nothing to retrain", alerts)
        return {
            "retrain": [{"year": d.year} for d in decisions if d.retrain],
            "decisions": [asdict(d) for d in decisions],
        }

    @task
    def training_confs(result: dict[str, Any]) -> list[dict[str, Any]]:
        return list(result["retrain"])

    @task
    def nothing_to_do(result: dict[str, Any]) -> None:
        """Skipped with the reasons when some alerting year cannot be acted on (visible in the grid)."""
        from airflow.exceptions import AirflowSkipException

        idle = [d["reason"] for d in result["decisions"] if not d["retrain"]]
        if idle:
            raise AirflowSkipException("; ".join(idle))

    decided: Any = decide()
    source() >> [wait, from_conf] >> decided
    nothing_to_do(decided)
    TriggerDagRunOperator.partial(task_id="trigger_training", trigger_dag_id="train_model", logical_date=None).expand(
        conf=training_confs(decided)
    )


retrain_on_alert()
