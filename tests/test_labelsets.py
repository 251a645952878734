"""New labels are new content: identical files rewritten later start nothing; a moved, relabelled or added point
does; tables remember the label set they were built from (no Airflow, no MLflow)."""

from __future__ import annotations

import io

import pandas as pd
from terracover.labels import write_labels
from terracover.labelsets import current_sets, new_points, record, recorded, unbuilt
from terracover.settings import Settings
from terracover.store import open_store

LABELS = pd.DataFrame(
    {
        "point_id": ["a", "b", "c", "d"],
        "lon": [0.01, 0.02, 0.03, 0.04],
        "lat": [39.95] * 4,
        "year": [2023, 2023, 2023, 2024],
        "class_code": [1, 2, 3, 4],
    }
)
TABLE = "datasets/2023/" + "ab" * 32 + ".parquet"


def test_identical_rewrite_is_not_new_but_changed_points_are(settings: Settings) -> None:
    store = open_store(settings)
    write_labels(store, LABELS, "campaign-1")
    assert set(unbuilt(store)) == {2023, 2024}  # no table yet
    record(store, TABLE, current_sets(store)[2023])
    assert set(unbuilt(store)) == {2024}
    assert new_points(store, 2023, TABLE) == ()

    # The same rows written again (a new file time, and as another file): nothing new.
    write_labels(store, LABELS, "campaign-1")
    write_labels(store, LABELS.iloc[:2], "campaign-1-copy")
    assert set(unbuilt(store)) == {2024} and new_points(store, 2023, TABLE) == ()

    # A relabelled point and a moved point are new content; other years' points do not count for 2023.
    write_labels(store, LABELS.assign(class_code=[1, 9, 3, 4], lon=[0.01, 0.02, 0.035, 0.04]), "campaign-2")
    assert len(new_points(store, 2023, TABLE)) == 2
    assert set(unbuilt(store)) == {2023, 2024}


def test_a_table_without_a_record_is_compared_by_its_rows(settings: Settings) -> None:
    store = open_store(settings)
    write_labels(store, LABELS, "campaign-1")
    rows = LABELS[LABELS.year == 2023].iloc[:2]
    buf = io.BytesIO()
    rows.to_parquet(buf, index=False)
    store.put_bytes(TABLE, buf.getvalue())
    assert recorded(store, 2023, TABLE) is None
    assert len(new_points(store, 2023, TABLE)) == 1  # point c is in no row of the table
    assert len(new_points(store, 2023, None)) == 3  # no champion: every point is new
    assert new_points(store, 2030, TABLE) == ()
