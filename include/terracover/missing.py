"""Which feature rows a model can see: the one rule every classification path applies to missing values.

A row with a NaN or infinite feature was not observed (no clear date in a season, no terrain): a model must
not invent a class for it. Models that are built to handle missing values (a NaN-aware gradient boosting, a
model trained on gap-filled tables) declare it with :func:`declare_accepts_missing`, which sets the attribute
:data:`ACCEPTS_MISSING_ATTR` on the fitted estimator; it is pickled/skops-serialised with the estimator, so the
declaration travels with the model version. scikit-learn's own ``allow_nan`` tag is deliberately NOT used:
a RandomForest accepts NaN since 1.4 and would happily label an all-NaN row.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np

ACCEPTS_MISSING_ATTR = "terracover_accepts_missing_"
"""Estimator attribute: True when the model was trained to classify rows with missing (NaN) features."""

UNCLASSIFIED = 0
"""Class code of a row no model classified (the nodata code of every classification raster)."""

E = TypeVar("E")


def declare_accepts_missing(estimator: E) -> E:
    """Mark a fitted (or to-be-fitted) estimator as able to classify rows with NaN features; returns it."""
    setattr(estimator, ACCEPTS_MISSING_ATTR, True)
    return estimator


def accepts_missing(estimator: Any) -> bool:
    """Whether the estimator declared (:func:`declare_accepts_missing`) that it classifies NaN rows."""
    return bool(getattr(estimator, ACCEPTS_MISSING_ATTR, False))


def classifiable_rows(estimator: Any, X: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows of ``X`` the estimator may classify.

    Infinite values are never classifiable (no feature is legitimately infinite), nor is a row with no value
    at all; rows with some NaN features are, only for a model that accepts missing values.
    """
    x = np.asarray(X)
    if x.ndim != 2:
        raise ValueError(f"feature rows must be a 2-D (rows, features) array, got shape {x.shape}")
    finite = np.isfinite(x)
    if finite.all():  # the common case, answered without reducing across each narrow row
        return np.ones(len(x), dtype=bool)
    if accepts_missing(estimator):
        return ~np.isinf(x).any(axis=1) & ~np.isnan(x).all(axis=1)
    return np.asarray(finite.all(axis=1))
