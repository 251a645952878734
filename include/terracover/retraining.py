"""Whether a firing alert for a year can be acted on: retraining only helps when the year has labelled points
its champion was not trained on (compared by content, see labelsets, never by file times). Every decision is
written to the store so an alert that led nowhere stays visible after the Airflow run is gone
(``monitoring/decisions/{year}/{timestamp}.json``).

An alert is a state, not an event: it keeps firing for its whole window, and every run that sees it decides
again. What a retraining consumes is the year's label content: once a decision started training on a label set
(its digest), later runs record that instead of starting the same training again while it waits for approval."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from terracover.keys import decision_key, decisions_prefix
from terracover.labelsets import current_sets, new_points
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
    labels_digest: str | None = None  # the year's label set when deciding (labelsets); None without labels


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
    labels = current_sets(store).get(year)
    digest = labels.digest if labels is not None else None
    started = retrain_started(store, year, digest) if new else None
    if started is not None:
        reason = (
            f"{len(new)} labelled point(s) for {year} are not in the champion's training table, but the decision"
            f" of {started.decided_at} already started training {year} on this label set; its model is approved"
            " or rejected in that train_model run (if the run failed, trigger train_model for the year by hand)."
            " Labels not yet trained on start another retraining."
        )
    elif new:
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
    uri = store.uri(table_key) if table_key else None
    d = Decision(year, bool(new) and started is None, reason, alert, len(new), version, uri, _now(), digest)
    record(d, store)
    return d


def retrain_started(store: ObjectStore, year: int, digest: str | None) -> Decision | None:
    """The earliest recorded decision that started retraining ``year`` on the label set ``digest``, if any."""
    if digest is None:
        return None
    for key in sorted(store.list(decisions_prefix(year))):
        doc = json.loads(store.get_bytes(key))
        if doc.get("retrain") and doc.get("labels_digest") == digest:
            return Decision(**{f: doc.get(f) for f in Decision.__dataclass_fields__})
    return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")  # one key per decision, even within a second


def record(d: Decision, store: ObjectStore) -> str:
    key = decision_key(d.year, d.decided_at)
    store.put_bytes(key, json.dumps(asdict(d), indent=2).encode(), content_type="application/json")
    return key
