"""Evaluation metrics the right way round (rows = truth), tables with legend names, and the PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from terracover.classes import class_name
from terracover.evaluate import evaluate

# An asymmetric case: 10 true water (4) points, all predicted water; 10 true builtUp (1) points, 6 predicted
# builtUp and 4 predicted water. Water: precision 10/14, recall 1.0. builtUp: precision 1.0, recall 0.6.
# A swapped confusion matrix (y_pred as truth) would give water precision 1.0 and recall 10/14.
Y_TRUE = [4] * 10 + [1] * 10
Y_PRED = [4] * 10 + [1] * 6 + [4] * 4


def test_precision_and_recall_are_not_swapped() -> None:
    ev = evaluate(Y_TRUE, Y_PRED)
    water, built = ev.per_class[4], ev.per_class[1]
    assert water.precision == pytest.approx(10 / 14)
    assert water.recall == pytest.approx(1.0)
    assert built.precision == pytest.approx(1.0)
    assert built.recall == pytest.approx(0.6)
    assert (water.support, built.support) == (10, 10)


def test_confusion_rows_are_truth() -> None:
    ev = evaluate(Y_TRUE, Y_PRED)
    assert ev.labels == [1, 4]
    # row builtUp (true): 6 right, 4 called water; row water (true): 10 right
    np.testing.assert_array_equal(ev.confusion, [[6, 4], [0, 10]])
    frame = ev.confusion_frame()
    assert frame.loc["builtUp", "water"] == 4 and frame.loc["water", "builtUp"] == 0
    assert frame.index.name == "true" and frame.columns.name == "predicted"


def test_headline_metrics() -> None:
    ev = evaluate(Y_TRUE, Y_PRED)
    assert ev.overall_accuracy == pytest.approx(16 / 20)
    # kappa = (po - pe) / (1 - pe), pe = (10*6 + 10*14) / 400 = 0.5
    assert ev.kappa == pytest.approx((0.8 - 0.5) / 0.5)
    f1_water, f1_built = 2 * (10 / 14) / (10 / 14 + 1), 2 * 0.6 / 1.6
    assert ev.macro_f1 == pytest.approx((f1_water + f1_built) / 2)
    m = ev.metrics()
    assert m["f1_water"] == pytest.approx(f1_water) and m["recall_builtUp"] == pytest.approx(0.6)
    assert {"overall_accuracy", "kappa", "macro_f1", "precision_water"} <= set(m)
    assert ev.majority_accuracy == pytest.approx(0.5) and ev.n_test == 20


def test_classes_absent_from_the_test_set_do_not_dilute_macro_f1() -> None:
    ev = evaluate(Y_TRUE, Y_PRED, labels=[1, 4, 7])
    assert ev.labels == [1, 4, 7] and ev.confusion.shape == (3, 3)
    assert ev.macro_f1 == pytest.approx(evaluate(Y_TRUE, Y_PRED).macro_f1)


def test_tables_use_legend_names() -> None:
    ev = evaluate(Y_TRUE, Y_PRED)
    csv = ev.confusion_csv().splitlines()
    assert csv == ["true,builtUp,water", "builtUp,6,4", "water,0,10"]
    md = ev.confusion_markdown().splitlines()
    assert md[0] == "| true \\ predicted | builtUp | water |"
    assert md[2] == "| **builtUp** | 6 | 4 |"
    assert class_name(99) == "class_99"


def test_png_is_written(tmp_path: Path) -> None:
    path = evaluate(Y_TRUE, Y_PRED).save_confusion_png(tmp_path / "cm.png", "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="equally long"):
        evaluate([1, 2], [1])
