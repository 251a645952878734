"""Sentinel-2 L2A rasters: our band names, native resolutions and the asset keys public catalogs use.

Earth Search (``sentinel-2-l2a``) names assets by common name (``blue``, ``nir08``, ``scl``...); Copernicus
products and Sentinel Hub name them ``B02``, ``B8A``, ``SCL``. Everything inside terracover uses the ESA names
(``B02``); this table is the one place that maps between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Band:
    name: str  # ESA name used in store keys and feature names
    resolution_m: int  # native ground sampling distance
    asset_key: str  # Earth Search v1 asset key
    wavelength_um: float | None = None
    is_reflectance: bool = True  # scaled by 1/10000 to reflectance


BANDS: tuple[Band, ...] = (
    Band("B01", 60, "coastal", 0.443),
    Band("B02", 10, "blue", 0.490),
    Band("B03", 10, "green", 0.560),
    Band("B04", 10, "red", 0.665),
    Band("B05", 20, "rededge1", 0.704),
    Band("B06", 20, "rededge2", 0.740),
    Band("B07", 20, "rededge3", 0.783),
    Band("B08", 10, "nir", 0.842),
    Band("B8A", 20, "nir08", 0.865),
    Band("B09", 60, "nir09", 0.945),
    Band("B11", 20, "swir16", 1.610),
    Band("B12", 20, "swir22", 2.190),
    Band("AOT", 20, "aot", None, is_reflectance=False),
    Band("WVP", 20, "wvp", None, is_reflectance=False),
)
SCL = Band("SCL", 20, "scl", None, is_reflectance=False)

BAND_BY_NAME: dict[str, Band] = {b.name: b for b in (*BANDS, SCL)}
BAND_BY_ASSET: dict[str, Band] = {b.asset_key: b for b in (*BANDS, SCL)}
SPECTRAL_BANDS: tuple[str, ...] = tuple(b.name for b in BANDS)

# L2A processing baseline >= 04.00 adds an offset of -1000 to digital numbers (BOA_ADD_OFFSET).
REFLECTANCE_SCALE = 1.0 / 10000.0

# Scene Classification (SCL) codes of the L2A product.
SCL_NO_DATA = 0
SCL_SATURATED = 1
SCL_DARK = 2
SCL_CLOUD_SHADOW = 3
SCL_VEGETATION = 4
SCL_NOT_VEGETATED = 5
SCL_WATER = 6
SCL_UNCLASSIFIED = 7
SCL_CLOUD_MEDIUM = 8
SCL_CLOUD_HIGH = 9
SCL_THIN_CIRRUS = 10
SCL_SNOW = 11

INVALID_SCL: frozenset[int] = frozenset(
    {SCL_NO_DATA, SCL_SATURATED, SCL_CLOUD_SHADOW, SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_THIN_CIRRUS, SCL_SNOW}
)


def valid_scl_lut(keep_snow: bool = False) -> np.ndarray:
    """A 256-entry lookup table: ``lut[scl]`` is True where the observation may enter a composite.

    A table, not a range test, because the invalid codes are not contiguous (3, 8-10 and 0-1, 11).
    """
    lut = np.ones(256, dtype=np.bool_)
    for code in INVALID_SCL:
        lut[code] = False
    if keep_snow:
        lut[SCL_SNOW] = True
    return lut


def band_for_asset(asset_key: str) -> Band | None:
    """Resolve an asset key from any supported catalog (``nir08``, ``B8A``, ``b8a``) to our band."""
    return BAND_BY_ASSET.get(asset_key) or BAND_BY_NAME.get(asset_key.upper())
