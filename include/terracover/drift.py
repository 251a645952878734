"""Feature drift of the pixels users ask about, against the data the model learned from.

The reference is the model's training table: per feature, decile edges and the fraction of training rows in
each bin. Requested pixels are binned on the same edges into a decaying histogram (recent requests weigh
most) and compared with the population stability index, PSI = sum((a - e) * ln(a / e)). PSI under 0.1 is
usually read as stable, over 0.25 as a shift worth acting on; it moves before confidence does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

EPS = 1e-4  # floor on bin fractions: an empty bin must not make PSI infinite


@dataclass(frozen=True)
class Reference:
    """Per-feature inner bin edges (F, B-1) and expected fractions (F, B) of the training rows."""

    features: list[str]
    edges: np.ndarray
    expected: np.ndarray

    @classmethod
    def from_table(cls, table: pd.DataFrame, features: Sequence[str], bins: int = 10) -> Reference:
        qs = np.linspace(0, 1, bins + 1)[1:-1]
        values = table[list(features)].to_numpy(np.float64)
        edges = np.nanquantile(values, qs, axis=0).T  # (F, B-1)
        expected = np.stack([_fractions(values[:, i], edges[i], bins) for i in range(len(features))])
        return cls(list(features), edges, expected)

    @property
    def bins(self) -> int:
        return int(self.expected.shape[1])


def _fractions(values: np.ndarray, edges: np.ndarray, bins: int) -> np.ndarray:
    v = values[np.isfinite(values)]
    counts = np.bincount(np.searchsorted(edges, v, side="right"), minlength=bins).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def psi(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """PSI per row of two (F, B) fraction arrays."""
    a = np.clip(actual, EPS, None)
    e = np.clip(expected, EPS, None)
    return np.asarray(((a - e) * np.log(a / e)).sum(axis=-1))


@dataclass
class DriftMonitor:
    """The decaying histogram of requested pixels for one model; ``half_life_px`` sets how fast old requests
    fade (in pixels observed)."""

    reference: Reference
    half_life_px: float = 200_000.0
    sample_px: int = 5_000
    seed: int = 0
    counts: np.ndarray = field(init=False)
    _rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.counts = np.zeros_like(self.reference.expected)
        self._rng = np.random.default_rng(self.seed)

    def observe(self, rows: np.ndarray, columns: Sequence[str]) -> np.ndarray | None:
        """Add a sample of ``rows`` (n, len(columns)) and return the PSI per reference feature (None if empty)."""
        n = len(rows)
        if n == 0:
            return None
        if n > self.sample_px:
            rows = rows[self._rng.choice(n, self.sample_px, replace=False)]
        pos = {c: i for i, c in enumerate(columns)}
        b = self.reference.bins
        fractions = np.stack(
            [
                _fractions(rows[:, pos[f]], edges, b)
                for f, edges in zip(self.reference.features, self.reference.edges, strict=True)
            ]
        )
        # A request weighs by its true size (the sample only estimates its histogram); older pixels fade.
        self.counts = self.counts * 0.5 ** (n / self.half_life_px) + fractions * n
        totals = self.counts.sum(axis=1, keepdims=True)
        return psi(self.counts / np.maximum(totals, 1e-12), self.reference.expected)
