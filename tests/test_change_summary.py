"""Change codes, transition matrices and the model-change share on small known arrays."""

from __future__ import annotations

import numpy as np
import pytest
from terracover.change import BASE, change_codes, colormap, summarize, transition_counts


def test_change_codes_and_transitions():
    a = np.array([[6, 6, 2], [7, 0, 4]], dtype=np.uint8)
    b = np.array([[2, 6, 2], [8, 4, 0]], dtype=np.uint8)
    codes = change_codes(a, b)
    assert codes.tolist() == [[6 * BASE + 2, 6 * BASE + 6, 2 * BASE + 2], [7 * BASE + 8, 0, 0]]
    t = transition_counts(a, b)
    assert t.sum() == 4 and t[6, 2] == 1 and t[6, 6] == 1 and t[7, 8] == 1 and t[2, 2] == 1
    cmap = colormap()
    assert cmap[0][3] == 0 and cmap[6 * BASE + 6] == cmap[2 * BASE + 2] != cmap[6 * BASE + 2]


def test_model_change_share_separates_model_from_land():
    # 10 pixels: 4 really changed (the same model sees it too), 2 changed only because the model changed
    a = np.array([6, 6, 6, 6, 7, 7, 2, 2, 2, 2], dtype=np.uint8)
    b = np.array([2, 2, 2, 2, 8, 8, 2, 2, 2, 2], dtype=np.uint8)
    c = np.array([2, 2, 2, 2, 7, 7, 2, 2, 2, 2], dtype=np.uint8)
    s = summarize(a, b, c, pixel_ha=0.01)
    assert s.changed_fraction == pytest.approx(0.6)
    assert s.model_change_share == pytest.approx(2 / 6)
    assert s.same_model_changed_fraction == pytest.approx(0.4)
    assert s.transition_ha == {
        "cropland": {"herbaceousVegetation": 0.04},
        "closedForest": {"openForest": 0.02},
        "herbaceousVegetation": {"herbaceousVegetation": 0.04},
    }
    assert s.compared_ha == pytest.approx(0.1) and s.changed_ha == pytest.approx(0.06)


def test_no_change_has_no_share():
    a = np.full((3, 3), 7, np.uint8)
    s = summarize(a, a, a, 0.01)
    assert s.changed_fraction == 0.0 and s.model_change_share is None and s.same_model_changed_fraction == 0.0


def test_grids_must_match():
    with pytest.raises(ValueError, match="one grid"):
        summarize(np.ones((2, 2), np.uint8), np.ones((2, 3), np.uint8), np.ones((2, 2), np.uint8), 0.01)
