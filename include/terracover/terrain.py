"""Terrain features from a DEM: reprojection onto a tile's grid, then slope and aspect (Horn 1981)."""

from __future__ import annotations

import os
from contextlib import ExitStack

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.io import DatasetReader
from rasterio.warp import reproject


def slope_aspect(dem: np.ndarray, res_x: float, res_y: float) -> tuple[np.ndarray, np.ndarray]:
    """Slope (degrees, 0-90) and aspect (degrees clockwise from north, [0, 360)) of a north-up DEM, float32.

    Horn's 3 x 3 finite differences, as gdaldem uses. Aspect is the direction the slope faces (downhill), so
    a surface rising eastwards has aspect 270 (west). Flat cells (zero gradient) get aspect 0, not NaN: the
    stack keeps NaN for "no data" only, and slope 0 tells flat from north-facing. The one-pixel border and
    cells that are NaN or have a NaN neighbour are NaN (pad the DEM by one pixel to get the border).
    ``res_x``/``res_y`` are positive pixel sizes in metres, e.g. ``abs(transform.a)``, ``abs(transform.e)``.
    """
    if dem.ndim != 2:
        raise ValueError(f"dem must be one (rows, cols) band, got shape {dem.shape}")
    if not (res_x > 0 and res_y > 0):
        raise ValueError(f"pixel sizes must be positive, got res_x={res_x}, res_y={res_y}: pass abs() of them")
    slope = np.full(dem.shape, np.nan, dtype=np.float32)
    aspect = np.full(dem.shape, np.nan, dtype=np.float32)
    if min(dem.shape) < 3:
        return slope, aspect
    z = np.asarray(dem, dtype=np.float64)
    nw, n, ne = z[:-2, :-2], z[:-2, 1:-1], z[:-2, 2:]
    w, e = z[1:-1, :-2], z[1:-1, 2:]
    sw, s, se = z[2:, :-2], z[2:, 1:-1], z[2:, 2:]
    dz_east = ((ne + 2 * e + se) - (nw + 2 * w + sw)) / (8 * res_x)
    dz_south = ((sw + 2 * s + se) - (nw + 2 * n + ne)) / (8 * res_y)  # rows run north to south
    slope[1:-1, 1:-1] = np.degrees(np.arctan(np.hypot(dz_east, dz_south)))
    # downhill is minus the gradient: (east, north) = (-dz_east, +dz_south); azimuth = atan2(east, north)
    downhill = np.degrees(np.arctan2(-dz_east, dz_south)).astype(np.float32) % np.float32(360)
    downhill[(downhill >= 360) | ((dz_east == 0) & (dz_south == 0))] = 0  # float32 rounding of 359.99999...
    aspect[1:-1, 1:-1] = downhill
    nodata = np.isnan(z)  # Horn's stencil skips the centre cell: a hole would get its neighbours' slope
    slope[nodata] = aspect[nodata] = np.nan
    return slope, aspect


def reproject_dem(
    src: str | os.PathLike[str] | DatasetReader,
    dst_crs: CRS | str | int,
    dst_transform: Affine,
    dst_shape: tuple[int, int],
) -> np.ndarray:
    """A DEM's first band resampled bilinearly onto a grid, float32, NaN where the source has no data.

    Bilinear, not nearest: slope is a derivative, and nearest neighbour turns a 30 m DEM sampled at 10 m into
    terraces whose steps show up as false slopes.
    """
    out = np.full(dst_shape, np.nan, dtype=np.float32)
    crs = CRS.from_epsg(dst_crs) if isinstance(dst_crs, int) else CRS.from_user_input(dst_crs)
    with ExitStack() as stack:
        ds = stack.enter_context(rasterio.open(src)) if isinstance(src, str | os.PathLike) else src
        reproject(
            rasterio.band(ds, 1),
            out,
            src_nodata=ds.nodata,
            dst_transform=dst_transform,
            dst_crs=crs,
            dst_nodata=np.nan,
            resampling=Resampling.bilinear,
        )
    return out
