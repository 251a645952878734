"""Filling a season without a clear observation, and recording per pixel how every season was obtained.

A pixel that is cloudy on every date of a season has no median. The field fills such gaps by interpolating in
time after cloud masking (eo-learn's ``LinearInterpolationTask``, ESA WorldCover, openEO's
``array_interpolate_linear``); so do we, as a declared policy (``TERRACOVER_GAP_FILL``):

``on`` (default)
    1. **linear**: the season takes, band by band, the value interpolated linearly in day-of-year, at the
       season's middle day, between the pixel's nearest clear observation before the season and its nearest
       clear observation after it (any season of the stack year). On reflectance: DNs with the L2A offset
       removed, so linear in DN is linear in reflectance.
    2. **cyclic fallback**, where one side is missing (a winter gap has nothing before it in the stack year,
       an autumn gap nothing after): the year is treated as periodic and the missing side is taken from the
       other end of the year shifted by one period (the last clear observation of the year, 365 days earlier,
       or the first one, 365 days later). Phenology repeats yearly, so last December stands in for next
       December better than a copy of the adjacent season's median would; with a single clear observation in
       the whole year it returns that observation. It is flagged apart from interpolation.
    3. Otherwise (no clear observation in the whole year) the season stays **NaN**: missing, for a NaN-aware
       model or for the map's "unclassified" class. Nothing is invented silently.
``linear``
    Step 1 only; what it cannot fill stays NaN.
``off``
    No filling: a season without a clear observation is NaN (the behaviour before gap filling).

Whatever the policy, every stack gets one ``qa_{season}`` band per season (docs/CONTRACTS.md): ``k >= 1``
observed with ``k`` clear observations; ``0`` filled by linear interpolation; ``-1`` filled by the fallback;
``NaN`` missing. ``k`` is the smallest count over the bands (a band without data on a date does not count).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np
from numba import njit, prange

GapFillPolicy = Literal["on", "linear", "off"]
GAP_FILL_POLICIES: tuple[str, ...] = ("on", "linear", "off")
QA_INTERPOLATED = 0.0
QA_FALLBACK = -1.0
_MODE = {"off": 0, "linear": 1, "on": 2}


def qa_band_name(season: str) -> str:
    """The quality band of ``season`` in a feature stack (the band after the features)."""
    return f"qa_{season}"


@dataclass
class SeasonEdges:
    """Per band and pixel: the first and last clear observation of one season (value, day) and the count.

    Values are float32 DNs (NaN where the band has no clear observation), days are offsets from the start of
    the stack year, ``count`` is the smallest number of clear observations over the bands.
    """

    first_value: np.ndarray  # (B, H, W) float32
    first_day: np.ndarray  # (B, H, W) int32
    last_value: np.ndarray
    last_day: np.ndarray
    count: np.ndarray  # (H, W) int32

    @classmethod
    def empty(cls, bands: int, height: int, width: int) -> SeasonEdges:
        """A season without a single scene: no observation anywhere."""
        nan = np.full((bands, height, width), np.nan, dtype=np.float32)
        zero = np.zeros((bands, height, width), dtype=np.int32)
        return cls(nan, zero, nan.copy(), zero.copy(), np.zeros((height, width), dtype=np.int32))


@njit(parallel=True, cache=True, nogil=True)
def _season_edges(
    values: np.ndarray,
    scl: np.ndarray,
    lut: np.ndarray,
    days: np.ndarray,
    first_value: np.ndarray,
    first_day: np.ndarray,
    last_value: np.ndarray,
    last_day: np.ndarray,
    count: np.ndarray,
) -> None:
    n_bands, n_dates, height, width = values.shape
    for r in prange(height):
        n = np.empty(width, dtype=np.int32)
        fewest = np.full(width, n_dates, dtype=np.int32)
        for b in range(n_bands):
            n[:] = 0
            for t in range(n_dates):
                d = days[t]
                for c in range(width):
                    v = values[b, t, r, c]
                    if lut[scl[t, r, c]] != 0 and v != 0:
                        if n[c] == 0:
                            first_value[b, r, c] = v
                            first_day[b, r, c] = d
                        last_value[b, r, c] = v
                        last_day[b, r, c] = d
                        n[c] += 1
            for c in range(width):
                if n[c] == 0:
                    first_value[b, r, c] = np.nan
                    last_value[b, r, c] = np.nan
                fewest[c] = min(fewest[c], n[c])
        for c in range(width):
            count[r, c] = fewest[c]


def season_edges(values: np.ndarray, scl: np.ndarray, valid_lut: np.ndarray, days: Sequence[int]) -> SeasonEdges:
    """First/last clear observation and clear count of a season's (B, T, H, W) DNs and (T, H, W) SCL.

    ``days`` (one per date, ascending) are day offsets from the stack year's start. Clear means what the
    median kernel counts: ``valid_lut[scl]`` and DN != 0.
    """
    bands, dates, height, width = values.shape
    day_arr = np.asarray(days, dtype=np.int32)
    if day_arr.shape != (dates,) or (np.diff(day_arr) < 0).any():
        raise ValueError(f"days must be {dates} ascending day offsets, one per date; got {list(days)}")
    out = SeasonEdges(
        np.empty((bands, height, width), np.float32),
        np.zeros((bands, height, width), np.int32),
        np.empty((bands, height, width), np.float32),
        np.zeros((bands, height, width), np.int32),
        np.empty((height, width), np.int32),
    )
    lut = np.ascontiguousarray(valid_lut, dtype=np.uint8)
    _season_edges(values, scl, lut, day_arr, out.first_value, out.first_day, out.last_value, out.last_day, out.count)
    return out


@njit(cache=True, nogil=True, inline="always")
def _lerp(v0: float, d0: float, v1: float, d1: float, t: float) -> float:
    return v0 + (v1 - v0) * (t - d0) / (d1 - d0)


@njit(parallel=True, cache=True, nogil=True)
def _fill(
    medians: np.ndarray,
    first_value: np.ndarray,
    first_day: np.ndarray,
    last_value: np.ndarray,
    last_day: np.ndarray,
    count: np.ndarray,
    centre: np.ndarray,
    period: float,
    mode: int,
    qa: np.ndarray,
) -> None:
    n_seasons, n_bands, height, width = medians.shape
    for r in prange(height):
        for c in range(width):
            for s in range(n_seasons):
                if count[s, r, c] > 0:
                    qa[s, r, c] = count[s, r, c]
                    continue
                state = 0.0  # 0 interpolated, -1 fallback, NaN missing (worst over the bands wins)
                for b in range(n_bands):
                    if not np.isnan(medians[s, b, r, c]):
                        continue  # this band was observed (another band lacked data)
                    if mode == 0:
                        state = np.nan
                        continue
                    v0 = np.nan
                    d0 = 0.0
                    for k in range(s - 1, -1, -1):
                        if not np.isnan(last_value[k, b, r, c]):
                            v0 = last_value[k, b, r, c]
                            d0 = last_day[k, b, r, c]
                            break
                    v1 = np.nan
                    d1 = 0.0
                    for k in range(s + 1, n_seasons):
                        if not np.isnan(first_value[k, b, r, c]):
                            v1 = first_value[k, b, r, c]
                            d1 = first_day[k, b, r, c]
                            break
                    if not np.isnan(v0) and not np.isnan(v1):
                        medians[s, b, r, c] = _lerp(v0, d0, v1, d1, centre[s])
                        continue
                    if mode == 2:  # cyclic: the other end of the year, one period away
                        if np.isnan(v0):
                            for k in range(n_seasons - 1, s, -1):
                                if not np.isnan(last_value[k, b, r, c]):
                                    v0 = last_value[k, b, r, c]
                                    d0 = last_day[k, b, r, c] - period
                                    break
                        if np.isnan(v1):
                            for k in range(0, s):
                                if not np.isnan(first_value[k, b, r, c]):
                                    v1 = first_value[k, b, r, c]
                                    d1 = first_day[k, b, r, c] + period
                                    break
                        if not np.isnan(v0) and not np.isnan(v1):
                            medians[s, b, r, c] = _lerp(v0, d0, v1, d1, centre[s])
                            if not np.isnan(state):
                                state = -1.0
                            continue
                    state = np.nan
                qa[s, r, c] = state


def fill_gaps(
    medians: np.ndarray, edges: Sequence[SeasonEdges], centre_days: Sequence[float], period: float, policy: str
) -> np.ndarray:
    """Fill, in place, the seasons of (S, B, H, W) ``medians`` that had no clear observation; return the
    (S, H, W) float32 quality bands (see the module docstring for the policy and the codes).

    ``edges[s]`` and ``centre_days[s]`` belong to season ``s``, seasons in time order, days counted from the
    stack year's start; ``period`` is the stack year's length in days.
    """
    if policy not in _MODE:
        raise ValueError(f"unknown gap-fill policy {policy!r}; choose one of {list(GAP_FILL_POLICIES)}")
    n_seasons, _, height, width = medians.shape
    if len(edges) != n_seasons or len(centre_days) != n_seasons:
        raise ValueError(f"{n_seasons} seasons of medians need as many edges and centre days")
    if medians.dtype != np.float32:
        raise ValueError(f"medians must be float32, got {medians.dtype}")
    qa = np.empty((n_seasons, height, width), dtype=np.float32)
    _fill(
        medians,
        np.stack([e.first_value for e in edges]),
        np.stack([e.first_day for e in edges]),
        np.stack([e.last_value for e in edges]),
        np.stack([e.last_day for e in edges]),
        np.stack([e.count for e in edges]),
        np.asarray(centre_days, dtype=np.float64),
        float(period),
        _MODE[policy],
        qa,
    )
    return qa


def quality_fractions(qa: np.ndarray) -> dict[str, float]:
    """Shares of a season's pixels observed, interpolated, filled by the fallback, filled (both) and missing."""
    n = max(qa.size, 1)
    observed = float(np.count_nonzero(qa >= 1)) / n
    interpolated = float(np.count_nonzero(qa == QA_INTERPOLATED)) / n
    fallback = float(np.count_nonzero(qa == QA_FALLBACK)) / n
    return {
        "observed": round(observed, 6),
        "interpolated": round(interpolated, 6),
        "fallback": round(fallback, 6),
        "filled": round(interpolated + fallback, 6),
        "missing": round(float(np.count_nonzero(np.isnan(qa))) / n, 6),
    }


def day_offset(day: date, year_start: date) -> int:
    """Days since the stack year's first day (the first day of its winter)."""
    return (day - year_start).days
