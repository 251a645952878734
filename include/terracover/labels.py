"""Validated ground-truth points dropped in the store's ``labels/`` prefix as GeoJSON, CSV or Parquet.

Schema (docs/CONTRACTS.md): ``point_id``, ``lon``, ``lat`` (WGS84), ``year``, ``class_code``; optional
``validated`` (only true rows are used), ``source`` and ``purpose``: ``training`` (the default) or ``accuracy``
for points collected to assess the map (kept out of training; see :mod:`terracover.accuracy`). A file that
breaks the schema is rejected with the file and rows named, never half-read.
"""

from __future__ import annotations

import io
import json
from pathlib import PurePosixPath

import pandas as pd

from terracover.classes import CLASS_CODES
from terracover.keys import LABELS_PREFIX, label_key
from terracover.store import ObjectStore

REQUIRED = ("point_id", "lon", "lat", "year", "class_code")
TRAINING_PURPOSE = "training"
ACCURACY_PURPOSE = "accuracy"  # optional ``purpose`` column: points collected to assess the map, not to train it
FORMATS = (".geojson", ".json", ".csv", ".parquet")


class LabelError(ValueError):
    """A label file that cannot be used as it is; the message says which file, rows and how to fix them."""


def _from_geojson(data: bytes, key: str) -> pd.DataFrame:
    doc = json.loads(data)
    feats = doc.get("features", [doc] if doc.get("type") == "Feature" else [])
    rows = []
    for i, f in enumerate(feats):
        geom = f.get("geometry") or {}
        if geom.get("type") != "Point":
            raise LabelError(f"{key}: feature {i} is a {geom.get('type')}, labels must be Point features")
        lon, lat = geom["coordinates"][:2]
        rows.append({**(f.get("properties") or {}), "lon": lon, "lat": lat})
    return pd.DataFrame(rows)


def read_label_file(store: ObjectStore, key: str) -> pd.DataFrame:
    """One label file as a validated frame (all rows, validated or not)."""
    suffix = PurePosixPath(key).suffix.lower()
    data = store.get_bytes(key)
    if suffix in (".geojson", ".json"):
        df = _from_geojson(data, key)
    elif suffix == ".csv":
        df = pd.read_csv(io.BytesIO(data))
    elif suffix == ".parquet":
        df = pd.read_parquet(io.BytesIO(data))
    else:
        raise LabelError(f"{key}: unsupported label format {suffix!r}; use one of {', '.join(FORMATS)}")
    return _validate(df, key)


def _validate(df: pd.DataFrame, key: str) -> pd.DataFrame:
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise LabelError(f"{key}: missing column(s) {missing}; required: {list(REQUIRED)}")
    out = df.copy()
    out["point_id"] = out["point_id"].astype(str)
    for col in ("lon", "lat"):
        out[col] = pd.to_numeric(out[col], errors="coerce")
    for col in ("year", "class_code"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("Int64")
    out["validated"] = out["validated"].astype(bool) if "validated" in out else True
    out["source"] = out["source"].astype(str) if "source" in out else PurePosixPath(key).name
    purpose = out["purpose"] if "purpose" in out else pd.Series(TRAINING_PURPOSE, index=out.index)
    out["purpose"] = purpose.fillna(TRAINING_PURPOSE).astype(str).str.strip().str.lower().replace("", TRAINING_PURPOSE)
    problems = []
    bad_purpose = ~out["purpose"].isin([TRAINING_PURPOSE, ACCURACY_PURPOSE])
    if bad_purpose.any():
        problems.append(
            f"purpose not in ['{TRAINING_PURPOSE}', '{ACCURACY_PURPOSE}'] in rows {list(out.index[bad_purpose][:10])}"
        )
    bad_num = out[["lon", "lat", "year", "class_code"]].isna().any(axis=1)
    if bad_num.any():
        problems.append(f"non-numeric lon/lat/year/class_code in rows {list(out.index[bad_num][:10])}")
    bad_pos = ~(out["lon"].between(-180, 180) & out["lat"].between(-90, 90)) & ~bad_num
    if bad_pos.any():
        problems.append(f"lon/lat outside WGS84 ranges in rows {list(out.index[bad_pos][:10])}")
    bad_cls = ~out["class_code"].isin(CLASS_CODES) & ~bad_num
    if bad_cls.any():
        problems.append(
            f"class_code not in {list(CLASS_CODES)} in rows {list(out.index[bad_cls][:10])} "
            f"(values {sorted(set(out.loc[bad_cls, 'class_code'].astype(int)))[:10]})"
        )
    if problems:
        raise LabelError(f"{key}: " + "; ".join(problems))
    out["year"] = out["year"].astype("int64")
    out["class_code"] = out["class_code"].astype("int64")
    return out[[*REQUIRED, "validated", "source", "purpose"]]


def label_keys(store: ObjectStore, prefix: str = LABELS_PREFIX) -> list[str]:
    return [k for k in store.list(prefix) if PurePosixPath(k).suffix.lower() in FORMATS]


def read_labels(store: ObjectStore, year: int | None = None, prefix: str = LABELS_PREFIX) -> pd.DataFrame:
    """Every validated label (of ``year``); a point_id seen in several files keeps its newest file's row."""
    keys = sorted(label_keys(store, prefix), key=lambda k: (store.modified(k), k))
    frames = [read_label_file(store, k) for k in keys]
    if not frames:
        return pd.DataFrame(columns=[*REQUIRED, "validated", "source", "purpose"])
    df = pd.concat(frames, ignore_index=True)
    df = df[df["validated"]]
    if year is not None:
        df = df[df["year"] == year]
    return df.drop_duplicates("point_id", keep="last").sort_values("point_id").reset_index(drop=True)


def write_labels(store: ObjectStore, df: pd.DataFrame, name: str) -> str:
    """Drop a label file (Parquet) into ``labels/``: how tests, the demo and field campaigns deliver labels."""
    key = label_key(name)
    with store.writer(key, suffix=".parquet") as path:
        df.to_parquet(path, index=False)
    return key
