"""An alert keeps firing for its whole window and every retrain_on_alert run decides again: a label set starts
one retraining, not one per run; labels not yet trained on start the next (embedded MLflow, no Airflow)."""

from __future__ import annotations

import pandas as pd
from terracover.labels import write_labels
from terracover.retraining import decide
from terracover.settings import Settings
from terracover.store import open_store

LABELS = pd.DataFrame(
    {
        "point_id": ["a", "b", "c"],
        "lon": [0.01, 0.02, 0.03],
        "lat": [39.95] * 3,
        "year": [2023] * 3,
        "class_code": [1, 2, 3],
    }
)


def test_a_label_set_starts_one_retraining_however_often_the_alert_is_seen(settings: Settings) -> None:
    store = open_store(settings)
    write_labels(store, LABELS, "campaign-1")
    first = decide(2023, "TerracoverLowConfidence", settings)
    assert first.retrain and first.new_label_points == 3 and first.labels_digest

    # The same alert, seen by the next run while that training waits for approval: recorded, not repeated.
    again = decide(2023, "TerracoverLowConfidence", settings)
    assert not again.retrain and again.labels_digest == first.labels_digest
    assert "already started training 2023 on this label set" in again.reason, again.reason

    # An identical rewrite is the same content; a new point is not.
    write_labels(store, LABELS, "campaign-1")
    assert not decide(2023, "TerracoverLowConfidence", settings).retrain
    write_labels(store, LABELS.assign(point_id=["a", "b", "d"], lon=[0.01, 0.02, 0.04]), "campaign-2")
    more = decide(2023, "TerracoverLowConfidence", settings)
    assert more.retrain and more.new_label_points == 4 and more.labels_digest != first.labels_digest
