"""Sentinel-2 L2A surface reflectance of each land-cover class through the year: the simulator's spectra.

Each class has a green-season spectrum (``PEAK``) and an off-season one (``DORMANT``) over the 12 reflectance
bands in ESA order (B01..B12 with B8A); a per-class, per-season greenness mixes them (phenology). Values:

- Forest, grassland, shrubland and built-up are calibrated on the real Sentinel-2 patch in
  ``../shared/data/eolearn_testeopatch`` (Slovenia, summer 2015, real LULC labels): the class medians of B05-B12
  there (B8A/B11/B12 = .24/.10/.04 forest, .34/.19/.09 grassland), with the visible bands lowered to surface
  values (that patch is L1C: top-of-atmosphere blue is ~.05 brighter than L2A over vegetation).
- Bare soil is the real L2A tile 29RKH in ``../shared/data`` (arid bare ground, 2020-02-19): B04 .34, B11 .48.
- Spectral shapes (red edge, SWIR water absorption, water's NIR darkness, dry-vegetation and urban spectra) follow
  the USGS Spectral Library version 7 (Kokaly et al. 2017, doi:10.3133/ds1035) and the ECOSTRESS library
  (Meerdink et al. 2019, doi:10.1016/j.rse.2019.05.015) convolved to the MSI bands; their magnitudes come from
  the real samples above wherever those hold the class (water, wetland, cropland and open forest do not: they
  are set between the calibrated classes along those library shapes).

Within-class variability (real patch: IQR/median .19-.25 in NIR/SWIR) comes from three sources: greenness that
varies from field to field, a brightness factor (field scale and pixel scale, lognormal), and mixed pixels
(each pixel takes part of its neighbours' spectrum, so class boundaries blend as at 10-20 m in reality).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage

from terracover.bands import BANDS, SCL_NOT_VEGETATED, SCL_VEGETATION, SCL_WATER

REFLECTANCE_BANDS: tuple[str, ...] = tuple(b.name for b in BANDS if b.is_reflectance)
#            B01    B02    B03    B04    B05    B06    B07    B08    B8A    B09    B11    B12
PEAK: dict[int, tuple[float, ...]] = {
    1: (0.060, 0.065, 0.080, 0.070, 0.110, 0.195, 0.235, 0.250, 0.275, 0.275, 0.168, 0.092),  # builtUp
    2: (0.030, 0.035, 0.065, 0.050, 0.100, 0.240, 0.295, 0.300, 0.335, 0.335, 0.182, 0.080),  # herbaceous
    3: (0.025, 0.030, 0.055, 0.042, 0.080, 0.195, 0.245, 0.250, 0.282, 0.282, 0.132, 0.056),  # shrubland
    4: (0.050, 0.050, 0.050, 0.030, 0.020, 0.012, 0.010, 0.008, 0.006, 0.005, 0.003, 0.002),  # water
    5: (0.030, 0.035, 0.055, 0.040, 0.070, 0.150, 0.180, 0.190, 0.200, 0.200, 0.100, 0.050),  # wetland
    6: (0.030, 0.035, 0.070, 0.040, 0.105, 0.280, 0.345, 0.355, 0.380, 0.380, 0.200, 0.090),  # cropland
    7: (0.020, 0.025, 0.045, 0.025, 0.062, 0.165, 0.212, 0.215, 0.242, 0.242, 0.100, 0.042),  # closedForest
    8: (0.030, 0.035, 0.060, 0.045, 0.090, 0.195, 0.235, 0.245, 0.265, 0.265, 0.155, 0.078),  # openForest
    9: (0.140, 0.166, 0.238, 0.341, 0.370, 0.376, 0.382, 0.390, 0.383, 0.383, 0.481, 0.458),  # bareSoil
}
_DRY = (0.060, 0.070, 0.100, 0.130, 0.160, 0.190, 0.210, 0.220, 0.230, 0.230, 0.290, 0.230)  # senescent / soil
DORMANT: dict[int, tuple[float, ...]] = {
    **{code: _DRY for code in (2, 3, 6, 8)},
    1: (0.080, 0.085, 0.100, 0.110, 0.130, 0.170, 0.190, 0.200, 0.215, 0.215, 0.210, 0.160),
    4: PEAK[4],
    5: (0.045, 0.050, 0.065, 0.065, 0.080, 0.110, 0.120, 0.125, 0.130, 0.130, 0.110, 0.070),
    7: (0.022, 0.028, 0.048, 0.032, 0.070, 0.150, 0.185, 0.190, 0.210, 0.210, 0.115, 0.052),
    9: PEAK[9],
}
# Share of PEAK per season (winter, spring, summer, autumn); cropland: green in spring, harvested in summer.
GREENNESS: dict[int, tuple[float, float, float, float]] = {
    1: (0.6, 0.9, 1.0, 0.8),
    2: (0.3, 0.9, 0.95, 0.5),
    3: (0.5, 0.8, 1.0, 0.7),
    4: (1.0, 1.0, 1.0, 1.0),
    5: (0.4, 0.8, 1.0, 0.6),
    6: (0.2, 0.95, 0.15, 0.35),
    7: (0.7, 0.95, 1.0, 0.85),
    8: (0.4, 0.8, 0.9, 0.6),
    9: (1.0, 1.0, 1.0, 1.0),
}
# Classes are continua, not points: each field lies somewhere on the line from its class towards a neighbouring
# class (sparse forest towards open forest, grassland towards cropland, wetland towards grassland...), between
# -CONTINUUM (away from it: denser forest, lusher grass) and +CONTINUUM, so class medians stay where calibrated.
NEIGHBOUR: dict[int, int] = {1: 2, 2: 6, 3: 8, 4: 5, 5: 2, 6: 2, 7: 8, 8: 3, 9: 1}
CONTINUUM = 0.65
GREENNESS_JITTER = 0.8  # field-to-field greenness span around the class's seasonal value
FIELD_SIGMA = 0.18  # lognormal brightness sd between fields (hundreds of metres)
PIXEL_SIGMA = 0.12  # ... and between neighbouring pixels
MIXING = 0.45  # share of each pixel's reflectance that comes from its 3 x 3 neighbourhood (mixed pixels)

Noise = Callable[[np.ndarray, np.ndarray, float, int], np.ndarray]  # (x, y, scale_m, seed) -> [0, 1]


def class_spectrum(code: int, season: int, greenness_shift: float = 0.0) -> np.ndarray:
    """(12,) reflectance of class ``code`` in season index ``season`` (0 winter .. 3 autumn)."""
    g = float(np.clip(GREENNESS[code][season] + greenness_shift, 0, 1))
    return g * np.asarray(PEAK[code], np.float32) + (1 - g) * np.asarray(DORMANT[code], np.float32)


def surface(
    x: np.ndarray,
    y: np.ndarray,
    classes: np.ndarray,
    season: int,
    bands: Sequence[int],
    seed: int,
    noise: Noise,
) -> tuple[np.ndarray, np.ndarray]:
    """Cloud-free reflectance (len(bands), H, W) float32 of one season and its clear-sky SCL (H, W) uint8.

    ``x``/``y`` are metric coordinates of the pixel centres, ``classes`` the true class codes, ``bands``
    indexes into :data:`REFLECTANCE_BANDS`, ``noise`` a smooth value-noise field in [0, 1] (deterministic).
    """
    codes = sorted(PEAK)
    shift = GREENNESS_JITTER * (noise(x, y, 250.0, seed + 20 + season) - 0.5)
    g = np.choose(classes.astype(np.int64) - 1, [np.float32(GREENNESS[c][season]) for c in codes])
    g = np.clip(g + shift, 0, 1).astype(np.float32)
    peak = np.asarray([PEAK[c] for c in codes], np.float32)
    dormant = np.asarray([DORMANT[c] for c in codes], np.float32)
    idx = classes.astype(np.int64) - 1
    water = classes == 4
    z_field = (noise(x, y, 400.0, seed + 60) - 0.5) / 0.29  # ~unit variance, correlated over fields
    rng = np.random.default_rng(seed + 70 + season)
    z_pixel = rng.standard_normal(classes.shape).astype(np.float32)
    brightness = np.exp(FIELD_SIGMA * z_field + PIXEL_SIGMA * z_pixel).astype(np.float32)
    brightness[water] = np.exp(0.5 * np.log(brightness[water]))  # water varies less
    nidx = np.asarray([NEIGHBOUR[c] - 1 for c in codes])[idx]
    ng = np.choose(nidx, [np.float32(GREENNESS[c][season]) for c in codes])
    ng = np.clip(ng + shift, 0, 1).astype(np.float32)
    lean = (2 * CONTINUUM * (noise(x, y, 300.0, seed + 80) - 0.5)).astype(np.float32)
    lean[water | (classes == 9)] *= 0.3  # water and bare ground vary less along their neighbours
    every = list(range(len(REFLECTANCE_BANDS)))
    refl = np.empty((len(every), *classes.shape), np.float32)
    for b in every:
        own = g * peak[idx, b] + (1 - g) * dormant[idx, b]
        other = ng * peak[nidx, b] + (1 - ng) * dormant[nidx, b]
        refl[b] = np.maximum(own + lean * (other - own), 0.2 * own) * brightness
    refl = (1 - MIXING) * refl + MIXING * ndimage.uniform_filter(refl, size=(1, 3, 3), mode="nearest")
    red, nir = refl[REFLECTANCE_BANDS.index("B04")], refl[REFLECTANCE_BANDS.index("B8A")]
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    scl = np.where(water, SCL_WATER, np.where(ndvi > 0.4, SCL_VEGETATION, SCL_NOT_VEGETATED)).astype(np.uint8)
    return refl[list(bands)], scl
