"""Ingest Sentinel-2 L2A scenes for the configured region and a year into the object store and catalog."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from terracover_airflow import DEFAULT_ARGS, SCENES_ASSET, resolve_year, setup_logging

DOC = """
### ingest_scenes
Searches the scene source (`TERRACOVER_SCENE_SOURCE`: `stac` = Earth Search by default, `sentinelhub`, or the
offline `simulator`) for the region's MGRS tiles over the year's seasons (Dec of year-1 to Nov), under the cloud
ceiling `TERRACOVER_MAX_CLOUD_COVER`. One mapped task per new scene copies its bands, clipped to the region, as
COGs into `scenes/{tile}/{date}/{band}.tif` and upserts a catalog item. Scenes already catalogued are not
mapped again, so a re-run over the same window does nothing new. Updates the `terracover_scenes` asset when
at least one scene was added.

Conf: `{"year": 2023}` (default: the run's logical date's year).
"""


@dag(
    dag_id="ingest_scenes",
    schedule="@weekly",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["terracover", "data-plane"],
    doc_md=DOC,
    params={"year": Param(None, type=["null", "integer"], minimum=2015, description="Year to ingest")},
    max_active_runs=1,
)
def ingest_scenes() -> None:
    @task
    def search_scenes() -> list[dict[str, Any]]:
        """Items of the year's window not yet in the catalog (serialised STAC items)."""
        setup_logging()
        from terracover.pipeline import pending_scene_items

        ctx = get_current_context()
        year = resolve_year(ctx["params"], ctx.get("logical_date"))
        return pending_scene_items(year)

    @task(max_active_tis_per_dag=4)
    def ingest(item: dict[str, Any]) -> dict[str, Any]:
        setup_logging()
        from terracover.pipeline import ingest_one_scene

        return ingest_one_scene(item)

    @task(outlets=[SCENES_ASSET])
    def publish(results: list[dict[str, Any]]) -> dict[str, Any]:
        """Emit the scenes asset only when something new landed, so composites rebuild only then."""
        from airflow.exceptions import AirflowSkipException

        results = list(results)
        copied = sum(r["copied"] for r in results)
        ctx = get_current_context()
        year = resolve_year(ctx["params"], ctx.get("logical_date"))
        summary = {"year": year, "scenes": len(results), "bands_copied": copied}
        if not results:
            raise AirflowSkipException(f"no new scenes for {year}: nothing to publish")
        ctx["outlet_events"][SCENES_ASSET].extra = summary
        return summary

    publish(ingest.expand(item=search_scenes()))  # type: ignore[arg-type]  # XComArg resolves to the list at run time


ingest_scenes()
