"""Whether a firing alert for a year can be acted on: retraining only helps when the year has labelled points
its champion was not trained on (compared by content, see labelsets, never by file times). Every decision is
written to the store so an alert that led nowhere stays visible after the Airflow run is gone
(``monitoring/decisions/{year}/{timestamp}.json``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from terracover.keys import decision_key
from terracover.labelsets import new_points
from terracover.settings import Settings
from terracover.store import ObjectStore, open_store


@dataclass(frozen=True)
class Decision:
    year: int
    retrain: bool
    reason: str
    alert: str
    new_label_points: int
    champion_version: str | None
    champion_dataset_uri: str | None
    decided_at: str


def years_of(alerts: Iterable[Mapping[str, Any]]) -> list[int]:
    """The distinct ``year`` labels of Alertmanager/Prometheus alerts (alerts without one are ignored)."""
    years = set()
    for a in alerts:
        y = str((a.get("labels") or {}).get("year", ""))
        if y.isdigit():
            years.add(int(y))
    return sorted(years)


def champion_table(year: int, settings: Settings) -> tuple[str | None, str | None]:
    """(champion version, store key of its training table); (None, None) without a champion."""
    from terracover.dataset import key_for_uri
    from terracover.registry import open_registry

    reg = open_registry(settings)
    ref = reg.champion(year)
    if ref is None:
        return None, None
    uri = reg.version_tags(ref).get("dataset_uri")
    if not uri:
        return ref.version, None
    try:
        return ref.version, key_for_uri(open_store(settings), uri)
    except ValueError:
        return ref.version, None


def decide(year: int, alert: str, settings: Settings) -> Decision:
    """Retrain ``year`` only when labelled points exist that its champion was not trained on (by content)."""
    s = settings
    store = open_store(s)
    version, table_key = champion_table(year, s)
    new = new_points(store, year, table_key)
    if new:
        basis = f"champion v{version}'s training table" if version else "any model (the year has no champion)"
        reason = f"{len(new)} labelled point(s) for {year} not in {basis}: retraining {year}"
    elif version is None:
        reason = f"{year} has no champion and no labels for it: nothing to train on"
    else:
        reason = (
            f"{alert} fired for {year} but every labelled point of {year} is already in champion v{version}'s"
            " training table: retraining would learn the same thing. Add validated labels under labels/ (or new"
            " composites) to act on this alert."
        )
    d = Decision(year, bool(new), reason, alert, len(new), version, store.uri(table_key) if table_key else None, _now())
    record(d, store)
    return d


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record(d: Decision, store: ObjectStore) -> str:
    key = decision_key(d.year, d.decided_at)
    store.put_bytes(key, json.dumps(asdict(d), indent=2).encode(), content_type="application/json")
    return key
