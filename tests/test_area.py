"""The area estimator against the published worked example, and its properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from terracover.area import estimate, estimate_for_codes

# Olofsson, P., Foody, G. M., Herold, M., Stehman, S. V., Woodcock, C. E., Wulder, M. A. (2014). Good practices
# for estimating area and assessing accuracy of land change. Remote Sensing of Environment 148: 42-57,
# doi:10.1016/j.rse.2014.02.015. Section 5 example, Table 8: a Landsat (30 m) change map of 10 million pixels
# in four classes, stratified random sample of 640 units, rows = map class, columns = reference class.
# Checked against two public implementations that reproduce this example: the R package mapaccuracy
# (Hugo Costa, function olofsson(), whose documented example rebuilds Table 8 and compares with "p. 54") and the
# Python accuracyAssessmentTools (github.com/boothmanrylan, tests/test_olofsson.py, the paper's values typed in).
CLASSES = ["deforestation", "forest gain", "stable forest", "stable non-forest"]
TABLE8_COUNTS = [
    [66, 0, 5, 4],
    [0, 55, 8, 12],
    [1, 0, 153, 11],
    [2, 1, 9, 313],
]
TABLE8_MAPPED_PIXELS = [200_000, 150_000, 3_200_000, 6_450_000]
PIXEL_HA = 0.09  # 30 m x 30 m
# Table 9: the error matrix as estimated area proportions p_ij (eq. 4), to four decimals.
TABLE9_PROPORTIONS = [
    [0.0176, 0.0000, 0.0013, 0.0011],
    [0.0000, 0.0110, 0.0016, 0.0024],
    [0.0019, 0.0000, 0.2967, 0.0213],
    [0.0040, 0.0020, 0.0179, 0.6212],
]
# The paper's published results (p. 54): estimated area ± 95 % CI in hectares (deforestation also in pixels:
# 235,086 ± 68,418), user's and producer's accuracy ± 95 % CI, overall accuracy ± 95 % CI. Areas are rounded
# to the hectare, accuracies to two decimals.
PAPER_AREA_HA = [(21_158, 6_158), (11_686, 3_756), (285_770, 15_510), (581_386, 16_282)]
PAPER_DEFORESTATION_PIXELS = (235_086, 68_418)
PAPER_USERS = [(0.88, 0.07), (0.73, 0.10), (0.93, 0.04), (0.96, 0.02)]
PAPER_PRODUCERS = [(0.75, 0.21), (0.85, 0.23), (0.93, 0.03), (0.96, 0.01)]
PAPER_OVERALL = (0.95, 0.02)
# Two producer's-accuracy intervals printed in the paper do not follow from its own eq. 7 with Table 8: forest
# gain ±0.23 (eq. 7 gives ±0.2544) and stable non-forest ±0.01 (eq. 7: ±0.0184). Both public implementations
# above get the eq. 7 values too (accuracyAssessmentTools comments those two checks out as "a rounding error in
# the value provided in the paper"; mapaccuracy's N-hat variant of the first term gives the same to 4 decimals).
# The test holds the code to eq. 7 there and to the printed numbers everywhere else.
EQ7_PRODUCERS_CI = {1: 0.2544, 3: 0.0184}


def _paper_example():
    mapped_ha = [px * PIXEL_HA for px in TABLE8_MAPPED_PIXELS]
    return estimate(mapped_ha, TABLE8_COUNTS)


def test_reproduces_olofsson_2014_areas_to_the_hectare():
    est = _paper_example()
    for c, (area, ci) in zip(est.classes, PAPER_AREA_HA, strict=True):
        assert round(c.estimated) == area, CLASSES[c.code]
        assert round(c.ci95) == ci, CLASSES[c.code]
    assert [c.mapped for c in est.classes] == pytest.approx([18_000, 13_500, 288_000, 580_500])


def test_reproduces_olofsson_2014_table9_proportions():
    """The Table 8 counts as typed here give Table 9 (guards the transcription); the estimator's p_.j are the
    column sums of Table 9."""
    w = np.asarray(TABLE8_MAPPED_PIXELS) / sum(TABLE8_MAPPED_PIXELS)
    counts = np.asarray(TABLE8_COUNTS, dtype=float)
    p = w[:, None] * counts / counts.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.round(p, 4), TABLE9_PROPORTIONS, atol=1e-12)
    est = _paper_example()  # the estimator's p_.j are Table 9's column sums
    total = sum(c.mapped for c in est.classes)
    assert [round(c.estimated / total, 4) for c in est.classes] == [0.0235, 0.0130, 0.3175, 0.6460]


def test_reproduces_olofsson_2014_accuracies_to_two_decimals():
    est = _paper_example()
    for c, (ua, ua_ci), (pa, pa_ci) in zip(est.classes, PAPER_USERS, PAPER_PRODUCERS, strict=True):
        assert round(c.users_accuracy, 2) == ua, CLASSES[c.code]
        assert round(c.users_ci95, 2) == ua_ci, CLASSES[c.code]
        assert round(c.producers_accuracy, 2) == pa, CLASSES[c.code]
        if c.code in EQ7_PRODUCERS_CI:
            assert round(c.producers_ci95, 4) == EQ7_PRODUCERS_CI[c.code], CLASSES[c.code]
            assert round(c.producers_ci95, 2) != pa_ci  # the paper's printed value, documented above
        else:
            assert round(c.producers_ci95, 2) == pa_ci, CLASSES[c.code]
    assert (round(est.overall_accuracy, 2), round(est.overall_ci95, 2)) == PAPER_OVERALL
    assert est.sample_size == 640
    assert est.unassessed == [] and est.undersampled == []


def test_units_follow_the_mapped_areas():
    """Pixels in, pixels out: the paper's deforestation estimate is 235,086 ± 68,418 pixels."""
    est = estimate(TABLE8_MAPPED_PIXELS, TABLE8_COUNTS)
    assert (round(est.classes[0].estimated), round(est.classes[0].ci95)) == PAPER_DEFORESTATION_PIXELS


def test_unsampled_class_keeps_its_mapped_area_and_is_reported():
    est = estimate([100.0, 50.0], [[9, 1], [0, 0]])
    assert est.unassessed == [1]
    assert est.by_code()[1].users_accuracy is None
    assert sum(c.estimated for c in est.classes) == pytest.approx(150.0)


def test_codes_align_map_and_sample_classes():
    # the sample knows classes 2 and 7 (rows map, columns reference); the map also holds class 9
    est = estimate_for_codes({2: 30.0, 7: 60.0, 9: 10.0}, [2, 7], [[8, 2], [1, 9]])
    by = est.by_code()
    assert sorted(by) == [2, 7, 9]
    assert est.unassessed == [9]
    assert by[9].estimated == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("mapped", "matrix", "message"),
    [
        ([1.0, 2.0], [[1, 0, 0], [0, 1, 0]], "2 x 2"),
        ([-1.0, 2.0], [[1, 0], [0, 1]], "non-negative"),
        ([0.0, 0.0], [[1, 0], [0, 1]], "no area"),
        ([1.0, 2.0], [[1, -1], [0, 1]], "counts"),
    ],
)
def test_bad_input_is_refused(mapped, matrix, message):
    with pytest.raises(ValueError, match=message):
        estimate(mapped, matrix)


mapped_areas = arrays(np.float64, st.integers(2, 6), elements=st.floats(1.0, 1e6))


@settings(max_examples=200, deadline=None)
@given(mapped=mapped_areas, per_class=st.integers(2, 50))
def test_perfect_matrix_gives_mapped_area_and_zero_width_intervals(mapped, per_class):
    k = mapped.shape[0]
    est = estimate(mapped, np.eye(k) * per_class)
    for c in est.classes:
        assert c.estimated == pytest.approx(c.mapped)
        assert c.ci95 == 0.0
        assert c.users_accuracy == pytest.approx(1.0) and c.users_ci95 == 0.0
        assert c.producers_accuracy == pytest.approx(1.0) and c.producers_ci95 == pytest.approx(0.0, abs=1e-12)
    assert est.overall_accuracy == pytest.approx(1.0) and est.overall_ci95 == 0.0


@st.composite
def maps_and_samples(draw):
    k = draw(st.integers(2, 6))
    mapped = draw(arrays(np.float64, k, elements=st.floats(0.0, 1e6)))
    counts = draw(arrays(np.int64, (k, k), elements=st.integers(0, 40)))
    if mapped.sum() <= 0:
        mapped[0] = 1.0
    return mapped, counts


@settings(max_examples=300, deadline=None)
@given(maps_and_samples())
def test_totals_are_conserved_and_intervals_are_sane(case):
    mapped, counts = case
    est = estimate(mapped, counts)
    assert sum(c.estimated for c in est.classes) == pytest.approx(mapped.sum(), rel=1e-9)
    assert sum(c.mapped for c in est.classes) == pytest.approx(mapped.sum())
    assert 0.0 <= est.overall_accuracy <= 1.0 + 1e-12
    for c in est.classes:
        assert c.estimated >= -1e-9 and c.ci95 >= 0.0
        for value in (c.users_accuracy, c.producers_accuracy):
            assert value is None or -1e-12 <= value <= 1.0 + 1e-12
