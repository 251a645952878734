"""Gap filling: linear in time between the nearest clear observations, the cyclic fallback, the quality codes,
and nothing invented where the year holds no clear observation."""

from __future__ import annotations

import numpy as np
import pytest
from terracover.bands import SCL_CLOUD_HIGH, SCL_VEGETATION, valid_scl_lut
from terracover.composite import composite_bands
from terracover.gapfill import fill_gaps, quality_fractions, season_edges

LUT = valid_scl_lut()
PERIOD = 365
# four seasons of the stack year: (first day, last day) as offsets from its start, and their middle days
WINDOWS = ((0, 89), (90, 181), (182, 273), (274, 364))
CENTRES = [(a + b) / 2 for a, b in WINDOWS]


def ramp(day: np.ndarray | float) -> np.ndarray:
    return np.asarray(1000 + 7 * np.asarray(day), dtype=np.float64)


def season_stack(days: list[int], clear: np.ndarray, value_of_day=ramp, bands: int = 2):
    """(bands, T, H, W) DNs on the ramp (band b offset by 100 b) and (T, H, W) SCL clear where ``clear``."""
    t, h, w = clear.shape
    values = np.empty((bands, t, h, w), dtype=np.uint16)
    for b in range(bands):
        for k, d in enumerate(days):
            values[b, k] = np.round(value_of_day(d)) + 100 * b
    scl = np.where(clear, SCL_VEGETATION, SCL_CLOUD_HIGH).astype(np.uint8)
    return values, scl


def run(seasons: list[tuple[list[int], np.ndarray]], policy: str = "on", bands: int = 2):
    """Composite and edge every season, then fill: (medians (S, B, H, W), qa (S, H, W))."""
    medians, edges = [], []
    for days, clear in seasons:
        values, scl = season_stack(days, clear, bands=bands)
        medians.append(composite_bands(values, scl, LUT))
        edges.append(season_edges(values, scl, LUT, days))
    stacked = np.stack(medians)
    qa = fill_gaps(stacked, edges, CENTRES, PERIOD, policy)
    return stacked, qa


def every_five_days(season: int) -> list[int]:
    return list(range(WINDOWS[season][0] + 2, WINDOWS[season][1] + 1, 5))


def test_a_linear_ramp_is_reconstructed_exactly() -> None:
    """Spring and summer are cloudy at every pixel: both are filled on the line through winter and autumn."""
    seasons = []
    for s in range(4):
        days = every_five_days(s)
        clear = np.full((len(days), 3, 4), s in (0, 3))
        seasons.append((days, clear))
    medians, qa = run(seasons)
    for s in (1, 2):
        np.testing.assert_allclose(medians[s, 0], ramp(CENTRES[s]), rtol=0, atol=1e-3)
        np.testing.assert_allclose(medians[s, 1], ramp(CENTRES[s]) + 100, rtol=0, atol=1e-3)
        assert (qa[s] == 0).all()
    assert (qa[0] == len(every_five_days(0))).all() and (qa[3] == len(every_five_days(3))).all()


def test_interpolation_uses_the_nearest_clear_observations() -> None:
    """Only the last clear date before the gap and the first after it count, not the season medians."""
    days = [every_five_days(s) for s in range(4)]
    clear = [np.ones((len(d), 1, 1), bool) for d in days]
    clear[1][:] = False  # spring cloudy
    clear[0][-3:] = False  # winter's last three dates cloudy too: the nearest clear one is earlier
    medians, qa = run([(d, c) for d, c in zip(days, clear, strict=True)])
    before, after = days[0][-4], days[2][0]
    want = ramp(before) + (ramp(after) - ramp(before)) * (CENTRES[1] - before) / (after - before)
    assert medians[1, 0, 0, 0] == pytest.approx(float(want), abs=1e-3)
    assert qa[1, 0, 0] == 0 and qa[0, 0, 0] == len(days[0]) - 3


def test_fallback_order() -> None:
    """Interpolation where both sides exist (0), else the cyclic fallback (-1), else missing (NaN)."""
    days = [every_five_days(s) for s in range(4)]
    # pixel 0: spring gap between clear winter and summer -> interpolated
    # pixel 1: winter gap, clear spring..autumn -> nothing before it in the year -> fallback from autumn - 365
    # pixel 2: only one clear date in the whole year (summer) -> fallback returns it
    # pixel 3: never clear -> missing
    clear = [np.zeros((len(d), 1, 4), bool) for d in days]
    clear[0][:, 0, 0] = clear[2][:, 0, 0] = True
    for s in (1, 2, 3):
        clear[s][:, 0, 1] = True
    clear[2][4, 0, 2] = True
    seasons = [(d, c) for d, c in zip(days, clear, strict=True)]

    medians, qa = run(seasons, "on")
    assert qa[1, 0, 0] == 0 and qa[0, 0, 1] == -1 and (qa[[0, 1, 3], 0, 2] == -1).all() and qa[2, 0, 2] == 1
    last_autumn, first_spring = days[3][-1] - PERIOD, days[1][0]
    want = ramp(last_autumn + PERIOD) + (ramp(first_spring) - ramp(last_autumn + PERIOD)) * (
        CENTRES[0] - last_autumn
    ) / (first_spring - last_autumn)
    assert medians[0, 0, 0, 1] == pytest.approx(float(want), abs=1e-3)
    assert (medians[:, 0, 0, 2] == ramp(days[2][4])).all()  # one observation: it stands for every season
    assert np.isnan(qa[:, 0, 3]).all() and np.isnan(medians[:, :, 0, 3]).all()

    linear_medians, linear_qa = run(seasons, "linear")
    assert linear_qa[1, 0, 0] == 0 and linear_medians[1, 0, 0, 0] == medians[1, 0, 0, 0]
    assert np.isnan(linear_qa[0, 0, 1]) and np.isnan(linear_medians[0, :, 0, 1]).all()  # no fallback

    off_medians, off_qa = run(seasons, "off")
    assert np.isnan(off_qa[1, 0, 0]) and np.isnan(off_medians[1, :, 0, 0]).all()
    assert off_qa[0, 0, 0] == len(days[0])  # observed seasons keep their count whatever the policy


def test_an_all_cloudy_season_without_neighbours_is_missing() -> None:
    """A season without any scene and a year without a clear date: NaN values and NaN quality, never a guess."""
    days = [every_five_days(s) for s in range(4)]
    seasons = [(d, np.zeros((len(d), 2, 2), bool)) for d in days]
    for policy in ("on", "linear", "off"):
        medians, qa = run(seasons, policy)
        assert np.isnan(medians).all() and np.isnan(qa).all()
        assert quality_fractions(qa[0]) == {
            "observed": 0.0,
            "interpolated": 0.0,
            "fallback": 0.0,
            "filled": 0.0,
            "missing": 1.0,
        }


def test_quality_counts_clear_observations_per_pixel_and_the_fewest_over_bands() -> None:
    days = every_five_days(2)
    clear = np.zeros((len(days), 1, 3), bool)
    clear[:5, 0, 0] = True
    clear[:2, 0, 1] = True
    clear[:4, 0, 2] = True
    values, scl = season_stack(days, clear, bands=2)
    values[1, 0, 0, 2] = 0  # band 1 has no data on the first clear date of pixel 2
    edges = season_edges(values, scl, LUT, days)
    np.testing.assert_array_equal(edges.count[0], [5, 2, 3])
    assert edges.first_day[0, 0, 2] == days[0] and edges.first_day[1, 0, 2] == days[1]
    assert edges.last_value[0, 0, 0] == values[0, 4, 0, 0]
    q = quality_fractions(np.array([[3.0, 0.0, -1.0, np.nan]], dtype=np.float32))
    assert q == {"observed": 0.25, "interpolated": 0.25, "fallback": 0.25, "filled": 0.5, "missing": 0.25}


def test_bad_arguments_say_what_is_wrong() -> None:
    values, scl = season_stack([1, 2], np.ones((2, 1, 1), bool))
    with pytest.raises(ValueError, match="ascending"):
        season_edges(values, scl, LUT, [2, 1])
    medians = np.zeros((1, 2, 1, 1), np.float32)
    with pytest.raises(ValueError, match="gap-fill policy"):
        fill_gaps(medians, [season_edges(values, scl, LUT, [1, 2])], [1.0], PERIOD, "nearest")
