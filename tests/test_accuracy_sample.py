"""The reference sample behind area estimates: orientation, provenance and the API block."""

from __future__ import annotations

import pytest
from terracover.accuracy import AccuracySample, area_estimates, from_confusion_csv, from_predictions
from terracover.evaluate import evaluate


def test_rows_are_map_classes_and_columns_reference_classes():
    reference = [6, 6, 6, 2, 2, 7]
    mapped = [6, 6, 2, 2, 2, 7]  # one cropland point mapped as herbaceous vegetation
    s = from_predictions(reference, mapped, "test", "held_out_test_points")
    assert s.codes == [2, 6, 7]
    assert s.error_matrix == [[2, 1, 0], [0, 2, 0], [0, 0, 1]]
    assert s.size_per_class() == {"herbaceousVegetation": 2, "cropland": 3, "closedForest": 1}
    assert AccuracySample.from_json(s.to_json()) == s


def test_confusion_csv_of_older_runs_is_transposed_into_the_same_matrix():
    reference = [6, 6, 6, 2, 2, 7]
    mapped = [6, 6, 2, 2, 2, 7]
    ev = evaluate(reference, mapped)  # rows true, columns predicted
    assert from_confusion_csv(ev.confusion_csv(), "test").error_matrix == (
        from_predictions(reference, mapped, "test", "held_out_test_points").error_matrix
    )


def test_area_estimates_block_corrects_mapped_areas_and_says_where_the_sample_came_from():
    s = from_predictions(
        [6] * 8 + [2] * 10, [6] * 6 + [2] * 2 + [2] * 10, "held-out test points", "held_out_test_points"
    )
    block = area_estimates({"cropland": 30.0, "herbaceousVegetation": 70.0}, s)
    crop, herb = block["classes"]["cropland"], block["classes"]["herbaceousVegetation"]
    assert crop["mapped_ha"] == 30.0 and herb["mapped_ha"] == 70.0
    # every mapped cropland point was cropland, a sixth of the herbaceous ones were cropland: cropland grows
    assert crop["estimated_ha"] == pytest.approx(30 + 70 * 2 / 12)
    assert crop["estimated_ha"] + herb["estimated_ha"] == pytest.approx(100.0)
    assert crop["users_accuracy"] == 1.0 and crop["ci95_ha"] > 0
    assert 0 < block["overall_accuracy"] < 1 and block["overall_accuracy_ci95"] > 0
    sample = block["accuracy_sample"]
    assert sample["size"] == 18 and sample["size_per_class"] == {"herbaceousVegetation": 10, "cropland": 8}
    assert "not a probability sample" in sample["caveat"]


def test_a_mapped_class_the_sample_never_saw_is_reported_unassessed():
    s = from_predictions([6, 6, 2, 2], [6, 6, 2, 2], "t", "held_out_test_points")
    block = area_estimates({"cropland": 10.0, "water": 5.0}, s)
    assert block["unassessed_classes"] == ["water"]
    assert block["classes"]["water"]["estimated_ha"] == 5.0


def test_a_model_uses_dedicated_accuracy_labels_when_its_table_has_them():
    import numpy as np
    import pandas as pd
    from sklearn.tree import DecisionTreeClassifier
    from terracover.accuracy import for_model
    from terracover.evaluate import evaluate_model

    rng = np.random.default_rng(1)
    n = 90
    x = rng.uniform(0, 1, n)
    table = pd.DataFrame(
        {
            "class_code": np.where(x > 0.5, 6, 2),
            "summer_ndvi": x.astype(np.float32),
            "split": ["train", "test", "accuracy"] * (n // 3),
        }
    )
    est = DecisionTreeClassifier(random_state=0).fit(table[["summer_ndvi"]].to_numpy(), table.class_code)
    ev = evaluate_model(est, table, ["summer_ndvi"])
    with_accuracy = for_model(est, ev, table, ["summer_ndvi"], "datasets/2023/abc.parquet")
    assert with_accuracy.kind == "accuracy_labels" and with_accuracy.size == n // 3
    assert "accuracy-assessment labels" in with_accuracy.name and "purpose = accuracy" in with_accuracy.caveat
    without = for_model(est, ev, table[table.split != "accuracy"], ["summer_ndvi"], "datasets/2023/abc.parquet")
    assert without.kind == "held_out_test_points" and without.size == ev.n_test
