"""Publish a year's wall-to-wall land-cover map when a new champion is promoted."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from terracover_airflow import CHAMPION_ASSET, DEFAULT_ARGS, MAP_ASSET, events_by_year, setup_logging

DOC = """
### publish_map
Runs when `train_model`'s `promote` updates `terracover_champion` (extra `{year, version, alias}`), or by hand
with conf `{"year": 2023}` (the year's current champion). Classifies **every** feature stack of the year
with that model version, one mapped task per subtile: `maps/{year}/v{version}/{tile}/{subtile}.tif`, a COG
with bands `class` (1..9, NaN = unclassified), `confidence` (max class probability) and `quality` (worst
season's `qa_*`, or 1 = observed), each catalogued in the STAC collection `terracover-maps`. Then writes one
GDAL VRT per UTM zone, `maps/{year}/v{version}/mosaic-{epsg}.vrt`, which QGIS opens as a layer (local store: a
path; S3: `/vsis3/...`). Updates `terracover_map`.

A promotion to `shadow` publishes nothing (the published map is the champion's); a year without stacks ends
skipped with the reason; a year asked for by conf without a champion fails at once saying what to run.
"""


@dag(
    dag_id="publish_map",
    schedule=[CHAMPION_ASSET],
    start_date=datetime(2024, 1, 1),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["terracover", "model-plane"],
    doc_md=DOC,
    params={"year": Param(None, type=["null", "integer"], minimum=2015, description="Publish this year's map")},
    max_active_runs=1,
)
def publish_map() -> None:
    @task
    def plan() -> list[dict[str, Any]]:
        """(year, version, tile, subtile) of every stack to classify."""
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
        from terracover import registry
        from terracover.maps import plan_map
        from terracover.settings import get_settings

        ctx = get_current_context()
        year = ctx["params"].get("year")
        if year is not None:
            champ = registry.open_registry(get_settings()).champion(int(year))
            if champ is None:
                raise AirflowFailException(f'{year} has no champion: run train_model with conf {{"year": {year}}}')
            jobs = {int(year): champ.version}
        else:
            events = events_by_year(ctx["triggering_asset_events"])
            jobs = {y: str(e["version"]) for y, e in events.items() if e.get("alias") == "champion"}
            if not jobs:
                raise AirflowSkipException("the promotion set alias shadow: the published map stays the champion's")
        todo = [{"year": y, "version": v, **p} for y, v in jobs.items() for p in plan_map(y)]
        if not todo:
            raise AirflowSkipException(f"no feature stacks for {sorted(jobs)}: nothing to classify")
        return todo

    @task(max_active_tis_per_dag=2)
    def classify(year: int, version: str, tile: str, subtile: str) -> dict[str, Any]:
        setup_logging()
        from terracover.maps import map_one_subtile

        return dict(map_one_subtile(year, version, tile, subtile), year=year, version=version)

    @task(outlets=[MAP_ASSET])
    def publish(tiles: list[dict[str, Any]]) -> list[dict[str, Any]]:
        setup_logging()
        from terracover.maps import publish_map_mosaics

        by_year: dict[tuple[int, str], list[dict[str, Any]]] = {}
        for tile in tiles:
            t = dict(tile)
            by_year.setdefault((int(t.pop("year")), str(t.pop("version"))), []).append(t)
        published = [publish_map_mosaics(y, v, ts) for (y, v), ts in sorted(by_year.items())]
        get_current_context()["outlet_events"][MAP_ASSET].extra = {
            "maps": [{"year": p["year"], "version": p["version"], "mosaics": p["mosaics"]} for p in published]
        }
        return published

    publish(classify.expand_kwargs(plan()))  # type: ignore[arg-type]  # XComArg resolves to the list at run time


publish_map()
