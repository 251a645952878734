"""The feature catalogue as data: every model feature is a name resolving to a season, a source and a range.

Names are ``<season>_<band>`` (``spring_B04``), ``<season>_<index>`` (``summer_ndvi``) or a terrain layer
(``dem``, ``slope``, ``aspect``). A model records its ordered list of names; the stack builder, the training
table and serving all resolve them here, so adding an index to :mod:`terracover.indices` adds four features
and no code. :func:`all_features` is also the band order of the per-subtile feature COG.

Stack values (what the COG stores and models consume): surface reflectance for the 12 spectral bands, AOT and
water vapour in their physical units, indices as computed from reflectance, elevation in metres, slope and
aspect in degrees.
"""

from __future__ import annotations

import calendar
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from terracover.bands import BANDS, REFLECTANCE_SCALE, SPECTRAL_BANDS
from terracover.indices import INDEX_BY_NAME, INDICES, compute_index


@dataclass(frozen=True)
class Season:
    name: str
    first_month: int
    last_month: int  # inclusive; before first_month when the season starts in December of the previous year

    def window(self, year: int) -> tuple[date, date]:
        """First and last day of this season of ``year`` (winter 2023 = 2022-12-01 .. 2023-02-28)."""
        start_year = year - 1 if self.first_month > self.last_month else year
        last_day = calendar.monthrange(year, self.last_month)[1]
        return date(start_year, self.first_month, 1), date(year, self.last_month, last_day)


# Full meteorological seasons. KHAOS used two-month windows (Mar-Apr, Jun-Jul, Oct-Nov) and no winter; three
# months give every pixel more chances of a clear observation.
SEASONS: tuple[Season, ...] = (
    Season("winter", 12, 2),
    Season("spring", 3, 5),
    Season("summer", 6, 8),
    Season("autumn", 9, 11),
)
SEASON_BY_NAME: dict[str, Season] = {s.name: s for s in SEASONS}
TERRAIN_FEATURES: tuple[str, ...] = ("dem", "slope", "aspect")

FeatureKind = Literal["band", "index", "terrain"]


@dataclass(frozen=True)
class ValueScale:
    """How one source is stored in the stack, and the range :func:`normalise` maps onto [-1, 1]."""

    unit: str
    value_range: tuple[float, float]
    dn_scale: float | None = None  # stack value = DN x dn_scale (bands only: L2A quantification values)


# One table for every source. Ranges follow KHAOS (bands 0..7000 DN = reflectance 0..0.7, slope 0..70,
# aspect 0..360, dem 0..2000); AOT and WVP use their L2A quantification (1000) and the span seen over land.
_REFLECTANCE = ValueScale("surface reflectance", (0.0, 0.7), REFLECTANCE_SCALE)
VALUE_SCALES: dict[str, ValueScale] = {
    **{b.name: _REFLECTANCE for b in BANDS if b.is_reflectance},
    "AOT": ValueScale("aerosol optical thickness at 550 nm", (0.0, 1.0), 1e-3),
    "WVP": ValueScale("water vapour column, cm", (0.0, 6.0), 1e-3),
    **{i.name: ValueScale(f"index: {i.long_name}", i.value_range) for i in INDICES},
    "dem": ValueScale("metres above sea level", (0.0, 2000.0)),
    "slope": ValueScale("degrees", (0.0, 70.0)),
    "aspect": ValueScale("degrees clockwise from north, downhill direction", (0.0, 360.0)),
}


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: FeatureKind
    source: str  # band name, index name or terrain layer
    season: str | None  # None for terrain

    @property
    def scale(self) -> ValueScale:
        return VALUE_SCALES[self.source]


def _catalogue() -> dict[str, FeatureSpec]:
    specs = [FeatureSpec(t, "terrain", t, None) for t in TERRAIN_FEATURES]
    for season in SEASONS:
        specs += [FeatureSpec(f"{season.name}_{b}", "band", b, season.name) for b in SPECTRAL_BANDS]
        specs += [FeatureSpec(f"{season.name}_{i.name}", "index", i.name, season.name) for i in INDICES]
    return {s.name: s for s in specs}


_CATALOGUE = _catalogue()
DEFAULT_FEATURES: tuple[str, ...] = tuple(_CATALOGUE)


def all_features() -> list[str]:
    """Every feature in canonical order: terrain, then per season (winter..autumn) its bands, then indices."""
    return list(_CATALOGUE)


def parse_feature(name: str) -> FeatureSpec:
    """Resolve a feature name, or say which names exist."""
    spec = _CATALOGUE.get(name)
    if spec is not None:
        return spec
    close = difflib.get_close_matches(name, _CATALOGUE, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise KeyError(
        f"unknown feature {name!r}.{hint} Valid: {', '.join(TERRAIN_FEATURES)}, or <season>_<source> with"
        f" season in {list(SEASON_BY_NAME)} and source a band {list(SPECTRAL_BANDS)}"
        f" or an index {list(INDEX_BY_NAME)}"
    )


def normalise(name: str, values: np.ndarray) -> np.ndarray:
    """Map a feature's stack values linearly from its range onto [-1, 1], float32; nothing is clipped."""
    lo, hi = parse_feature(name).scale.value_range
    v = np.asarray(values, dtype=np.float32)
    return (np.float32(2 / (hi - lo)) * (v - np.float32(lo)) - np.float32(1)).astype(np.float32, copy=False)


def select_bands(stack_band_names: Sequence[str], wanted: Sequence[str]) -> list[int]:
    """1-based band indexes (for ``rasterio.read``) of the ``wanted`` features in a stack of these bands."""
    position = {n: i for i, n in reversed(list(enumerate(stack_band_names, start=1)))}
    missing = [w for w in wanted if w not in position]
    if missing:
        raise KeyError(
            f"features {missing} are not in the stack; it has {len(stack_band_names)} bands: "
            f"{', '.join(stack_band_names)}. Rebuild the stack with these features or retrain without them."
        )
    return [position[w] for w in wanted]


def composite_to_values(medians: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
    """Median DNs per band (offset already removed) to stack values: reflectance, AOT, WVP cm; float32."""
    out: dict[str, np.ndarray] = {}
    for band, dn in medians.items():
        scale = VALUE_SCALES.get(band)
        if scale is None or scale.dn_scale is None:
            raise KeyError(f"{band!r} is not an L2A band of the stack; expected one of {list(SPECTRAL_BANDS)}")
        out[band] = (np.asarray(dn, dtype=np.float64) * scale.dn_scale).astype(np.float32)
    return out


def compute_feature_stack(
    season_composites: Mapping[str, Mapping[str, np.ndarray]],
    dem: np.ndarray,
    slope: np.ndarray,
    aspect: np.ndarray,
    names: Sequence[str],
) -> np.ndarray:
    """The (F, H, W) float32 stack of ``names``: bands from the seasonal composites (stack values, see
    :func:`composite_to_values`), indices computed from them, terrain as given. NaN stays NaN."""
    terrain = {"dem": dem, "slope": slope, "aspect": aspect}
    out = np.empty((len(names), *dem.shape), dtype=np.float32)
    for k, name in enumerate(names):
        spec = parse_feature(name)
        if spec.season is None:
            out[k] = terrain[spec.source]
            continue
        bands = season_composites.get(spec.season)
        if bands is None:
            raise KeyError(f"feature {name!r} needs the {spec.season} composite; got {list(season_composites)}")
        if spec.kind == "band":
            if spec.source not in bands:
                raise KeyError(f"feature {name!r} needs band {spec.source} in the {spec.season} composite")
            out[k] = bands[spec.source]
        else:
            out[k] = compute_index(spec.source, bands)
    return out
