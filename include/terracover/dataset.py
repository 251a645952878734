"""Training tables: labels sampled from the year's feature stacks, merged with the champion's data, split by
location, canonicalised and stored under their content hash ``datasets/{year}/{sha256}.parquet``; and read back
(by URI or the year's newest) as one :class:`TrainingTable` for training, evaluation and serving.
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyproj import Transformer
from rasterio.io import DatasetReader
from rasterio.windows import Window

from terracover import grid
from terracover.catalog import COMPOSITES_COLLECTION, Catalog
from terracover.classes import class_name
from terracover.features import all_features, select_bands
from terracover.keys import dataset_key, datasets_prefix, stack_key
from terracover.labels import ACCURACY_PURPOSE, read_labels
from terracover.observation import QA_BANDS, has_observation, is_quality_column, quality_columns
from terracover.stacks import stack_item_id
from terracover.store import ObjectStore

log = logging.getLogger(__name__)

# The columns of a training table that are not features, in table order (docs/CONTRACTS.md).
ACCURACY_SPLIT = "accuracy"  # rows of labels with purpose "accuracy": neither trained on nor used to select models
META = ["point_id", "lon", "lat", "year", "class_code", "tile", "subtile", "row", "col", "split"]


@dataclass(frozen=True)
class SampleReport:
    sampled: int
    missing_coverage: list[str] = field(default_factory=list)  # point ids whose subtile has no stack
    no_data: list[str] = field(default_factory=list)  # point ids where no season was observed or filled
    incomplete: list[str] = field(default_factory=list)  # kept, with some features missing (NaN)


def sample_stacks(
    points: pd.DataFrame,
    year: int,
    store: ObjectStore,
    catalog: Catalog,
    subtile_size: int,
    features: Sequence[str] | None = None,
    neighbourhood: int = 1,
) -> tuple[pd.DataFrame, SampleReport]:
    """Feature values at each point's pixel (``neighbourhood=3``: the mean of its 3 x 3 window).

    Points are grouped by the subtile that owns them and each stack is opened once; only the points' own
    windows are read. Points without coverage are reported, never silently dropped. Points with some features
    missing are kept (NaN; configurations that cannot use them drop them when fitting), with the stack's
    ``qa_{season}`` bands as meta columns when it has them; points where nothing was seen are reported.
    """
    if neighbourhood not in (1, 3):
        raise ValueError(f"neighbourhood must be 1 or 3 pixels, got {neighbourhood}")
    names = list(features or all_features())
    half = neighbourhood // 2
    owners = [grid.subtile_of_point(lon, lat, subtile_size) for lon, lat in zip(points.lon, points.lat, strict=True)]
    frame = points.assign(tile=[s.tile.name for s in owners], subtile=[s.id for s in owners])
    rows: list[dict[str, object]] = []
    missing: list[str] = []
    no_data: list[str] = []
    incomplete: list[str] = []
    qa_seen: set[str] = set()
    for (tile, sub_id), group in frame.groupby(["tile", "subtile"], sort=True):
        st = grid.subtile(str(tile), str(sub_id), subtile_size)
        if catalog.get_item(COMPOSITES_COLLECTION, stack_item_id(year, st)) is None or not store.exists(
            stack_key(year, st)
        ):
            missing += group.point_id.tolist()
            continue
        xs, ys = Transformer.from_crs(4326, st.crs, always_xy=True).transform(
            group.lon.to_numpy(), group.lat.to_numpy()
        )
        cols, rws = ~st.transform @ (np.asarray(xs), np.asarray(ys))
        rr, cc = np.floor(rws).astype(int), np.floor(cols).astype(int)
        with store.open_raster(stack_key(year, st)) as src:
            bands = list(src.descriptions)
            qa_names = [q for q in QA_BANDS if q in bands]
            vectors = _read_points(src, select_bands(bands, [*names, *qa_names]), rr, cc, half)
        seen = has_observation(vectors[:, : len(names)], names)
        for (_, p), r, c, vec, ok in zip(group.iterrows(), rr, cc, vectors, seen, strict=True):
            if not ok:
                no_data.append(str(p.point_id))
                continue
            if not np.isfinite(vec[: len(names)]).all():
                incomplete.append(str(p.point_id))
            rows.append(
                {
                    **{k: p[k] for k in ("point_id", "lon", "lat", "year", "class_code", "tile", "subtile")},
                    "row": int(r),
                    "col": int(c),
                    **dict(zip([*names, *qa_names], vec.astype(np.float32), strict=True)),
                }
            )
            qa_seen.update(qa_names)
    if missing or no_data:
        log.warning(
            "sampling %d: %d points outside composite coverage (e.g. %s), %d on no-data pixels",
            year,
            len(missing),
            missing[:5],
            len(no_data),
        )
    if incomplete:
        log.info("sampling %d: %d points kept with missing features (for NaN-aware models)", year, len(incomplete))
    table = pd.DataFrame(rows, columns=[*META[:-1], *names, *(q for q in QA_BANDS if q in qa_seen)])
    return table, SampleReport(len(table), missing, no_data, incomplete)


_BAND_ROWS = 256  # rows per read: bounded memory (256 x 1098 px x 105 features x 4 B ~ 118 MB)


def _read_points(src: DatasetReader, idx: list[int], rows: np.ndarray, cols: np.ndarray, half: int) -> np.ndarray:
    """(n, F) mean of each point's (2 half + 1)^2 window, NaN-padded outside the raster.

    Points are read in bands of rows, one window per band covering its points: a few large reads instead of
    one small read per point (each a GDAL round trip, and boundless reads build a VRT every time).
    """
    out = np.full((len(rows), len(idx)), np.nan, dtype=np.float32)
    order = np.argsort(rows, kind="stable")
    h, w = src.height, src.width
    start = 0
    while start < len(order):
        r0 = rows[order[start]]
        stop = start
        while stop < len(order) and rows[order[stop]] < r0 + _BAND_ROWS:
            stop += 1
        sel = order[start:stop]
        top, bottom = r0 - half, rows[sel].max() + half + 1
        left, right = cols[sel].min() - half, cols[sel].max() + half + 1
        block = np.full((len(idx), bottom - top, right - left), np.nan, dtype=np.float32)
        rt, rb, cl, cr = max(top, 0), min(bottom, h), max(left, 0), min(right, w)
        if rb > rt and cr > cl:
            block[:, rt - top : rb - top, cl - left : cr - left] = src.read(
                idx, window=Window(cl, rt, cr - cl, rb - rt), out_dtype=np.float32
            )
        for i in sel:
            r, c = rows[i] - top, cols[i] - left
            win = block[:, r - half : r + half + 1, c - half : c + half + 1].reshape(len(idx), -1)
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows stay NaN: reported as no data
                out[i] = np.nanmean(win, axis=1)
        start = stop
    return out


def spatial_split(
    df: pd.DataFrame, test_fraction: float = 0.25, block_size_m: float | None = None, seed: int = 42
) -> pd.Series:
    """``train``/``test`` per row, by location: rows of one pixel (or one spatial block) never straddle the split.

    Stratified by class: each class's locations are shuffled and about ``test_fraction`` of them go to test,
    at least one on each side when the class has two or more locations.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if block_size_m:
        block = 10.0 * df["col"] // block_size_m, 10.0 * df["row"] // block_size_m
        key = (
            df["tile"]
            + "/"
            + df["subtile"]
            + "/"
            + block[0].astype(int).astype(str)
            + "_"
            + block[1].astype(int).astype(str)
        )
    else:
        key = df["tile"] + "/" + df["subtile"] + "/" + df["row"].astype(str) + "_" + df["col"].astype(str)
    majority = df.groupby(key)["class_code"].agg(lambda s: int(str(s.value_counts().idxmax())))
    rng = np.random.default_rng(seed)
    test_groups: set[str] = set()
    for _, groups in majority.groupby(majority):
        names = sorted(groups.index)
        rng.shuffle(names)
        n_test = round(test_fraction * len(names))
        if len(names) >= 2:
            n_test = min(max(n_test, 1), len(names) - 1)
        test_groups.update(names[:n_test])
    return pd.Series(np.where(key.isin(test_groups), "test", "train"), index=df.index, name="split")


def canonical_bytes(table: pd.DataFrame) -> bytes:
    """The table as deterministic Parquet bytes: sorted rows, fixed column order and types."""
    feats = [*feature_columns(table), *quality_columns(table.columns)]  # qa_* meta columns kept, after features
    t = table.sort_values("point_id").reset_index(drop=True)[[*META, *feats]].copy()
    t[feats] = t[feats].astype(np.float32)
    for col in ("year", "class_code", "row", "col"):
        t[col] = t[col].astype(np.int64)
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(t, preserve_index=False), buf, compression="zstd", write_statistics=False)
    return buf.getvalue()


@dataclass(frozen=True)
class TrainingTable:
    """A stored training table with its identity: store key, URI and content hash (the file name)."""

    frame: pd.DataFrame
    year: int
    key: str
    uri: str
    sha256: str

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def class_counts(self) -> dict[int, int]:
        return {int(str(k)): int(v) for k, v in self.frame.class_code.value_counts().sort_index().items()}

    @property
    def split_counts(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.frame.split.value_counts().items()}


def key_for_uri(store: ObjectStore, uri: str) -> str:
    """The store key of a URI this store produced (``store.uri(key)``)."""
    root = store.root.rstrip("/") + "/"
    uri = uri.removeprefix("file://")
    if not uri.startswith(root):
        raise ValueError(f"{uri} is not in store {store.root}")
    return uri[len(root) :]


def assemble_training_table(
    year: int,
    store: ObjectStore,
    catalog: Catalog,
    subtile_size: int,
    champion_table_uri: str | None = None,
    test_fraction: float = 0.25,
    seed: int = 42,
    neighbourhood: int = 1,
) -> tuple[pd.DataFrame, int, SampleReport]:
    """Sample the year's labels, merge the champion's rows (new labels win) and split: (table, new, report)."""
    labels = read_labels(store, year=year)
    if labels.empty:
        raise LookupError(f"no validated labels for {year} under labels/: drop a GeoJSON/CSV/Parquet file there")
    sampled, report = sample_stacks(labels, year, store, catalog, subtile_size, neighbourhood=neighbourhood)
    new_points = len(sampled)
    if champion_table_uri:
        previous = pd.read_parquet(io.BytesIO(store.get_bytes(key_for_uri(store, champion_table_uri))))
        previous = previous[~previous.point_id.isin(sampled.point_id)]
        columns = [*sampled.columns, *(c for c in quality_columns(previous.columns) if c not in sampled.columns)]
        sampled = pd.concat([previous.reindex(columns=columns), sampled], ignore_index=True)
    sampled["split"] = spatial_split(sampled, test_fraction=test_fraction, seed=seed)
    # accuracy-assessment points never train nor select a model: their own split (terracover.accuracy)
    assess = set(labels.loc[labels["purpose"] == ACCURACY_PURPOSE, "point_id"])
    if champion_table_uri:
        assess |= set(previous.loc[previous["split"] == ACCURACY_SPLIT, "point_id"])
    sampled.loc[sampled["point_id"].isin(assess), "split"] = ACCURACY_SPLIT
    return pd.read_parquet(io.BytesIO(canonical_bytes(sampled))), new_points, report


def store_training_table(year: int, table: pd.DataFrame, store: ObjectStore, new_points: int) -> TrainingTable:
    """Write the canonical bytes under their sha256 (skipped when that exact table exists)."""
    data = canonical_bytes(table)
    sha = hashlib.sha256(data).hexdigest()
    key = dataset_key(year, sha)
    if not store.exists(key):
        with store.writer(key, suffix=".parquet") as path:
            path.write_bytes(data)
    info = TrainingTable(table, year, key, store.uri(key), sha)
    log.info(
        "training table %d: %d rows (%d new points), classes %s -> %s",
        year,
        info.rows,
        new_points,
        info.class_counts,
        info.uri,
    )
    return info


def newest_table_key(year: int, store: ObjectStore) -> str:
    """The most recently written ``datasets/{year}/*.parquet`` of the store."""
    prefix = datasets_prefix(year)
    keys = [k for k in store.list(prefix) if k.endswith(".parquet")]
    if not keys:
        raise FileNotFoundError(
            f"no training table under {store.root}/{prefix}: run build_training_set for {year} first"
        )
    return max(keys, key=lambda k: (store.modified(k), k))


def load_table(year: int, dataset_uri: str | None, store: ObjectStore) -> TrainingTable:
    """The table at ``dataset_uri``, else the year's newest; its sha256 is its file name (CONTRACTS.md)."""
    key = key_for_uri(store, dataset_uri) if dataset_uri else newest_table_key(year, store)
    frame = pd.read_parquet(io.BytesIO(store.get_bytes(key)))
    uri = store.uri(key)
    years = set(frame["year"].unique().tolist()) if "year" in frame else set()
    if years != {int(year)}:
        raise ValueError(f"{uri} holds years {sorted(years)}, not {year}: pass the dataset_uri of a {year} table")
    return TrainingTable(frame, int(year), key, uri, key.rsplit("/", 1)[-1].removesuffix(".parquet"))


def feature_columns(table: pd.DataFrame) -> list[str]:
    """The table's feature columns, in table order (everything but the contract meta and ``qa_*`` columns)."""
    return [c for c in table.columns if c not in META and not is_quality_column(c)]


def split_xy(table: pd.DataFrame, features: Sequence[str], split: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Feature matrix (float32, columns in ``features`` order) and class codes, optionally of one split."""
    missing = [f for f in features if f not in table.columns]
    if missing:
        raise ValueError(f"training table lacks feature columns {missing}; rebuild the dataset with these features")
    rows = table if split is None else table[table["split"] == split]
    if rows.empty:
        raise ValueError(f"training table has no rows with split == {split!r}")
    return rows[list(features)].to_numpy(dtype=np.float32), rows["class_code"].to_numpy(dtype=np.int64)


def data_added_summary(table: pd.DataFrame, previous: pd.DataFrame | None, uri: str) -> str:
    """Markdown: the dataset per split and class, and the points it adds over the champion's dataset."""

    def per_class(frame: pd.DataFrame) -> str:
        counts = frame["class_code"].value_counts().sort_index()
        return ", ".join(f"{class_name(c)} {n}" for c, n in zip(counts.index, counts, strict=True)) or "none"

    splits = table["split"].value_counts()
    lines = [
        f"- dataset `{uri}`: {len(table)} points (train {splits.get('train', 0)}, "
        f"test {splits.get('test', 0)}); {per_class(table)}"
    ]
    if previous is None:
        lines.append("- no champion dataset to compare with")
    else:
        old_ids = set(previous["point_id"])
        new = table[~table["point_id"].isin(old_ids)]
        gone = len(old_ids - set(table["point_id"]))
        lines.append(f"- added since the champion's dataset: {len(new)} points ({per_class(new)}); removed {gone}")
    return "\n".join(lines)
