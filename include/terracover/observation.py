"""How each value a model sees was obtained: observed, gap-filled, or missing (the stacks' ``qa_{season}`` bands).

Every feature stack carries, after its feature bands, one float32 band per season named ``qa_{season}``: k >= 1
observed with k clear observations, 0 filled by linear interpolation in time, -1 filled by the declared
fallback, NaN missing. They are not features: training tables carry them as meta columns, so evaluation can
tell observed from filled test points, and predictions turn them into a per-pixel quality band. Stacks built
before these bands existed have none: a finite value then counts as observed (with an unknown count).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from terracover.features import SEASONS, parse_feature

QA_PREFIX = "qa_"
QA_BANDS: tuple[str, ...] = tuple(f"{QA_PREFIX}{s.name}" for s in SEASONS)

# Per-pixel / per-row status (also the values of a prediction's quality band, 0 = outside the AOI).
OBSERVED = 1  # every season the model uses had a clear observation
FILLED = 2  # complete features, at least one season gap-filled
PARTIAL = 3  # some features missing: classified by the NaN-aware model
NOT_CLASSIFIED = 4  # inside the AOI but not classified (no data, or missing features and no NaN-aware model)
STATUS_NAMES = {OBSERVED: "observed", FILLED: "gap_filled", PARTIAL: "missing_features", NOT_CLASSIFIED: "unclassified"}


def is_quality_column(name: str) -> bool:
    return name.startswith(QA_PREFIX)


def quality_columns(columns: Iterable[str]) -> list[str]:
    """The ``qa_*`` columns among ``columns``, in their order."""
    return [c for c in columns if is_quality_column(c)]


def _season(feature: str) -> str | None:
    """The feature's season; None for terrain and for names outside the catalogue (no stack band says)."""
    try:
        return parse_feature(feature).season
    except KeyError:
        return None


def qa_bands_for(features: Sequence[str]) -> list[str]:
    """``qa_{season}`` of every season the features draw on (terrain draws on none), in season order."""
    seasons = {_season(f) for f in features}
    return [f"{QA_PREFIX}{s.name}" for s in SEASONS if s.name in seasons]


def seasonal(features: Sequence[str]) -> np.ndarray:
    """Boolean mask of the features that come from a season (not terrain)."""
    return np.array([_season(f) is not None for f in features], dtype=bool)


def has_observation(values: np.ndarray, features: Sequence[str], axis: int = -1) -> np.ndarray:
    """Rows (or pixels) with at least one finite seasonal feature: something was seen there. Terrain alone
    is no observation; a pixel without any is unclassified, never invented from the DEM."""
    season = seasonal(features)
    if not season.any():
        return np.asarray(np.isfinite(values).all(axis=axis))
    take = np.compress(season, values, axis=axis)
    return np.asarray(np.isfinite(take).any(axis=axis))


def status(values: np.ndarray, qa: np.ndarray | None, axis: int = -1) -> np.ndarray:
    """OBSERVED / FILLED / PARTIAL per row (``axis`` = the feature axis of ``values`` and the season axis of
    ``qa``, which holds the ``qa_bands_for`` seasons). Rows with missing features are PARTIAL here; whether
    they get classified is the model's business (:func:`terracover.missing.accepts_missing`)."""
    return status_of(np.isfinite(values).all(axis=axis), qa, axis)


def status_of(complete: np.ndarray, qa: np.ndarray | None, axis: int = -1) -> np.ndarray:
    """:func:`status` from the rows' completeness (every feature finite) and their ``qa`` values."""
    if qa is None or qa.shape[axis] == 0:
        return np.where(complete, np.uint8(OBSERVED), np.uint8(PARTIAL))
    with np.errstate(invalid="ignore"):
        filled = (qa < 1).any(axis=axis)  # 0 interpolated, -1 fallback (NaN compares False: missing)
    return np.where(complete, np.where(filled, np.uint8(FILLED), np.uint8(OBSERVED)), np.uint8(PARTIAL))


def clear_count(qa: np.ndarray | None, axis: int = -1) -> np.ndarray | None:
    """Clear observations summed over the seasons (filled or missing seasons add 0), as uint8 (<= 255)."""
    if qa is None or qa.shape[axis] == 0:
        return None
    counts = np.where(np.isfinite(qa) & (qa >= 1), qa, 0).sum(axis=axis)
    return np.clip(counts, 0, 255).astype(np.uint8)
