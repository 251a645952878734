"""Error-adjusted area estimates with 95 % confidence intervals (Olofsson et al. 2014).

Pixel counting is biased by classification error: a class the model over-predicts is over-counted. The
stratified estimator of Olofsson, Foody, Herold, Stehman, Woodcock and Wulder (2014), "Good practices for
estimating area and assessing accuracy of land change", Remote Sensing of Environment 148: 42-57, corrects
the mapped areas with a reference sample whose strata are the map classes, and gives the standard errors
from which the intervals follow. Notation of the paper: ``A_tot`` total area, ``W_i`` = mapped area share of
class *i*, ``n_ij`` = sample units mapped *i* whose reference class is *j*, ``n_i.`` = row total, ``p_ij`` =
``W_i n_ij / n_i.`` (eq. 4), area of *j* = ``A_tot * sum_i p_ij`` (eq. 9), its standard error eq. 10,
user's accuracy eq. 2 with variance eq. 6, producer's accuracy eq. 3 with variance eq. 7, overall accuracy
eq. 1 with variance eq. 5.

Two cases the paper leaves to the analyst are decided here and reported, never hidden:
- a mapped class with no sample unit (``n_i. = 0``) cannot be corrected: its mapped area is kept as its own
  reference area (``p_ii = W_i``) with no variance, and the class is listed in ``unassessed``;
- a stratum with a single sample unit has an undefined variance (``n_i. - 1 = 0``): it contributes zero
  variance (the convention of the R package mapaccuracy) and is listed in ``undersampled``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.96  # the paper's multiplier for 95 % intervals


@dataclass(frozen=True)
class ClassArea:
    """One class: mapped and error-adjusted area (same unit as the mapped areas) and its accuracies."""

    code: int
    mapped: float
    estimated: float
    se: float
    ci95: float  # half-width: the interval is estimated ± ci95
    users_accuracy: float | None  # None when the class was never mapped in the sample
    users_ci95: float | None
    producers_accuracy: float | None  # None when the estimated area of the class is zero
    producers_ci95: float | None
    sample_mapped: int  # n_i.: sample units the map puts in this class
    sample_reference: int  # n_.i: sample units whose reference class this is


@dataclass(frozen=True)
class AreaEstimate:
    """Every class's estimate plus the overall accuracy, for one map (stratum set) and one error matrix."""

    classes: list[ClassArea]
    overall_accuracy: float
    overall_ci95: float
    total: float
    sample_size: int
    unassessed: list[int]  # mapped classes with no sample unit: mapped area kept, not corrected
    undersampled: list[int]  # strata with one sample unit: zero variance assumed

    def by_code(self) -> dict[int, ClassArea]:
        return {c.code: c for c in self.classes}


def _check(mapped: np.ndarray, counts: np.ndarray) -> None:
    k = mapped.shape[0]
    if counts.shape != (k, k):
        raise ValueError(f"error matrix must be {k} x {k} for {k} mapped classes (got {counts.shape})")
    if not (np.all(np.isfinite(mapped)) and np.all(mapped >= 0)):
        raise ValueError("mapped areas must be finite and non-negative")
    if not (np.all(np.isfinite(counts)) and np.all(counts >= 0)):
        raise ValueError("error matrix counts must be finite and non-negative")
    if mapped.sum() <= 0:
        raise ValueError("the map has no area")


def estimate(
    mapped: Sequence[float] | np.ndarray,
    error_matrix: Sequence[Sequence[float]] | np.ndarray,
    codes: Sequence[int] | None = None,
    z: float = Z95,
) -> AreaEstimate:
    """Stratified estimates of area and accuracy.

    ``mapped[i]`` is the mapped area (pixels, hectares: the estimates come in the same unit) of class *i*;
    ``error_matrix[i][j]`` counts reference sample units mapped as class *i* whose reference class is *j*
    (rows map, columns reference, as in the paper's Table 4). ``codes`` names the classes (default 0..k-1).
    """
    a = np.asarray(mapped, dtype=np.float64)
    n = np.asarray(error_matrix, dtype=np.float64)
    _check(a, n)
    k = a.shape[0]
    labels = list(codes) if codes is not None else list(range(k))
    if len(labels) != k:
        raise ValueError(f"{len(labels)} codes for {k} classes")

    total = float(a.sum())
    w = a / total
    n_row = n.sum(axis=1)
    sampled = n_row > 0
    unassessed = [int(labels[i]) for i in range(k) if not sampled[i] and a[i] > 0]
    undersampled = [int(labels[i]) for i in range(k) if n_row[i] == 1]

    # eq. 4: estimated area proportions; an unsampled stratum keeps its mapped class (see module doc)
    share = np.zeros_like(n)
    np.divide(n, n_row[:, None], out=share, where=sampled[:, None])
    share[~sampled] = np.eye(k)[~sampled]
    p = w[:, None] * share

    # variance terms with n_i. - 1 in the denominator: zero where the stratum has fewer than two units
    dof = n_row - 1.0
    inv_dof = np.zeros(k)
    np.divide(1.0, dof, out=inv_dof, where=dof > 0)

    ref_share = p.sum(axis=0)  # p_.j
    estimated = total * ref_share  # eq. 9 (area)
    # eq. 10: S(p_.j)^2 = sum_i W_i^2 (n_ij/n_i.)(1 - n_ij/n_i.) / (n_i. - 1)
    var_share = ((w**2)[:, None] * share * (1.0 - share) * inv_dof[:, None]).sum(axis=0)
    se = total * np.sqrt(var_share)

    diag = np.diag(p)
    row_p = p.sum(axis=1)  # = W_i
    users = np.full(k, np.nan)
    np.divide(diag, row_p, out=users, where=sampled & (row_p > 0))
    users_var = users * (1.0 - users) * inv_dof  # eq. 6
    producers = np.full(k, np.nan)
    np.divide(diag, ref_share, out=producers, where=ref_share > 0)

    # eq. 7 with estimated reference totals N_.j = sum_i (N_i / n_i.) n_ij (here in area units)
    n_ref = estimated
    first = a**2 * (1.0 - producers) ** 2 * users * (1.0 - users) * inv_dof
    per_stratum = (a**2)[:, None] * share * (1.0 - share) * inv_dof[:, None]  # N_i^2 n_ij/n_i (1-n_ij/n_i)/(n_i-1)
    others = per_stratum.sum(axis=0) - np.diag(per_stratum)  # sum over i != j
    producers_var = np.full(k, np.nan)
    ok = n_ref > 0
    producers_var[ok] = (np.nan_to_num(first[ok]) + producers[ok] ** 2 * others[ok]) / n_ref[ok] / n_ref[ok]

    overall = float(diag.sum())  # eq. 1
    overall_var = float(np.nansum(w**2 * np.where(sampled, users * (1.0 - users), 0.0) * inv_dof))  # eq. 5

    def opt(x: float) -> float | None:
        return None if not np.isfinite(x) else float(x)

    classes = [
        ClassArea(
            code=int(labels[i]),
            mapped=float(a[i]),
            estimated=float(estimated[i]),
            se=float(se[i]),
            ci95=float(z * se[i]),
            users_accuracy=opt(users[i]),
            users_ci95=opt(z * np.sqrt(users_var[i])) if np.isfinite(users[i]) else None,
            producers_accuracy=opt(producers[i]),
            producers_ci95=opt(z * np.sqrt(producers_var[i])) if np.isfinite(producers[i]) else None,
            sample_mapped=int(n_row[i]),
            sample_reference=int(n[:, i].sum()),
        )
        for i in range(k)
    ]
    return AreaEstimate(
        classes=classes,
        overall_accuracy=overall,
        overall_ci95=float(z * np.sqrt(overall_var)),
        total=total,
        sample_size=int(n.sum()),
        unassessed=unassessed,
        undersampled=undersampled,
    )


def estimate_for_codes(
    mapped_by_code: Mapping[int, float],
    matrix_codes: Sequence[int],
    error_matrix: Sequence[Sequence[float]] | np.ndarray,
    z: float = Z95,
) -> AreaEstimate:
    """:func:`estimate` over the union of the map's classes and the sample's classes, by class code.

    A class the map holds but the sample never saw gets an empty row and column (it is then ``unassessed``);
    a class the sample holds but the map does not gets zero mapped area (it can still gain estimated area
    from other strata's omission errors).
    """
    n = np.asarray(error_matrix, dtype=np.float64)
    codes = sorted({int(c) for c in matrix_codes} | {int(c) for c, v in mapped_by_code.items() if v > 0})
    index = {c: i for i, c in enumerate(codes)}
    full = np.zeros((len(codes), len(codes)))
    for r, cr in enumerate(matrix_codes):
        for c, cc in enumerate(matrix_codes):
            full[index[int(cr)], index[int(cc)]] += n[r, c]
    mapped = np.array([float(mapped_by_code.get(c, 0.0)) for c in codes])
    return estimate(mapped, full, codes, z)
