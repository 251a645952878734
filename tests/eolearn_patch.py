"""The real eo-learn test patch (Slovenia, summer 2015) as the project's own pipeline sees it: scenes, the
cloud-masked composite, indices and terrain from terracover's code, and the real LULC labels mapped to our
classes. Shared by tests/test_realdata_eolearn.py and the real-label benchmark (benchmarks/bench_realdata.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from terracover.bands import SCL_CLOUD_HIGH, SCL_VEGETATION, SPECTRAL_BANDS, valid_scl_lut
from terracover.composite import composite_bands
from terracover.features import composite_to_values, compute_feature_stack
from terracover.indices import INDICES
from terracover.terrain import slope_aspect

SEASON = "summer"  # the five dates are 2015-07-11 .. 2015-09-09
OPTICAL = [b for b in SPECTRAL_BANDS if b not in ("AOT", "WVP")]  # L1C has no AOT/WVP
FEATURES = [f"{SEASON}_{b}" for b in OPTICAL] + [f"{SEASON}_{i.name}" for i in INDICES] + ["dem", "slope", "aspect"]
# eo-learn LULC codes -> terracover classes (classes.py): 1 cultivated, 2 forest, 3 grassland, 4 shrubland, 8 artificial
LULC_TO_CLASS = {1: 6, 2: 7, 3: 2, 4: 3, 8: 1}


def geotiffs(root: Path) -> Path:
    return root / "geotiff_derived"


def load_scenes(root: Path) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Dates in order, band names, (13, 5, H, W) uint16 DNs and (5, H, W) SCL made from the cloud masks."""
    tifs = sorted(geotiffs(root).glob("S2_L1C_*_13bands.tif"))
    dates = [t.name.split("_")[2] for t in tifs]
    values, scl = [], []
    bands: list[str] = []
    for day, tif in zip(dates, tifs, strict=True):
        with rasterio.open(tif) as src:
            values.append(src.read())
            bands = list(src.descriptions)
        with rasterio.open(geotiffs(root) / f"CLM_{day}.tif") as src:
            scl.append(np.where(src.read(1) == 1, SCL_CLOUD_HIGH, SCL_VEGETATION).astype(np.uint8))
    return dates, bands, np.stack(values, axis=1), np.stack(scl)


def terrain(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Real elevation, and slope and aspect from the project's terrain code (edge-padded: no NaN border)."""
    with rasterio.open(geotiffs(root) / "DEM.tif") as src:
        dem = src.read(1).astype(np.float32)
        res_x, res_y = abs(src.transform.a), abs(src.transform.e)
    slope, aspect = slope_aspect(np.pad(dem, 1, mode="edge"), res_x, res_y)
    return dem, slope[1:-1, 1:-1], aspect[1:-1, 1:-1]


def feature_stack(root: Path) -> np.ndarray:
    """(F, H, W) float32 stack of :data:`FEATURES`: the masked median, indices and terrain, as build_stack does."""
    _, bands, values, scl = load_scenes(root)
    optical = values[[bands.index(b) for b in OPTICAL]]
    median = composite_bands(np.ascontiguousarray(optical), scl, valid_scl_lut())
    refl = composite_to_values(dict(zip(OPTICAL, median, strict=True)))
    return compute_feature_stack({SEASON: refl}, *terrain(root), FEATURES)


def labels(root: Path) -> np.ndarray:
    """(H, W) terracover class codes of the real LULC raster (0 = no label)."""
    with rasterio.open(geotiffs(root) / "LULC.tif") as src:
        lulc = src.read(1)
    out = np.zeros(lulc.shape, dtype=np.int64)
    for code, cls in LULC_TO_CLASS.items():
        out[lulc == code] = cls
    return out


def pixel_table(root: Path) -> pd.DataFrame:
    """One row per labelled pixel with finite features: ``row``, ``col``, ``class_code`` and :data:`FEATURES`."""
    stack, y = feature_stack(root), labels(root)
    rows, cols = np.nonzero((y > 0) & np.isfinite(stack).all(axis=0))
    frame = pd.DataFrame({name: stack[k, rows, cols] for k, name in enumerate(FEATURES)})
    return frame.assign(row=rows, col=cols, class_code=y[rows, cols])
