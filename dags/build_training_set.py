"""Build each year's training table when new validated labels land, gated by Great Expectations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from terracover_airflow import COMPOSITES_ASSET, DEFAULT_ARGS, LABELS_ASSET, TRAINING_SET_ASSET, setup_logging

DOC = """
### build_training_set
Label files (GeoJSON Point features, CSV or Parquet with `point_id, lon, lat, year, class_code[, validated]`)
land in the store's `labels/` prefix. Runs, without waiting for a clock, when
- `build_composites` publishes `terracover_composites` (the years whose stacks it rebuilt), or
- the triggerer's labels watcher updates `terracover_labels`: some year's labelled points (compared **by
  content**, `terracover.labelsets`, never by file times) are not what any of its training tables was built from.

Conf `{"year": 2023}` builds that year now. A run with nothing to do ends **skipped** with the reason in the
task's log and note (labels unchanged, or a year with labels but no feature stacks yet, or stacks that
build_composites is still building: it is built when its composites are published). Asked by conf for a year
without stacks, it fails at once saying what to run.

Per year (mapped, so one year's failure does not block the others): sample the year's feature stacks at the
points, merge with the current champion's table (new labels win), split by location (stratified by class),
run the Great Expectations suite (schema, no NaN features, value ranges, every class with
`TERRACOVER_MIN_SAMPLES_PER_CLASS` rows, no duplicate points, valid codes) and only then write
`datasets/{year}/{sha256}.parquet` (and `labelsets/{year}/{sha256}.json`, the label set it was built from).
A failing suite (or a malformed label file) fails the task at once, without retries, with the readable report
in its log. Each table publishes `terracover_training_set` with extra `{year, dataset_uri, sha256}`, which
triggers `train_model`.
"""


@dag(
    dag_id="build_training_set",
    schedule=(COMPOSITES_ASSET | LABELS_ASSET),
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
    def years() -> list[dict[str, Any]]:
        """The years to build: conf year, else years whose composites were rebuilt or whose labels are new."""
        from airflow.exceptions import AirflowSkipException
        from terracover.pipeline import years_with_new_labels

        ctx = get_current_context()
        year = ctx["params"].get("year")
        if year is not None:
            return [{"year": int(year), "asked": True}]
        rebuilt = {
            int(y)
            for evs in ctx["triggering_asset_events"].values()
            for e in evs
            if e.extra.get("built")
            for y in e.extra.get("years") or []
        }
        new_labels = years_with_new_labels()
        found = sorted(rebuilt | set(new_labels))
        if not found:
            raise AirflowSkipException(
                "nothing to build: no composites were rebuilt and every year's labelled points are what its"
                " newest training table was built from"
            )
        return [{"year": y, "asked": False} for y in found]

    @task(outlets=[TRAINING_SET_ASSET], retries=1)
    def build(year: int, asked: bool) -> dict[str, Any]:
        setup_logging()
        from airflow.exceptions import AirflowFailException, AirflowSkipException
        from terracover.labels import LabelError
        from terracover.pipeline import build_training_set as build_table
        from terracover.pipeline import composites_published, stack_count
        from terracover.quality import QualityGateError

        if not stack_count(year):
            why = f"{year} has no feature stacks yet"
            if asked:
                raise AirflowFailException(
                    f'{why}: run ingest_scenes with conf {{"year": {year}}} (build_composites follows), then this'
                )
            raise AirflowSkipException(f"{why}: its training set is built when build_composites publishes {year}")
        if not asked and not composites_published(year):
            raise AirflowSkipException(
                f"{year}'s feature stacks are being built (build_composites has not published them): its training"
                " set is built when it does, not from a half-built year"
            )
        try:
            info = build_table(year)
        except LookupError as exc:  # the year has stacks but no validated labels
            if asked:
                raise AirflowFailException(str(exc)) from exc
            raise AirflowSkipException(f"composites of {year} rebuilt, but {exc}") from exc
        except (QualityGateError, LabelError) as exc:
            # The data decides, not the infrastructure: a retry would fail the same way, so fail now.
            raise AirflowFailException(str(exc)) from exc
        get_current_context()["outlet_events"][TRAINING_SET_ASSET].extra = {
            k: info[k] for k in ("year", "dataset_uri", "sha256")
        }
        return info

    build.expand_kwargs(years())


build_training_set()
