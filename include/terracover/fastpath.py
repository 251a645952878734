"""Faster inference for the dense per-pixel model, with the same answers.

scikit-learn runs ``StandardScaler -> MLPClassifier`` in float64 with validation on every call; the network is
three small matrix products, so the same arithmetic in float32 numpy on contiguous blocks is several times
faster. Only that exact pipeline shape is compiled (ReLU hidden layers, softmax output); anything else keeps
its own ``predict_proba``. ``tests/test_fastpath.py`` checks classes and probabilities against scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Proba = Callable[[np.ndarray], np.ndarray]


def compile_proba(estimator: Any) -> Proba | None:
    """A float32 ``predict_proba`` for a fitted StandardScaler + MLPClassifier pipeline, else None."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if not isinstance(estimator, Pipeline) or len(estimator.steps) != 2:
        return None
    scaler, mlp = estimator.steps[0][1], estimator.steps[1][1]
    if not isinstance(scaler, StandardScaler) or not isinstance(mlp, MLPClassifier):
        return None
    if mlp.activation != "relu" or mlp.out_activation_ != "softmax":
        return None
    mean = np.asarray(scaler.mean_ if scaler.with_mean else 0.0, dtype=np.float32)
    scale = np.asarray(scaler.scale_ if scaler.with_std else 1.0, dtype=np.float32)
    # Fold the scaler into the first layer: ((x - m) / s) W + b = x (W / s) + (b - (m / s) W).
    w0 = np.asarray(mlp.coefs_[0], dtype=np.float64)
    s = np.broadcast_to(np.asarray(scale, dtype=np.float64), (w0.shape[0],))
    m = np.broadcast_to(np.asarray(mean, dtype=np.float64), (w0.shape[0],))
    first_w = (w0 / s[:, None]).astype(np.float32)
    first_b = (mlp.intercepts_[0] - (m / s) @ w0).astype(np.float32)
    weights = [first_w, *(np.asarray(w, dtype=np.float32) for w in mlp.coefs_[1:])]
    biases = [first_b, *(np.asarray(b, dtype=np.float32) for b in mlp.intercepts_[1:])]

    def proba(x: np.ndarray) -> np.ndarray:
        h = np.ascontiguousarray(x, dtype=np.float32)
        for w, b in zip(weights[:-1], biases[:-1], strict=True):
            h = h @ w
            h += b
            np.maximum(h, 0, out=h)
        z = h @ weights[-1]
        z += biases[-1]
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z

    return proba
