"""Build each year's training table when new validated labels land, gated by Great Expectations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from terracover_airflow import DEFAULT_ARGS, TRAINING_SET_ASSET, setup_logging

DOC = """
### build_training_set
Label files (GeoJSON Point features, CSV or Parquet with `point_id, lon, lat, year, class_code[, validated]`)
land in the store's `labels/` prefix. Every hour this DAG looks for years whose newest label file is newer than
their newest training table (a cheap listing: a short-circuit rather than a sensor holding a worker slot, and
the same code for a local folder and S3). Conf `{"year": 2023}` builds that year now.

Per year (mapped, so one year's failure does not block the others): sample the year's feature stacks at the
points, merge with the current champion's table (new labels win), split by location (stratified by class),
run the Great Expectations suite (schema, no NaN features, value ranges, every class with
`TERRACOVER_MIN_SAMPLES_PER_CLASS` rows, no duplicate points, valid codes) and only then write
`datasets/{year}/{sha256}.parquet`. A failing suite (or a malformed label file) fails the task at once, without
retries, with the readable report in its log.
Each table publishes `terracover_training_set` with extra `{year, dataset_uri, sha256}`, which triggers
`train_model`.
"""


@dag(
    dag_id="build_training_set",
    schedule="@hourly",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["terracover", "model-plane"],
    doc_md=DOC,
    params={"year": Param(None, type=["null", "integer"], minimum=2015, description="Build this year now")},
    max_active_runs=1,
)
def build_training_set() -> None:
    @task
    def years() -> list[int]:
        from airflow.exceptions import AirflowSkipException
        from terracover.pipeline import years_with_new_labels

        year = get_current_context()["params"].get("year")
        found = [int(year)] if year is not None else years_with_new_labels()
        if not found:
            raise AirflowSkipException("no label file newer than the training tables: nothing to build")
        return found

    @task(outlets=[TRAINING_SET_ASSET], retries=1)
    def build(year: int) -> dict[str, Any]:
        setup_logging()
        from airflow.exceptions import AirflowFailException
        from terracover.labels import LabelError
        from terracover.pipeline import build_training_set as build_table
        from terracover.quality import QualityGateError

        try:
            info = build_table(year)
        except (QualityGateError, LabelError) as exc:
            # The data decides, not the infrastructure: a retry would fail the same way, so fail now.
            raise AirflowFailException(str(exc)) from exc
        get_current_context()["outlet_events"][TRAINING_SET_ASSET].extra = {
            k: info[k] for k in ("year", "dataset_uri", "sha256")
        }
        return info

    build.expand(year=years())


build_training_set()
