"""Ingest Sentinel-2 L2A scenes for the configured region and a year into the object store and catalog."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.sdk import Param, TriggerRule, dag, get_current_context, task
from terracover_airflow import DEFAULT_ARGS, SCENES_ASSET, resolve_year, setup_logging

DOC = """
### ingest_scenes
Searches the scene source (`TERRACOVER_SCENE_SOURCE`: `stac` = Earth Search by default, `sentinelhub`, or the
offline `simulator`) for the region's MGRS tiles over the year's seasons (Dec of year-1 to Nov), under the cloud
ceiling `TERRACOVER_MAX_CLOUD_COVER`. One mapped task per tile-year (a continent stays under
`[core] max_map_length`) searches that tile's scenes and ingests the new ones in parallel threads
(`TERRACOVER_BATCH_WORKERS`, default the pod's CPUs): it copies their bands, clipped to the region, as COGs into
`scenes/{tile}/{date}/{band}.tif` and upserts a catalog item. Scenes already catalogued are skipped, so a
re-run over the same window does nothing new. Updates the `terracover_scenes` asset when
at least one scene was added; a run that found nothing new ends **skipped** with the reason (no retries).
Tiles of the region without terrain get it here first (`ingest_dem`'s step, once per tile), so one trigger
of this DAG carries the whole chain: scenes -> composites -> training set -> model.

Conf: `{"year": 2023}` (default: the run's logical date's year).
"""

# Caps concurrent catalog writers and source searches on a cluster (helm-values/airflow-pools.json).
CATALOG_POOL = os.environ.get("TERRACOVER_CATALOG_POOL", "default_pool")


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
    def plan() -> list[dict[str, Any]]:
        """One task per tile-year: a continent stays within [core] max_map_length, and XCom holds tile names."""
        from airflow.configuration import conf
        from terracover.pipeline import plan_ingest

        ctx = get_current_context()
        year = resolve_year(ctx["params"], ctx.get("logical_date"))
        return plan_ingest([year], conf.getint("core", "max_map_length"))

    @task
    def tiles_without_terrain() -> list[str]:
        from terracover.pipeline import tiles_without_terrain as missing

        return missing()

    @task(max_active_tis_per_dag=2)
    def terrain(tile: str) -> str:
        setup_logging()
        from terracover.pipeline import terrain_for_tile

        return terrain_for_tile(tile)

    @task(max_active_tis_per_dag=8, pool=CATALOG_POOL)
    def ingest(year: int, tile: str) -> dict[str, Any]:
        """Search the tile's scenes of the year and ingest the new ones, in parallel inside this task."""
        setup_logging()
        from airflow.sdk.exceptions import AirflowFailException
        from terracover.pipeline import ingest_tile_year

        try:
            return ingest_tile_year(year, tile)
        except FileNotFoundError as exc:  # a source that is not there: retrying will not make it appear
            raise AirflowFailException(str(exc)) from exc

    @task(outlets=[SCENES_ASSET], trigger_rule=TriggerRule.NONE_FAILED)
    def publish(results: list[dict[str, Any]] | None) -> dict[str, Any]:
        """Emit the scenes asset only when something new landed, so composites rebuild only then."""
        from airflow.exceptions import AirflowSkipException

        results = list(results or [])
        ctx = get_current_context()
        year = resolve_year(ctx["params"], ctx.get("logical_date"))
        summary = {
            "year": year,
            "tiles": len(results),
            "scenes": sum(r["ingested"] for r in results),
            "bands_copied": sum(r["bands_copied"] for r in results),
        }
        if not summary["scenes"]:
            raise AirflowSkipException(
                f"no new scenes for {year}: the source has none in the year's window that is not already ingested"
            )
        ctx["outlet_events"][SCENES_ASSET].extra = summary
        return summary

    # XComArgs resolve to the lists at run time (Any: mypy checks the task bodies, not the wiring).
    published: Any = publish(ingest.expand_kwargs(plan()))  # type: ignore[arg-type]
    terrain.expand(tile=tiles_without_terrain()) >> published


ingest_scenes()
