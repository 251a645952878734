"""Seasonal cloud-masked composites, indices and terrain as one feature-stack COG per subtile and year."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from terracover_airflow import COMPOSITES_ASSET, DEFAULT_ARGS, SCENES_ASSET, events_by_year, setup_logging
from terracover_airflow.links import StacItemsLink

DOC = """
### build_composites
Runs when `ingest_scenes` publishes new scenes (asset `terracover_scenes`, whose event names the year) or by
hand with conf `{"year": 2023}`. Maps one task per tile-year, or per batch of `TERRACOVER_COMPOSITE_BATCH_SUBTILES`
subtiles of a tile, never more than `[core] max_map_length` (the KubernetesExecutor starts each from the heavy
pod template). A task runs its subtiles in parallel threads (`TERRACOVER_BATCH_WORKERS`, default the pod's
CPUs); each builds `composites/{year}/{tile}/{subtile}/features.tif` (one float32 band per feature) and its 8-bit
true colour `truecolour.tif` (map tiles), or skips them when its input scenes have not changed (adding the true
colour to a stack built before it), and catalogs them in `terracover-composites`. Publishes
`terracover_composites` and marks each year's stacks complete (`composites/{year}/published.json`, withdrawn
when the next run over the year starts).
"""

# The KubernetesExecutor starts the heavy tasks from a bigger pod template (mounted by helm-values/airflow.yaml);
# local executors ignore executor_config. A template path keeps kubernetes models out of DAG parsing.
HEAVY_POD = {
    "pod_template_file": os.environ.get(
        "TERRACOVER_HEAVY_POD_TEMPLATE", "/opt/airflow/pod_templates/heavy-composite.yaml"
    )
}

# On a cluster a pool caps the object store's concurrent readers/writers (helm-values/airflow-pools.json) and
# many tile tasks run at once; on one machine two at a time (each already uses every CPU).
OBJECT_STORE_POOL = os.environ.get("TERRACOVER_OBJECT_STORE_POOL", "default_pool")
CONCURRENT_BUILDS = int(os.environ.get("TERRACOVER_CONCURRENT_BUILDS", "2"))


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
        """(year, tile, batch) per task, never subtiles: tasks derive them, so XCom stays small at any scale."""
        from airflow.configuration import conf
        from terracover.pipeline import begin_composites, plan_composites

        ctx = get_current_context()
        year = ctx["params"].get("year")
        years = [int(year)] if year is not None else []
        if year is None:
            years = list(events_by_year(ctx["triggering_asset_events"]))
            if not years:
                raise ValueError('no year: trigger with conf {"year": 2023} or from an ingest_scenes event')
        begin_composites(years)  # until publish, a labels-triggered build_training_set skips these years
        return plan_composites(years, conf.getint("core", "max_map_length"))

    @task(max_active_tis_per_dag=CONCURRENT_BUILDS, executor_config=HEAVY_POD, pool=OBJECT_STORE_POOL)
    def build(year: int, tile: str, batch: int, batches: int) -> dict[str, Any]:
        setup_logging()
        from terracover.pipeline import build_stack_batch

        return build_stack_batch(year, tile, batch, batches)

    @task(outlets=[COMPOSITES_ASSET])
    def publish(results: list[dict[str, Any]]) -> dict[str, Any]:
        from terracover.pipeline import publish_composites

        results = list(results)
        summary: dict[str, Any] = {
            "tasks": len(results),
            "stacks": sum(r["stacks"] for r in results),
            "built": sum(r["built"] for r in results),
            "years": sorted({str(r["year"]) for r in results}),
        }
        publish_composites([int(y) for y in summary["years"]], summary)
        get_current_context()["outlet_events"][COMPOSITES_ASSET].extra = summary
        return summary

    published: Any = publish(build.expand_kwargs(plan()))  # type: ignore[arg-type]  # a list at run time
    published.operator.operator_extra_links = [StacItemsLink()]  # the "STAC items" button of the task


build_composites()
