"""Spectral indices, declared once as data: name, bands, formula on surface reflectance, plausible range.

Formulas take reflectance (DN / 10000 after the L2A offset), never DNs: normalised differences do not care,
but the constants of EVI2 and OSAVI (+1, +0.16) and the reciprocals of CRI1 are defined on reflectance. KHAOS
(landcoverpy) applied them to DNs; where our definition departs from theirs, the entry says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

Bands = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class SpectralIndex:
    name: str  # the feature-name suffix: ``summer_<name>``
    long_name: str
    bands: tuple[str, ...]  # ESA band names the formula reads
    formula: Callable[[Bands], np.ndarray]
    # bounds for land reflectances in [0.01, 1]; features.normalise() maps this range onto [-1, 1]
    value_range: tuple[float, float]
    reference: str


def _nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Normalised difference (a - b) / (a + b)."""
    return (a - b) / (a + b)


UNIT = (-1.0, 1.0)

INDICES: tuple[SpectralIndex, ...] = (
    SpectralIndex(
        "ndvi", "Normalized Difference Vegetation Index", ("B08", "B04"),
        lambda b: _nd(b["B08"], b["B04"]), UNIT, "Rouse et al. 1974",
    ),
    SpectralIndex(
        "ndwi", "Normalized Difference Water Index (green/NIR)", ("B03", "B08"),
        lambda b: _nd(b["B03"], b["B08"]), UNIT, "McFeeters 1996, doi:10.1080/01431169608948714",
    ),
    SpectralIndex(
        "mndwi", "Modified NDWI (green/SWIR1)", ("B03", "B11"),
        lambda b: _nd(b["B03"], b["B11"]), UNIT, "Xu 2006, doi:10.1080/01431160600589179",
    ),
    SpectralIndex(
        "ndbi", "Normalized Difference Built-up Index", ("B11", "B08"),
        lambda b: _nd(b["B11"], b["B08"]), UNIT, "Zha et al. 2003, doi:10.1080/01431160304987",
    ),
    SpectralIndex(
        "ndyi", "Normalized Difference Yellowness Index", ("B03", "B02"),
        lambda b: _nd(b["B03"], b["B02"]), UNIT, "Sulik & Long 2016, doi:10.1016/j.isprsjprs.2016.01.003",
    ),
    # B8A, not KHAOS's B09: B09 (945 nm, 60 m) sits in a water-vapour absorption band; B8A (865 nm) is the
    # narrow NIR band at B05's own 20 m resolution.
    SpectralIndex(
        "ndre", "Normalized Difference Red-Edge (B8A/B05)", ("B8A", "B05"),
        lambda b: _nd(b["B8A"], b["B05"]), UNIT, "Barnes et al. 2000",
    ),
    # Jiang's EVI2; KHAOS computed 2.4 * (N - R) / (N + R + 1) on DNs, which is 2.4 * NDVI.
    SpectralIndex(
        "evi2", "Two-band Enhanced Vegetation Index", ("B08", "B04"),
        lambda b: 2.5 * (b["B08"] - b["B04"]) / (b["B08"] + 2.4 * b["B04"] + 1.0),
        (-2.5 / 3.4, 1.25), "Jiang et al. 2008, doi:10.1016/j.rse.2008.06.006",
    ),
    SpectralIndex(
        "osavi", "Optimized Soil-Adjusted Vegetation Index", ("B08", "B04"),
        lambda b: 1.16 * (b["B08"] - b["B04"]) / (b["B08"] + b["B04"] + 0.16),
        UNIT, "Rondeaux et al. 1996, doi:10.1016/0034-4257(95)00186-7 (scaled by 1 + 0.16 to span [-1, 1])",
    ),
    # KHAOS's ``moisture``: NDMI with the narrow NIR band.
    SpectralIndex(
        "moisture", "Normalized Difference Moisture Index", ("B8A", "B11"),
        lambda b: _nd(b["B8A"], b["B11"]), UNIT, "Gao 1996, doi:10.1016/S0034-4257(96)00067-3",
    ),
    # KHAOS's ``ri`` (kept, RFE selected summer_ri); not the soil Redness Index R² / (B G³) of Madeira 1997.
    SpectralIndex(
        "ri", "Normalized Difference Red/Green Redness Index", ("B04", "B03"),
        lambda b: _nd(b["B04"], b["B03"]), UNIT, "Index DataBase, indexdatabase.de (KHAOS landcoverpy ri)",
    ),
    # Gitelson's difference of reciprocals; KHAOS computed (1 / B02) / (1 / B03), i.e. the ratio B03 / B02.
    SpectralIndex(
        "cri1", "Carotenoid Reflectance Index 1", ("B02", "B03"),
        lambda b: 1.0 / b["B02"] - 1.0 / b["B03"],
        (-100.0, 100.0), "Gitelson et al. 2002, doi:10.1562/0031-8655(2002)075<0272:AOCCIP>2.0.CO;2",
    ),
)  # fmt: skip

INDEX_BY_NAME: dict[str, SpectralIndex] = {i.name: i for i in INDICES}


def compute_index(name: str, bands: Mapping[str, ArrayLike]) -> np.ndarray:
    """One index from reflectance arrays keyed by band name, as float32; NaN where undefined, never inf.

    A zero denominator (0 / 0 or x / 0) gives NaN rather than the +-inf numpy would produce, so a feature
    stack has one nodata value and models never see infinities.
    """
    index = INDEX_BY_NAME.get(name)
    if index is None:
        raise KeyError(f"unknown spectral index {name!r}; known: {', '.join(INDEX_BY_NAME)}")
    missing = [b for b in index.bands if b not in bands]
    if missing:
        raise KeyError(f"index {name!r} needs bands {list(index.bands)}; missing {missing}")
    refl = {b: np.asarray(bands[b], dtype=np.float32) for b in index.bands}
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(index.formula(refl), dtype=np.float32)
    out[~np.isfinite(out)] = np.nan
    return out
