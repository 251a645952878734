"""Airflow-side glue shared by the DAG files: default task arguments and the assets that chain the DAGs.

Lives in plugins/ (on Airflow's sys.path) so DAG files stay declarative; the domain logic is in
``include/terracover`` and is imported inside tasks only, keeping DAG parsing light.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from airflow.sdk import Asset, AssetWatcher

from terracover_airflow.labels import NewLabelsTrigger

OWNER = "terracover"

DEFAULT_ARGS: dict[str, Any] = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}

SCENES_ASSET = Asset(name="terracover_scenes", uri="terracover://scenes")
COMPOSITES_ASSET = Asset(name="terracover_composites", uri="terracover://composites")
TRAINING_SET_ASSET = Asset(name="terracover_training_set", uri="terracover://datasets")
CHAMPION_ASSET = Asset(name="terracover_champion", uri="terracover://models/champion")
MAP_ASSET = Asset(name="terracover_map", uri="terracover://maps")


def _labels_poll_s() -> float:
    from terracover.settings import get_settings

    return get_settings().labels_poll_s


# Updated by the triggerer when label content lands that no training table was built from (no DAG emits it).
LABELS_ASSET = Asset(
    name="terracover_labels",
    uri="terracover://labels",
    watchers=[AssetWatcher(name="terracover_new_labels", trigger=NewLabelsTrigger(poll_interval=_labels_poll_s()))],
)


def setup_logging() -> None:
    """Route the library's progress logs (logger ``terracover``) into the task log at INFO."""
    import logging

    logging.getLogger("terracover").setLevel(logging.INFO)


def events_by_year(triggering_asset_events: Mapping[Any, Iterable[Any]]) -> dict[int, dict[str, Any]]:
    """The ``extra`` of the newest triggering asset event of each year (by year): which years a run works on."""
    events = sorted((e for evs in triggering_asset_events.values() for e in evs), key=lambda e: e.timestamp)
    newest = {int(e.extra["year"]): dict(e.extra) for e in events if e.extra.get("year")}
    return dict(sorted(newest.items()))


def resolve_year(params: dict[str, Any], logical_date: Any = None) -> int:
    """The year a run works on: ``conf``/params ``year`` if given, else the run's logical date's year."""
    year = params.get("year")
    if year in (None, "", 0):
        if logical_date is None:
            raise ValueError('no year: pass conf {"year": 2023} or run on a schedule')
        return int(logical_date.year)
    return int(year)
