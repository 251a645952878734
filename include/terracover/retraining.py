"""Whether a firing alert for a year can be acted on: retraining only helps when labels newer than the
champion's training data exist. Every decision is written to the store so an alert that led nowhere stays
visible after the Airflow run is gone (``monitoring/decisions/{year}/{timestamp}.json``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from terracover.keys import decision_key
from terracover.labels import labels_newer_than
from terracover.settings import Settings, get_settings
from terracover.store import ObjectStore, open_store


@dataclass(frozen=True)
class Decision:
    year: int
    retrain: bool
    reason: str
    alert: str
    new_label_files: list[str]
    champion_version: str | None
    champion_data_time: str | None
    decided_at: str


def years_of(alerts: Iterable[Mapping[str, Any]]) -> list[int]:
    """The distinct ``year`` labels of Alertmanager/Prometheus alerts (alerts without one are ignored)."""
    years = set()
    for a in alerts:
        y = str((a.get("labels") or {}).get("year", ""))
        if y.isdigit():
            years.add(int(y))
    return sorted(years)


def champion_data_time(year: int, settings: Settings) -> tuple[str | None, datetime | None]:
    """(champion version, when its training table was written); (None, None) without a champion."""
    from terracover.dataset import key_for_uri
    from terracover.registry import open_registry

    reg = open_registry(settings)
    ref = reg.champion(year)
    if ref is None:
        return None, None
    uri = reg.version_tags(ref).get("dataset_uri")
    store = open_store(settings)
    if uri:
        try:
            return ref.version, store.modified(key_for_uri(store, uri))
        except (ValueError, FileNotFoundError, KeyError):
            pass
    # No readable table: fall back to the version's creation time (labels after it are certainly new).
    return ref.version, reg.created_at(ref)


def decide(year: int, alert: str, settings: Settings | None = None) -> Decision:
    s = settings or get_settings()
    store = open_store(s)
    version, since = champion_data_time(year, s)
    newer = [
        k for k in labels_newer_than(store, since or datetime.min.replace(tzinfo=UTC)) if _has_year(store, k, year)
    ]
    if newer:
        reason = f"{len(newer)} label file(s) newer than the champion's training data: retraining {year}"
    elif version is None:
        reason = f"{year} has no champion and no labels for it: nothing to train on"
    else:
        reason = (
            f"{alert} fired for {year} but no label file is newer than champion v{version}'s training data"
            f" ({since:%Y-%m-%d %H:%M} UTC): retraining would learn the same thing. Add validated labels under"
            " labels/ (or new composites) to act on this alert."
        )
    d = Decision(year, bool(newer), reason, alert, newer, version, since.isoformat() if since else None, _now())
    record(d, store)
    return d


def _has_year(store: ObjectStore, key: str, year: int) -> bool:
    from terracover.labels import LabelError, read_label_file

    try:
        return bool((read_label_file(store, key)["year"] == year).any())
    except LabelError:
        return False  # a broken file is build_training_set's to report, not a reason to retrain


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record(d: Decision, store: ObjectStore) -> str:
    key = decision_key(d.year, d.decided_at)
    store.put_bytes(key, json.dumps(asdict(d), indent=2).encode(), content_type="application/json")
    return key
