"""Continental fan-out: both data-plane DAGs plan within Airflow's [core] max_map_length for the Iberian
peninsula and for a 546-tile region (KHAOS's 540-tile scale) on real MGRS geometry, the batches partition the
region's subtiles exactly, and the real plan tasks run under Airflow for the big region."""

from __future__ import annotations

import ast
import re
import time
from pathlib import Path

import pytest
from shapely.geometry import box

from tests.fixtures.airflow import AirflowEnv

IBERIA = (-9.3, 36.0, 3.3, 43.8)  # 154 tiles, 9,919 subtiles of 1098 px
CONTINENT = (-10.0, 36.0, 16.0, 52.0)  # 546 tiles: Iberia, France, Benelux, the Alps, Germany, northern Italy
MAX_MAP_LENGTH = 1024  # Airflow's default, read from the real configuration in the Airflow test below


@pytest.mark.parametrize(("bbox", "tiles"), [(IBERIA, 154), (CONTINENT, 546)])
@pytest.mark.parametrize("batch_subtiles", [0, 25])
def test_plans_stay_under_max_map_length(bbox: tuple[float, ...], tiles: int, batch_subtiles: int) -> None:
    from terracover import fanout

    t0 = time.perf_counter()
    names = fanout.region_tiles(bbox)
    ingest = fanout.plan_ingest([2023], names, MAX_MAP_LENGTH)
    composites = fanout.plan_composites([2023], names, 1098, batch_subtiles, MAX_MAP_LENGTH)
    print(f"{len(names)} tiles: planned in {time.perf_counter() - t0:.2f} s")
    assert len(names) == tiles
    assert len(ingest) == tiles <= MAX_MAP_LENGTH
    assert tiles <= len(composites) <= MAX_MAP_LENGTH
    assert {p["tile"] for p in composites} == set(names)
    if batch_subtiles and tiles * 4 <= MAX_MAP_LENGTH:
        assert len(composites) == tiles * 4  # 100 subtiles per tile in runs of 25
    assert all(len(repr(p)) < 80 for p in composites), "plans carry tile names, never subtile lists"


def test_too_many_tile_years_fail_with_the_fix_named() -> None:
    from terracover import fanout

    names = fanout.region_tiles(CONTINENT)
    with pytest.raises(ValueError, match="max_map_length"):
        fanout.plan_ingest([2022, 2023], names, MAX_MAP_LENGTH)


@pytest.mark.parametrize(
    ("bbox", "size", "batch_subtiles"),
    [
        ((-0.012, 39.950, 0.012, 39.962), 366, 0),  # the test region: two tiles, two UTM zones
        ((-0.6, 39.6, 0.6, 40.4), 1098, 7),  # across the 30/31 boundary, batches of 7 subtiles
        ((-9.0, 38.5, -8.0, 39.3), 549, 50),  # Lisbon: several tiles, batches of 50
    ],
)
def test_batches_partition_the_regions_subtiles(bbox: tuple[float, ...], size: int, batch_subtiles: int) -> None:
    from terracover import fanout, grid

    expected = {s.key for s in grid.subtiles_for_geometry(box(*bbox), size)}
    seen: list[str] = []
    for p in fanout.plan_composites([2023], fanout.region_tiles(bbox), size, batch_subtiles):
        seen += [s.key for s in fanout.batch_subtiles(p["tile"], p["batch"], p["batches"], bbox, size)]
    assert len(seen) == len(set(seen)), "a subtile in two batches"
    assert set(seen) == expected


def _returned(log: str) -> list[dict[str, object]]:
    m = re.search(r"Returned value was: (\[\{.*?\}\])", log)
    assert m, log[-4000:]
    return list(ast.literal_eval(m.group(1)))


@pytest.mark.airflow
def test_plan_tasks_under_airflow_for_546_tiles(airflow: AirflowEnv, tmp_path: Path) -> None:
    """The DAGs' own plan tasks, run by Airflow with its configured max_map_length, on the 546-tile region."""
    limit = airflow.run("config", "get-value", "core", "max_map_length").stdout.strip()
    assert int(limit) == MAX_MAP_LENGTH
    env = {"TERRACOVER_HOME": str(tmp_path), "TERRACOVER_REGION_BBOX": str(list(CONTINENT))}
    for dag_id in ("ingest_scenes", "build_composites"):
        proc = airflow.run(
            "tasks", "test", dag_id, "plan", "2023-06-01", "-t", '{"year": 2023}', extra_env=env, timeout=900
        )
        plan = _returned(proc.stdout + proc.stderr)
        assert len(plan) == 546 <= MAX_MAP_LENGTH, (dag_id, len(plan))
        assert {p["year"] for p in plan} == {2023}
