"""Reproject a DEM onto each tile's 10 m UTM grid and derive slope and aspect."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, get_current_context, task
from terracover_airflow import DEFAULT_ARGS, setup_logging

DOC = """
### ingest_dem
For every tile of the region: search the DEM source (`TERRACOVER_DEM_SOURCE`: Copernicus GLO-30 on a STAC API,
ASTER GDEM v3 through NASA's CMR-STAC with an `EARTHDATA_TOKEN`, or the offline simulator), mosaic and reproject
it bilinearly onto the tile's 10 m grid over the region, compute slope and aspect (degrees, Horn's method) and
store `dem/{tile}/terrain.tif` (bands dem, slope, aspect). Existing terrain is kept unless `overwrite` is set.
"""


@dag(
    dag_id="ingest_dem",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["terracover", "data-plane"],
    doc_md=DOC,
    params={"overwrite": Param(False, type="boolean", description="Rebuild terrain that already exists")},
)
def ingest_dem() -> None:
    @task
    def tiles() -> list[str]:
        from terracover.pipeline import region_tiles

        return region_tiles()

    @task
    def terrain(tile: str) -> str:
        setup_logging()
        from terracover.pipeline import terrain_for_tile

        return terrain_for_tile(tile, overwrite=bool(get_current_context()["params"]["overwrite"]))

    terrain.expand(tile=tiles())


ingest_dem()
