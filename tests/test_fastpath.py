"""The compiled MLP path answers what scikit-learn answers; other estimators keep their own predict_proba."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from terracover.fastpath import compile_proba
from terracover.predict import classify
from terracover.registry import LoadedModel
from terracover.train import CONFIGS, build_estimator


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    x, y = make_classification(n_samples=3000, n_features=12, n_informative=8, n_classes=5, random_state=0)
    return x.astype(np.float32) * 50 + 100, np.asarray([1, 3, 4, 7, 9])[y]  # unscaled, like stack values


def test_compiled_mlp_matches_sklearn(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    est = build_estimator(CONFIGS["mlp"], seed=0).fit(x, y)
    fast = compile_proba(est)
    assert fast is not None
    probe = np.random.default_rng(1).normal(100, 60, (20000, x.shape[1])).astype(np.float32)
    ours, theirs = fast(probe), est.predict_proba(probe)
    np.testing.assert_allclose(ours, theirs, atol=2e-5)
    agree = (ours.argmax(axis=1) == theirs.argmax(axis=1)).mean()
    assert agree > 0.9999, agree  # only exact float ties may differ
    codes, conf = classify(LoadedModel("m", "1", "r", [], est, "", ""), probe)
    assert (codes == est.predict(probe)).mean() > 0.9999 and conf.dtype == np.float32


def test_other_estimators_are_not_compiled(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    assert compile_proba(RandomForestClassifier(n_estimators=3).fit(x, y)) is None
    assert compile_proba(build_estimator(CONFIGS["rf_fast"], seed=0).fit(x, y)) is None
