"""Rows with NaN/inf features come back unclassified (code 0, no confidence) from every model path; the other
rows of the same call are classified as if the bad rows were not there; nothing raises for the batch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier
from terracover.evaluate import evaluate_model
from terracover.missing import classifiable_rows, declare_accepts_missing
from terracover.predict import classify
from terracover.registry import LoadedModel
from terracover.train import CONFIGS, build_estimator

# One config per model family; a routing pair declares itself NaN-aware when fitted (tests/test_routing.py).
FAMILIES = sorted({c.family: name for name, c in CONFIGS.items() if c.family != "routed"}.values())


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    x, y = make_classification(n_samples=1500, n_features=8, n_informative=6, n_classes=4, random_state=0)
    return x.astype(np.float32) * 0.1 + 0.3, np.asarray([2, 4, 7, 9])[y]


def _with_bad_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probe = x[:200].copy()
    bad = np.zeros(len(probe), dtype=bool)
    probe[3, 0] = np.nan  # one missing feature
    probe[10, :] = np.nan  # a row never observed
    probe[17, 5] = np.inf
    probe[25, 2] = -np.inf
    bad[[3, 10, 17, 25]] = True
    return probe, bad


@pytest.mark.parametrize("config", FAMILIES)
def test_classify_leaves_non_finite_rows_unclassified(config: str, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    est = build_estimator(CONFIGS[config], seed=0).fit(x, y)
    model = LoadedModel("m", "1", "r", [], est, "", "")
    probe, bad = _with_bad_rows(x)
    codes, conf = classify(model, probe)
    assert (codes[bad] == 0).all(), f"{config} invented classes {codes[bad]} for rows it cannot see"
    assert np.isnan(conf[bad]).all()
    clean_codes, clean_conf = classify(model, probe[~bad])
    np.testing.assert_array_equal(codes[~bad], clean_codes)
    np.testing.assert_allclose(conf[~bad], clean_conf, rtol=1e-6)
    assert (codes[~bad] > 0).all() and np.isfinite(conf[~bad]).all()


@pytest.mark.parametrize("config", FAMILIES)
def test_evaluation_counts_unseen_rows_as_unclassified(config: str, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    est = build_estimator(CONFIGS[config], seed=0).fit(x, y)
    probe, bad = _with_bad_rows(x)
    features = [f"f{i}" for i in range(x.shape[1])]
    table = pd.DataFrame(probe, columns=features).assign(class_code=y[:200], split="test")
    ev = evaluate_model(est, table, features)
    n_seen_right = int((est.predict(probe[~bad]) == y[:200][~bad]).sum())
    assert ev.overall_accuracy == pytest.approx(n_seen_right / len(probe))


def test_a_model_that_accepts_missing_values_gets_nan_rows(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    est = declare_accepts_missing(HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(x, y))
    probe, _ = _with_bad_rows(x)
    codes, conf = classify(LoadedModel("m", "1", "r", [], est, "", ""), probe)
    # a NaN feature is the model's to handle; infinities and all-missing rows are never classified
    assert codes[3] > 0 and np.isfinite(conf[3])
    assert (codes[[10, 17, 25]] == 0).all() and np.isnan(conf[[10, 17, 25]]).all()
    np.testing.assert_array_equal(classifiable_rows(est, probe), ~np.isin(np.arange(200), [10, 17, 25]))


def test_all_rows_bad_or_none_at_all(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    model = LoadedModel("m", "1", "r", [], build_estimator(CONFIGS["mlp"], seed=0).fit(x, y), "", "")
    codes, conf = classify(model, np.full((5, x.shape[1]), np.nan, dtype=np.float32))
    assert (codes == 0).all() and np.isnan(conf).all()
    codes, conf = classify(model, np.empty((0, x.shape[1]), dtype=np.float32))
    assert codes.shape == (0,) and conf.shape == (0,)
