"""Models that classify rows with missing features, and the routing pair that keeps serving fast.

A pixel whose season could be neither observed nor gap-filled has NaN features. Tree ensembles that learn a
direction for missing values at every split (scikit-learn's ``HistGradientBoostingClassifier``, LightGBM)
classify such rows; the others cannot. But NaN-aware models are slow per pixel (HistGradientBoosting measured
0.2x the KHAOS forest, the float32 MLP path 10x), and almost every pixel is complete. :class:`RoutedClassifier`
therefore pairs a fast model, fitted and used on complete rows only, with a NaN-aware model used on the rest:
one sklearn-API estimator, so it is logged, registered and loaded as ONE MLflow model.

Which models get rows with missing features is decided by :func:`terracover.missing.accepts_missing` (an
explicit declaration on the fitted estimator): a fitted routing pair declares itself, and training declares
the NaN-native configurations (:func:`learns_missing`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from terracover.missing import declare_accepts_missing

Proba = Callable[[np.ndarray], np.ndarray]


def _nan_native_types() -> tuple[type, ...]:
    from lightgbm import LGBMClassifier
    from sklearn.ensemble import HistGradientBoostingClassifier

    return (HistGradientBoostingClassifier, LGBMClassifier)


def learns_missing(estimator: Any) -> bool:
    """True for models that learn where missing values go at every split (HistGradientBoosting, LightGBM; the
    last step of a Pipeline counts). scikit-learn's ``allow_nan`` tag is not this: a RandomForest "allows" NaN
    at predict time without having learned anything about it."""
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline):
        estimator = estimator.steps[-1][1]
    return isinstance(estimator, _nan_native_types())


def one_openmp_thread() -> Any:
    """HistGradientBoosting's OpenMP loops open one parallel region per tree; on a busy 2-core host each
    region's barrier waits for a descheduled thread (measured here at load 30: fit 11 s single-threaded, not
    done after 5 min with 2 threads). The NaN-aware model sees few pixels: one thread is the fast choice."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


def complete_rows(x: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows whose every feature is finite.

    Almost every served block is complete: one test over the whole array answers that case at a fraction of
    the cost of reducing across each narrow row."""
    finite = np.isfinite(x)
    if finite.all():
        return np.ones(len(x), dtype=bool)
    return np.asarray(finite.all(axis=1))


_FAST: weakref.WeakKeyDictionary[Any, Proba] = weakref.WeakKeyDictionary()


def _fast_proba(est: Any) -> Proba:
    """The fast model's quickest exact ``predict_proba`` (compiled once per fitted model)."""
    from terracover.fastpath import compile_proba

    if est not in _FAST:
        _FAST[est] = compile_proba(est) or est.predict_proba
    return _FAST[est]


class RoutedClassifier(ClassifierMixin, BaseEstimator):
    """``fast`` on rows with every feature finite, ``missing`` (NaN-aware) on the others.

    ``fast`` is fitted on the complete rows only, ``missing`` on all rows (it learns where missing values
    go). ``classes_`` is the union of both models' classes; each model's probabilities are placed in its own
    classes' columns.
    """

    def __init__(self, fast: Any = None, missing: Any = None) -> None:
        self.fast = fast
        self.missing = missing

    def fit(self, X: np.ndarray, y: np.ndarray) -> RoutedClassifier:
        if self.fast is None or self.missing is None:
            raise ValueError("RoutedClassifier needs both a fast and a NaN-aware (missing) estimator")
        if not learns_missing(self.missing):
            raise ValueError(f"{type(self.missing).__name__} does not learn missing values: use HGB or LightGBM")
        x = np.asarray(X, dtype=np.float32)
        target = np.asarray(y)
        complete = complete_rows(x)
        if len(np.unique(target[complete])) < 2:
            raise ValueError("fewer than two classes among the rows with every feature present: nothing to learn")
        self.fast_ = clone(self.fast).fit(x[complete], target[complete])
        with one_openmp_thread():
            self.missing_ = clone(self.missing).fit(x, target)
        self.classes_ = np.union1d(self.fast_.classes_, self.missing_.classes_)
        self.n_features_in_ = x.shape[1]
        self.complete_fraction_ = float(complete.mean())
        return declare_accepts_missing(self)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        x = np.asarray(X, dtype=np.float32)
        complete = complete_rows(x)
        fast_cols = np.searchsorted(self.classes_, self.fast_.classes_)
        if complete.all() and len(fast_cols) == len(self.classes_):
            return _fast_proba(self.fast_)(x)  # the common case: no copy, no routing
        out = np.zeros((len(x), len(self.classes_)), dtype=np.float32)
        if complete.any():
            out[np.ix_(complete, fast_cols)] = _fast_proba(self.fast_)(x[complete])
        if not complete.all():
            rest = ~complete
            cols = np.searchsorted(self.classes_, self.missing_.classes_)
            with one_openmp_thread():
                out[np.ix_(rest, cols)] = self.missing_.predict_proba(x[rest])
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes_[self.predict_proba(X).argmax(axis=1)])
