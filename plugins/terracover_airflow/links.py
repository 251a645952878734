"""Operator extra links: buttons on a task instance in the Airflow UI that open what the task made.

Airflow 3 resolves a link in the worker when the task ends (``get_link`` with the running task instance) and
stores it in XCom; the UI reads it back. The plugin in ``view.py`` registers these classes so the api-server
can show them.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink


def _result(ti_key: Any) -> dict[str, Any]:
    got = ti_key.xcom_pull(task_ids=ti_key.task_id, map_indexes=ti_key.map_index)
    return got if isinstance(got, dict) else {}


class MlflowRunLink(BaseOperatorLink):
    """The MLflow page of the run ``train_and_register`` logged (its return value's ``run_link``)."""

    name = "MLflow run"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        link = str(_result(ti_key).get("run_link") or "")
        return link if link.startswith(("http://", "https://")) else ""


class StacItemsLink(BaseOperatorLink):
    """The STAC items of the feature stacks ``build_composites`` published (the terracover view's item list)."""

    name = "STAC items"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from airflow.configuration import conf

        years = _result(ti_key).get("years") or []
        base = conf.get("api", "base_url", fallback="").rstrip("/")
        if not years or not base:
            return ""
        return f"{base}/terracover/stac/terracover-composites?year={','.join(str(y) for y in years)}"
