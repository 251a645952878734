"""NaN-aware models: HistGradientBoosting and LightGBM classify rows with missing features, the routing pair sends
complete rows to its fast model and only the rest to the NaN-aware one, tables keep incomplete rows for the
configurations that can use them, and evaluation scores observed and gap-filled test points apart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import skops.io
from terracover.evaluate import evaluate_model
from terracover.missing import accepts_missing
from terracover.observation import FILLED, OBSERVED, PARTIAL, has_observation, status
from terracover.routing import RoutedClassifier, learns_missing
from terracover.train import CONFIGS, feature_columns, train

from tests.test_train import FEATURES, synthetic_table


def _with_gaps(table: pd.DataFrame, share: float, seed: int = 3) -> pd.DataFrame:
    """Blank the summer features of ``share`` of the rows (a season never seen) and add qa_* meta columns:
    spring observed 3 times, summer missing there, autumn gap-filled (0) on another ``share``."""
    rng = np.random.default_rng(seed)
    out = table.copy()
    n = len(out)
    summer = [f for f in FEATURES if f.startswith("summer_")]
    gone = rng.random(n) < share
    out.loc[gone, summer] = np.nan
    out["qa_spring"] = np.float32(3)
    out["qa_summer"] = np.where(gone, np.nan, 2).astype(np.float32)
    out["qa_autumn"] = np.where(~gone & (rng.random(n) < share), 0, 1).astype(np.float32)
    return out


@pytest.fixture(scope="module")
def gappy() -> pd.DataFrame:
    return _with_gaps(synthetic_table(), 0.2)


def test_nan_aware_configurations_are_declared(gappy: pd.DataFrame) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

    assert learns_missing(HistGradientBoostingClassifier())
    # A forest "allows" NaN at predict time (sklearn's tag) without having learned where missing values go.
    assert not learns_missing(RandomForestClassifier())
    with pytest.raises(ValueError, match="missing values"):
        RoutedClassifier(RandomForestClassifier(), RandomForestClassifier()).fit(np.zeros((4, 2)), [1, 2, 1, 2])
    assert {n for n, c in CONFIGS.items() if c.accepts_missing} == {"lgbm", "hgb", "mlp_hgb", "rf_fast_hgb"}
    assert accepts_missing(train(gappy, "hgb", seed=1).estimator)
    assert not accepts_missing(train(gappy, "rf_fast", seed=1).estimator)


def test_qa_columns_are_meta_not_features(gappy: pd.DataFrame) -> None:
    assert feature_columns(gappy) == FEATURES


@pytest.mark.parametrize("config", ["hgb", "lgbm"])
def test_nan_aware_models_classify_rows_with_missing_features(gappy: pd.DataFrame, config: str) -> None:
    model = train(gappy, config, seed=1)
    assert model.n_train == int((gappy.split == "train").sum())  # incomplete rows were learned from
    test = gappy[gappy.split == "test"]
    x = test[FEATURES].to_numpy(np.float32)
    assert np.isnan(x).any()
    proba = model.estimator.predict_proba(x)
    assert np.isfinite(proba).all()
    ev = evaluate_model(model.estimator, gappy, model.features)
    assert ev.unclassified == 0 and ev.overall_accuracy > 0.5
    assert ev.by_observation["missing_features"].classified == ev.by_observation["missing_features"].n


def test_models_that_cannot_use_missing_values_drop_those_rows(gappy: pd.DataFrame) -> None:
    complete = gappy[FEATURES].notna().all(axis=1)
    model = train(gappy, "rf_fast", seed=1)
    assert model.n_train == int((complete & (gappy.split == "train")).sum())
    ev = evaluate_model(model.estimator, gappy, model.features)
    assert ev.unclassified == int((~complete & (gappy.split == "test")).sum()) > 0
    assert ev.by_observation["missing_features"].classified == 0
    assert ev.by_observation["missing_features"].accuracy == 0  # not classified counts as wrong
    assert "n_test_unclassified" in ev.metrics() and "accuracy_observed" in ev.metrics()


def test_the_routing_pair_uses_its_fast_model_wherever_features_are_complete(gappy: pd.DataFrame) -> None:
    model = train(gappy, "mlp_hgb", seed=1)
    est = model.estimator
    assert isinstance(est, RoutedClassifier) and accepts_missing(est)
    x = gappy[FEATURES].to_numpy(np.float32)
    complete = np.isfinite(x).all(axis=1)
    proba = est.predict_proba(x)
    # Complete rows: exactly the fast model's answer (through the float32 path, so to float32 precision).
    np.testing.assert_allclose(proba[complete], est.fast_.predict_proba(x[complete]), atol=1e-5)
    np.testing.assert_allclose(proba[~complete], est.missing_.predict_proba(x[~complete]), atol=1e-6)
    assert est.fast_.n_features_in_ == len(FEATURES)
    # All-complete input takes the fast path alone.
    np.testing.assert_allclose(est.predict_proba(x[complete][:50]), proba[complete][:50], atol=1e-6)
    ev = evaluate_model(est, gappy, model.features)
    assert ev.unclassified == 0
    assert set(ev.by_observation) == {"observed", "gap_filled", "missing_features"}
    md = ev.observation_markdown()
    assert "gap filled" in md and "observed" in md


def test_the_routing_pair_round_trips_through_skops(gappy: pd.DataFrame) -> None:
    est = train(gappy, "rf_fast_hgb", seed=1).estimator
    blob = skops.io.dumps(est)
    loaded = skops.io.loads(blob, trusted=skops.io.get_untrusted_types(data=blob))
    x = gappy[FEATURES].to_numpy(np.float32)[:300]
    np.testing.assert_array_equal(loaded.predict(x), est.predict(x))


def test_observation_status_and_what_counts_as_seen() -> None:
    values = np.array([[1, 2, 3], [1, np.nan, 3], [np.nan, np.nan, 3], [1, 2, 3]], dtype=np.float32)
    qa = np.array([[2, 1], [2, np.nan], [np.nan, np.nan], [0, 4]], dtype=np.float32)
    np.testing.assert_array_equal(status(values, qa), [OBSERVED, PARTIAL, PARTIAL, FILLED])
    np.testing.assert_array_equal(status(values, None), [OBSERVED, PARTIAL, PARTIAL, OBSERVED])
    # Terrain alone (dem) is not an observation: that pixel stays unclassified.
    seen = has_observation(values, ["spring_B04", "summer_B04", "dem"])
    np.testing.assert_array_equal(seen, [True, True, False, True])


def test_qa_columns_survive_the_canonical_table(gappy: pd.DataFrame) -> None:
    import io

    from terracover.dataset import canonical_bytes

    back = pd.read_parquet(io.BytesIO(canonical_bytes(gappy)))
    assert [c for c in back.columns if c.startswith("qa_")] == ["qa_spring", "qa_summer", "qa_autumn"]
    assert feature_columns(back) == FEATURES and back[FEATURES].isna().any().any()
