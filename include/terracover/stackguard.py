"""The physical-range guard of a feature stack: a wrong L2A offset stops at compositing, not at a model.

Surface reflectance of real surfaces lies in about 0..1; L2A allows slightly negative values over very dark
targets (down to -0.1 is encodable since baseline 04.00, but atmospheric correction rarely goes below -0.02),
and clouds/snow rarely exceed 1.2. In the visible bands even water and dense forest stay above about 0.01, so a
seasonal median below -0.01 there is not a surface: a scene whose offset was removed twice puts most pixels of
B02-B04 between -0.09 and -0.01. A wrong scale (L1C, other units) puts values far above 1.5. So the guard
counts, per season and optical band, the valid composite pixels outside :func:`physical_range` and fails the
stack past a share. Limits: over bright deserts a doubled offset stays inside the range (sand is brighter than
0.1 in every band), and :mod:`terracover.radiometry`'s dark-target check is then inconclusive too.
It also records the share sitting at the encoding's clip floor (DN 1), which is where clipped values pile up.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pystac

from terracover.radiometry import EVIDENCE_PROPERTY, REFLECTANCE_BANDS

VISIBLE_BANDS = ("B02", "B03", "B04")
PHYSICAL_RANGE = (-0.05, 1.5)
"""Plausible reflectance of a composite pixel in an optical band (see the module docstring)."""
VISIBLE_FLOOR = -0.01
"""Lower bound in the visible bands, where no surface is darker than about 0.01."""


def physical_range(band: str) -> tuple[float, float]:
    """The plausible reflectance range of a seasonal median in ``band``."""
    lo, hi = PHYSICAL_RANGE
    return (VISIBLE_FLOOR if band in VISIBLE_BANDS else lo), hi


DEFAULT_MAX_OUT_OF_RANGE = 0.05
"""Largest share of a season's valid pixels in one band allowed outside PHYSICAL_RANGE (settings override)."""
OUT_OF_RANGE_PROPERTY = "terracover:out_of_range_fraction"  # {season: {band: share}} in the stack's item
AT_FLOOR_PROPERTY = "terracover:at_clip_floor_fraction"  # {season: {band: share}}


class PhysicalRangeError(ValueError):
    """A stack whose reflectance is not physical: the scenes' offset or scale is wrong."""


class RangeGuard:
    """Counts, over the blocks of one stack, valid / out-of-range / at-floor pixels per season and band."""

    def __init__(self, bands: Sequence[str] = REFLECTANCE_BANDS):
        self.bands = tuple(bands)
        self.ranges = {b: physical_range(b) for b in self.bands}
        self.valid: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(len(self.bands), np.int64))
        self.below: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(len(self.bands), np.int64))
        self.above: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(len(self.bands), np.int64))
        self.floor: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(len(self.bands), np.int64))

    def add(self, season: str, reflectance: Mapping[str, np.ndarray], floor: Mapping[str, float]) -> None:
        """Count one block: ``reflectance`` per band (NaN = no valid observation); ``floor`` = DN 1's value."""
        for k, band in enumerate(self.bands):
            r = reflectance[band]
            ok = np.isfinite(r)
            self.valid[season][k] += int(ok.sum())
            lo, hi = self.ranges[band]
            self.below[season][k] += int((r[ok] < lo).sum())
            self.above[season][k] += int((r[ok] > hi).sum())
            self.floor[season][k] += int((r[ok] <= floor[band] + 1e-6).sum())

    def _share(self, counts: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
        return {
            s: {b: round(float(counts[s][k]) / max(int(self.valid[s][k]), 1), 4) for k, b in enumerate(self.bands)}
            for s in sorted(self.valid)
        }

    def fractions(self) -> dict[str, dict[str, float]]:
        """Share of valid pixels outside the physical range, per season and band (the stack item records it)."""
        return {
            s: {b: round(v + self._share(self.above)[s][b], 4) for b, v in per.items()}
            for s, per in self._share(self.below).items()
        }

    def at_floor(self) -> dict[str, dict[str, float]]:
        return self._share(self.floor)

    def enforce(self, item_id: str, scenes: Mapping[str, Sequence[pystac.Item]], max_share: float) -> None:
        """Raise :class:`PhysicalRangeError` naming the likely cause when a band/season passes ``max_share``."""
        below, above = self._share(self.below), self._share(self.above)
        worst = [
            (max(below[s][b], above[s][b]), s, b, below[s][b] >= above[s][b])
            for s in below
            for b in self.bands
            if below[s][b] + above[s][b] > max_share
        ]
        if not worst:
            return
        share, season, band, too_low = max(worst)
        evidence = sorted({str(i.properties.get(EVIDENCE_PROPERTY, "?")) for i in scenes.get(season, [])})
        if too_low:
            cause = (
                f"{share:.1%} of its valid {band} pixels have reflectance below {self.ranges[band][0]}:"
                " the L2A offset (1000 DN) was most likely subtracted from DNs that were already harmonised,"
                " i.e. a scene's metadata claim the offset is still in its DNs when it is not"
                " (e.g. earthsearch:boa_offset_applied wrongly false)"
            )
        else:
            cause = (
                f"{share:.1%} of its valid {band} pixels have reflectance above {self.ranges[band][1]}:"
                " the DNs are not L2A surface reflectance x 10000 (wrong scale or product level)"
            )
        raise PhysicalRangeError(
            f"stack {item_id}: the {season} composite is not physical: {cause}. Offset evidence of its scenes:"
            f" {evidence}. Nothing was written; fix or exclude the scenes and rebuild"
            f" (threshold {max_share:.0%}: TERRACOVER_STACK_MAX_OUT_OF_RANGE)."
        )

    def summary(self) -> dict[str, Any]:
        return {OUT_OF_RANGE_PROPERTY: self.fractions(), AT_FLOOR_PROPERTY: self.at_floor()}
