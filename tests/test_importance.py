"""Permutation importance on the held-out split finds the feature a model leans on, for every model family."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from terracover.importance import FeatureImportance, permutation_importance
from terracover.missing import accepts_missing
from terracover.train import CONFIGS, build_estimator

FAMILIES = sorted({c.family: name for name, c in CONFIGS.items()}.values())


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """``slope`` decides the class; the other columns are noise (one with NaN rows in the test split)."""
    rng = np.random.default_rng(0)
    n = 1200
    slope = rng.uniform(0, 40, n).astype(np.float32)
    frame = pd.DataFrame({"slope": slope, "summer_B04": rng.normal(0.05, 0.01, n), "dem": rng.normal(500, 50, n)})
    frame["class_code"] = np.where(slope > 20, 7, 2) + 0
    frame["split"] = np.where(np.arange(n) < 800, "train", "test")
    frame.loc[frame.index[-5:], "dem"] = np.nan  # unseen rows are skipped, not a failure
    return frame


@pytest.mark.parametrize("config", FAMILIES)
def test_the_feature_the_model_relies_on_comes_first(config: str, table: pd.DataFrame) -> None:
    features = ["summer_B04", "slope", "dem"]
    train = table[table["split"] == "train"]
    est = build_estimator(CONFIGS[config], seed=0).fit(train[features].to_numpy(np.float32), train["class_code"])
    imp = permutation_importance(est, table, features, n_repeats=3)
    # the 5 test rows without dem are skipped unless the model declared it classifies missing values
    assert imp.ranked()[0][0] == "slope" and imp.n_rows == (400 if accepts_missing(est) else 395)
    assert imp.mean[features.index("slope")] > 0.3 > abs(imp.mean[features.index("summer_B04")])
    md = imp.markdown(top=2)
    assert "| slope |" in md and "Warning" in md and "dem" not in md.split("| slope |")[1].split("Warning")[0]
    assert set(imp.metrics()) == {"importance_summer_B04", "importance_slope", "importance_dem"}


def test_markdown_without_a_dominant_feature() -> None:
    imp = FeatureImportance(["a", "b", "c"], [0.1, 0.09, 0.08], [0.01] * 3, 0.9, "accuracy", 100, 5)
    assert "Warning" not in imp.markdown() and imp.as_dict()["features"][0]["feature"] == "a"
    assert FeatureImportance.from_dict(imp.as_dict()).ranked() == imp.ranked()
