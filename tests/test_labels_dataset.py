"""Labels in every accepted format, sampling stacks at points, the spatial split, content-addressed tables and the
Great Expectations gate, on small synthetic stacks (no Airflow)."""

from __future__ import annotations

import hashlib
import json
import os
import time

import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer
from terracover import grid
from terracover.catalog import open_catalog
from terracover.classes import CLASS_CODES
from terracover.dataset import (
    META,
    assemble_training_table,
    canonical_bytes,
    sample_stacks,
    spatial_split,
    store_training_table,
)
from terracover.features import all_features
from terracover.labels import LabelError, read_label_file, read_labels, write_labels
from terracover.quality import QualityGateError, gate, validate_training_table
from terracover.settings import Settings
from terracover.store import open_store

from tests.synthetic_stacks import write_stack

YEAR = 2023
SIZE = 183
NAMES = all_features()  # assembling a table samples every feature


def _points_in(st: grid.Subtile, n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` labelled points at pixel centres of ``st``, every class represented, spread over the subtile."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(2, st.shape[0] - 2, n)
    cols = rng.integers(2, st.shape[1] - 2, n)
    xs, ys = st.transform @ (cols + 0.5, rows + 0.5)
    lon, lat = Transformer.from_crs(st.crs, 4326, always_xy=True).transform(xs, ys)
    return pd.DataFrame(
        {
            "point_id": [f"p{i:04d}" for i in range(n)],
            "lon": lon,
            "lat": lat,
            "year": YEAR,
            "class_code": [CLASS_CODES[i % len(CLASS_CODES)] for i in range(n)],
            "_row": rows,
            "_col": cols,
        }
    )


@pytest.fixture
def stack(settings: Settings) -> tuple[grid.Subtile, np.ndarray]:
    st = grid.subtile_of_point(-0.3, 39.5, SIZE)
    values = write_stack(open_store(settings), open_catalog(settings), YEAR, st, NAMES, nan_rows=slice(0, 1))
    return st, values


# --- labels ----------------------------------------------------------------------------------------------


def test_geojson_csv_and_parquet_labels_read_alike(settings: Settings) -> None:
    store = open_store(settings)
    df = pd.DataFrame({"point_id": ["a", "b"], "lon": [0.1, 0.2], "lat": [39.1, 39.2], "year": [2023, 2023],
                       "class_code": [4, 7]})  # fmt: skip
    store.put_bytes("labels/x.csv", df.to_csv(index=False).encode())
    gj = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]},
             "properties": {"point_id": r.point_id, "year": r.year, "class_code": r.class_code}}
            for r in df.itertuples()
        ],
    }  # fmt: skip
    store.put_bytes("labels/x.geojson", json.dumps(gj).encode())
    write_labels(store, df, "x")
    frames = [read_label_file(store, f"labels/x.{ext}") for ext in ("csv", "geojson", "parquet")]
    for f in frames:
        pd.testing.assert_frame_equal(f.drop(columns="source"), frames[0].drop(columns="source"))
    assert frames[0].class_code.tolist() == [4, 7] and frames[0].validated.all()


@pytest.mark.parametrize(
    ("csv", "needle"),
    [
        ("point_id,lon,lat,year\na,0,0,2023\n", "missing column(s) ['class_code']"),
        ("point_id,lon,lat,year,class_code\na,0,0,2023,12\n", "class_code not in"),
        ("point_id,lon,lat,year,class_code\na,500,0,2023,1\n", "outside WGS84"),
        ("point_id,lon,lat,year,class_code\na,east,0,2023,1\n", "non-numeric"),
        ("point_id,lon,lat,year,class_code,purpose\na,0,0,2023,1,validation\n", "purpose not in"),
    ],
)
def test_bad_label_files_are_rejected_with_the_reason(settings: Settings, csv: str, needle: str) -> None:
    store = open_store(settings)
    store.put_bytes("labels/bad.csv", csv.encode())
    with pytest.raises(LabelError, match=r"labels/bad\.csv") as err:
        read_label_file(store, "labels/bad.csv")
    assert needle in str(err.value)


def test_polygon_labels_are_rejected(settings: Settings) -> None:
    store = open_store(settings)
    gj = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
          "properties": {}}  # fmt: skip
    store.put_bytes("labels/poly.geojson", json.dumps(gj).encode())
    with pytest.raises(LabelError, match="Point"):
        read_label_file(store, "labels/poly.geojson")


def test_newest_file_wins_and_unvalidated_rows_are_dropped(settings: Settings) -> None:
    store = open_store(settings)
    base = pd.DataFrame({"point_id": ["a", "b", "c"], "lon": [0.0] * 3, "lat": [39.0] * 3, "year": [2023] * 3,
                         "class_code": [1, 2, 3], "validated": [True, True, False]})  # fmt: skip
    write_labels(store, base, "first")
    fix = base.iloc[[0]].assign(class_code=9)
    write_labels(store, fix, "second")
    later = time.time() + 5
    os.utime(settings.home / "store" / "labels" / "second.parquet", (later, later))
    got = read_labels(store, year=2023)
    assert got.set_index("point_id").class_code.to_dict() == {"a": 9, "b": 2}
    assert read_labels(store, year=2020).empty


# --- sampling and splitting ------------------------------------------------------------------------------


def test_sampling_reads_each_points_own_pixel(settings: Settings, stack: tuple[grid.Subtile, np.ndarray]) -> None:
    st, values = stack
    pts = _points_in(st, 40)
    table, report = sample_stacks(pts, YEAR, open_store(settings), open_catalog(settings), SIZE, NAMES)
    assert report.sampled == 40 and not report.missing_coverage and not report.no_data
    merged = table.merge(pts, on="point_id")
    assert (merged.row == merged._row).all() and (merged.col == merged._col).all()
    expect = values[:, merged._row, merged._col].T
    np.testing.assert_array_equal(merged[NAMES].to_numpy(np.float32), expect)


def test_points_without_coverage_or_data_are_reported_not_dropped(
    settings: Settings, stack: tuple[grid.Subtile, np.ndarray]
) -> None:
    st, _ = stack
    pts = _points_in(st, 3)
    x, y = st.transform @ (10.5, 0.5)  # row 0 is NaN in the stack
    lon, lat = Transformer.from_crs(st.crs, 4326, always_xy=True).transform(x, y)
    nan_pt = pd.DataFrame({"point_id": ["nan"], "lon": [lon], "lat": [lat], "year": [YEAR], "class_code": [1]})
    far = pd.DataFrame({"point_id": ["far"], "lon": [10.0], "lat": [45.0], "year": [YEAR], "class_code": [1]})
    table, report = sample_stacks(
        pd.concat([pts, nan_pt, far]), YEAR, open_store(settings), open_catalog(settings), SIZE, NAMES
    )
    assert report.missing_coverage == ["far"] and report.no_data == ["nan"] and len(table) == 3


def test_spatial_split_is_stratified_and_never_splits_a_location() -> None:
    rng = np.random.default_rng(1)
    n = 600
    df = pd.DataFrame(
        {
            "tile": "30SYJ",
            "subtile": "r000c000",
            "row": rng.integers(0, 40, n),
            "col": rng.integers(0, 40, n),
            "class_code": rng.choice(CLASS_CODES, n),
        }
    )
    split = spatial_split(df, test_fraction=0.25, seed=3)
    assert set(split) == {"train", "test"}
    per_pixel = df.assign(split=split).groupby(["row", "col"]).split.nunique()
    assert (per_pixel == 1).all()
    for code in CLASS_CODES:
        frac = (split[df.class_code == code] == "test").mean()
        assert 0.1 < frac < 0.4, (code, frac)
    pd.testing.assert_series_equal(split, spatial_split(df, test_fraction=0.25, seed=3))


def test_canonical_bytes_do_not_depend_on_row_order() -> None:
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"point_id": [f"p{i}" for i in range(50)], "lon": rng.random(50), "lat": rng.random(50),
                       "year": 2023, "class_code": 1, "tile": "t", "subtile": "s", "row": 1, "col": 2,
                       "split": "train", "dem": rng.random(50)})  # fmt: skip
    shuffled = df.sample(frac=1, random_state=0)
    assert canonical_bytes(df) == canonical_bytes(shuffled)
    assert canonical_bytes(df) != canonical_bytes(df.assign(dem=df.dem + 1))


def test_table_is_stored_under_its_hash_and_new_labels_replace_champion_rows(
    settings: Settings, stack: tuple[grid.Subtile, np.ndarray]
) -> None:
    st, _ = stack
    store, catalog = open_store(settings), open_catalog(settings)
    pts = _points_in(st, 45)
    write_labels(store, pts.drop(columns=["_row", "_col"]), "campaign-1")
    table, new, _ = assemble_training_table(YEAR, store, catalog, SIZE)
    info = store_training_table(YEAR, table, store, new)
    assert info.key == f"datasets/{YEAR}/{info.sha256}.parquet"
    assert hashlib.sha256(store.get_bytes(info.key)).hexdigest() == info.sha256
    assert list(table.columns[: len(META)]) == META

    relabel = pts.iloc[[0]].drop(columns=["_row", "_col"]).assign(class_code=9 if pts.class_code[0] != 9 else 1)
    store.delete("labels/campaign-1.parquet")
    write_labels(store, relabel, "campaign-2")
    table2, new2, _ = assemble_training_table(YEAR, store, catalog, SIZE, champion_table_uri=info.uri)
    assert new2 == 1 and len(table2) == len(table)
    assert table2.set_index("point_id").class_code["p0000"] == relabel.class_code.iloc[0]


def test_accuracy_labels_get_their_own_split_and_keep_it_when_merged(
    settings: Settings, stack: tuple[grid.Subtile, np.ndarray]
) -> None:
    st, _ = stack
    store, catalog = open_store(settings), open_catalog(settings)
    pts = _points_in(st, 45).drop(columns=["_row", "_col"])
    pts["purpose"] = ["accuracy" if i % 5 == 0 else "" for i in range(len(pts))]  # blank means training
    write_labels(store, pts, "campaign")
    assert set(read_labels(store, YEAR).purpose) == {"accuracy", "training"}
    table, _, _ = assemble_training_table(YEAR, store, catalog, SIZE)
    assessed = set(pts.point_id[pts.purpose == "accuracy"])
    assert set(table.point_id[table.split == "accuracy"]) == assessed & set(table.point_id)
    assert {"train", "test"} <= set(table.split[~table.point_id.isin(assessed)])
    info = store_training_table(YEAR, table, store, len(table))
    # the champion's accuracy points stay accuracy points when a later campaign only adds training points
    store.delete("labels/campaign.parquet")
    write_labels(store, pts.iloc[[1]].assign(purpose="training"), "more")
    table2, _, _ = assemble_training_table(YEAR, store, catalog, SIZE, champion_table_uri=info.uri)
    assert set(table2.point_id[table2.split == "accuracy"]) == set(table.point_id[table.split == "accuracy"])


def test_no_labels_for_the_year_is_a_clear_error(settings: Settings) -> None:
    with pytest.raises(LookupError, match="no validated labels for 2023"):
        assemble_training_table(YEAR, open_store(settings), open_catalog(settings), SIZE)


# --- the quality gate ------------------------------------------------------------------------------------


def _good_table(n_per_class: int = 6) -> pd.DataFrame:
    rows = []
    for i, code in enumerate(np.repeat(CLASS_CODES, n_per_class)):
        rows.append({"point_id": f"p{i}", "lon": 0.001 * i, "lat": 39.0, "year": 2023, "class_code": int(code),
                     "tile": "30SYJ", "subtile": "r000c000", "row": i, "col": 0,
                     "split": "test" if i % 4 == 0 else "train", "summer_ndvi": 0.5, "summer_B04": 0.1,
                     "slope": 12.0})  # fmt: skip
    return pd.DataFrame(rows)


def test_quality_gate_passes_a_good_table_and_names_every_defect() -> None:
    good = validate_training_table(_good_table(), min_samples_per_class=5)
    assert good.passed and good.evaluated > 10, good.markdown()
    cloudy = _good_table()
    cloudy.loc[cloudy.index[3], "summer_B04"] = np.nan  # a season never seen there: kept for NaN-aware models
    assert validate_training_table(cloudy, min_samples_per_class=5).passed

    bad = _good_table()
    bad = bad[bad.class_code != 4]  # no water
    bad.loc[bad.index[0], "summer_ndvi"] = 7.0  # an NDVI can never be 7
    bad.loc[bad.index[1], "point_id"] = bad.point_id.iloc[2]  # duplicate point
    bad.loc[bad.index[3:], "summer_B04"] = np.nan  # missing at most points: broken data, not clouds
    report = validate_training_table(bad, min_samples_per_class=5)
    text = report.markdown()
    assert not report.passed
    assert "classes missing from the table: water" in text
    assert "summer_ndvi" in text and "point_id" in text and "summer_B04" in text

    few = _good_table(n_per_class=3)
    with pytest.raises(QualityGateError, match="classes below 5 samples"):
        gate(few, min_samples_per_class=5)
