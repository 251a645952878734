"""What a year's labels are, not when their files were written: one short hash per labelled point (id,
position, class) and a digest of the year's set. Every training table records the set it was built from, so
"new labels" means new content wherever labels start work (build_training_set, retrain_on_alert, the labels
watcher): rewriting an identical file with a new modification time starts nothing.

Records live at ``labelsets/{year}/{table_sha256}.json`` (``{"year", "digest", "points": [hash, ...]}``).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass

import pandas as pd

from terracover.keys import labelset_key, labelsets_prefix
from terracover.labels import read_labels
from terracover.store import ObjectStore


@dataclass(frozen=True)
class LabelSet:
    year: int
    digest: str
    points: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.points)


def point_hashes(labels: pd.DataFrame) -> tuple[str, ...]:
    """Sorted, distinct 16-hex hashes of ``point_id, lon, lat, year, class_code`` (positions to 1e-7 degree)."""
    keys = (
        f"{pid}|{lon:.7f}|{lat:.7f}|{int(year)}|{int(code)}"
        for pid, lon, lat, year, code in zip(
            labels["point_id"].astype(str),
            labels["lon"].astype(float),
            labels["lat"].astype(float),
            labels["year"],
            labels["class_code"],
            strict=True,
        )
    )
    return tuple(sorted({hashlib.sha256(k.encode()).hexdigest()[:16] for k in keys}))


def label_set(year: int, labels: pd.DataFrame) -> LabelSet:
    """The label set of ``year`` from a frame of validated labels (other years' rows are ignored)."""
    points = point_hashes(labels[labels["year"] == year])
    return LabelSet(year, hashlib.sha256("\n".join(points).encode()).hexdigest(), points)


def current_sets(store: ObjectStore) -> dict[int, LabelSet]:
    """Every year's label set as the store's ``labels/`` prefix holds it now."""
    labels = read_labels(store)
    return {int(y): label_set(int(y), labels) for y in sorted(set(labels["year"].tolist()))}


def _table_sha(table_uri_or_key: str) -> str:
    return table_uri_or_key.rstrip("/").rsplit("/", 1)[-1].removesuffix(".parquet")


def record(store: ObjectStore, table_uri_or_key: str, labels: LabelSet) -> str:
    """Remember that the table ``datasets/{year}/{sha}.parquet`` was built from ``labels``."""
    key = labelset_key(labels.year, _table_sha(table_uri_or_key))
    store.put_bytes(key, json.dumps({**asdict(labels), "points": list(labels.points)}).encode(), "application/json")
    return key


def recorded(store: ObjectStore, year: int, table_uri_or_key: str) -> LabelSet | None:
    """The label set a table was built from; None for tables older than these records."""
    key = labelset_key(year, _table_sha(table_uri_or_key))
    if not store.exists(key):
        return None
    doc = json.loads(store.get_bytes(key))
    return LabelSet(int(doc["year"]), str(doc["digest"]), tuple(doc["points"]))


def _table_points(store: ObjectStore, year: int, table_key: str) -> tuple[str, ...]:
    """Fallback for a table without a record: the labelled points its rows carry."""
    frame = pd.read_parquet(
        io.BytesIO(store.get_bytes(table_key)), columns=["point_id", "lon", "lat", "year", "class_code"]
    )
    return point_hashes(frame[frame["year"] == year])


def built_digests(store: ObjectStore, year: int) -> set[str]:
    """Digests of the label sets some training table of ``year`` was built from."""
    digests = set()
    for key in store.list(labelsets_prefix(year)):
        digests.add(str(json.loads(store.get_bytes(key))["digest"]))
    return digests


def unbuilt(store: ObjectStore) -> dict[int, LabelSet]:
    """Years whose current label set no training table was built from (by content, not file times)."""
    return {
        year: labels
        for year, labels in current_sets(store).items()
        if labels.points and labels.digest not in built_digests(store, year)
    }


def new_points(store: ObjectStore, year: int, table_key: str | None) -> tuple[str, ...]:
    """Labelled points of ``year`` that the table (e.g. the champion's) was not built from."""
    now = current_sets(store).get(year)
    if now is None:
        return ()
    if table_key is None:
        return now.points
    before = recorded(store, year, table_key)
    seen = set(before.points if before is not None else _table_points(store, year, table_key))
    return tuple(p for p in now.points if p not in seen)
