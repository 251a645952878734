"""Seasonal cloud-masked composites, indices and terrain as one feature-stack COG per subtile and year."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from terracover_airflow import COMPOSITES_ASSET, DEFAULT_ARGS, SCENES_ASSET, events_by_year, setup_logging

DOC = """
### build_composites
Runs when `ingest_scenes` publishes new scenes (asset `terracover_scenes`, whose event names the year) or by
hand with conf `{"year": 2023}`. Maps one task per subtile of the region (so the KubernetesExecutor spreads
them over pods; give them more memory with `executor_config`, see helm-values/airflow.yaml). Each builds
`composites/{year}/{tile}/{subtile}/features.tif` (one float32 band per feature) or skips it when its input
scenes have not changed, and catalogs it in `terracover-composites`. Publishes `terracover_composites`.
"""

# The KubernetesExecutor starts the heavy tasks from a bigger pod template (mounted by helm-values/airflow.yaml);
# local executors ignore executor_config. A template path keeps kubernetes models out of DAG parsing.
HEAVY_POD = {
    "pod_template_file": os.environ.get(
        "TERRACOVER_HEAVY_POD_TEMPLATE", "/opt/airflow/pod_templates/heavy-composite.yaml"
    )
}


@dag(
    dag_id="build_composites",
    schedule=[SCENES_ASSET],
    start_date=datetime(2024, 1, 1),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["terracover", "data-plane"],
    doc_md=DOC,
    params={"year": Param(None, type=["null", "integer"], minimum=2015, description="Year to composite")},
    max_active_runs=1,
)
def build_composites() -> None:
    @task
    def plan() -> list[dict[str, Any]]:
        from terracover.pipeline import plan_stacks

        ctx = get_current_context()
        year = ctx["params"].get("year")
        if year is None:
            years = list(events_by_year(ctx["triggering_asset_events"]))
            if not years:
                raise ValueError('no year: trigger with conf {"year": 2023} or from an ingest_scenes event')
            return [p for y in years for p in plan_stacks(y)]
        return plan_stacks(int(year))

    @task(max_active_tis_per_dag=2, executor_config=HEAVY_POD)
    def build(year: int, tile: str, subtile: str) -> dict[str, Any]:
        setup_logging()
        from terracover.pipeline import build_one_stack

        return build_one_stack(year, tile, subtile)

    @task(outlets=[COMPOSITES_ASSET])
    def publish(results: list[dict[str, Any]]) -> dict[str, Any]:
        results = list(results)
        built = [r["item_id"] for r in results if not r["skipped"]]
        summary: dict[str, Any] = {
            "stacks": len(results),
            "built": len(built),
            "years": sorted({r["item_id"][:4] for r in results}),
        }
        get_current_context()["outlet_events"][COMPOSITES_ASSET].extra = summary
        return summary

    publish(build.expand_kwargs(plan()))  # type: ignore[arg-type]  # XComArg resolves to the list at run time


build_composites()
