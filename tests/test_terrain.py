"""Slope and aspect on analytic planes, and on the real Copernicus DEM of Sao Tome reprojected to UTM 32N."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.warp import transform_bounds
from terracover.terrain import reproject_dem, slope_aspect

COP_DEM = "rio_tiler_pds_s2l2a_29RKH/copernicus_dem_glo30/Copernicus_DSM_COG_10_N00_00_E006_00_DEM.tif"


def plane(east: float, north: float, res_x: float = 10.0, res_y: float = 10.0, shape=(9, 11)) -> np.ndarray:
    """z = east * x + north * y in metres on a north-up grid (row 0 is the northern edge)."""
    rows, cols = np.indices(shape, dtype=np.float64)
    x, y = cols * res_x, -rows * res_y
    return (east * x + north * y + 500.0).astype(np.float32)


@pytest.mark.parametrize(
    ("east", "north", "aspect"),
    [
        (0.1, 0.0, 270.0),  # rises eastwards: faces west
        (-0.1, 0.0, 90.0),
        (0.0, 0.1, 180.0),  # rises northwards: faces south
        (0.0, -0.1, 0.0),
        (0.1, 0.1, 225.0),  # rises to the north-east: faces south-west
        (-0.1, 0.1, 135.0),
    ],
)
@pytest.mark.parametrize(("res_x", "res_y"), [(10.0, 10.0), (10.0, 20.0)])
def test_inclined_plane(east: float, north: float, aspect: float, res_x: float, res_y: float) -> None:
    slope_deg, aspect_deg = slope_aspect(plane(east, north, res_x, res_y), res_x, res_y)
    inner = (slice(1, -1), slice(1, -1))
    assert slope_deg.dtype == aspect_deg.dtype == np.float32
    np.testing.assert_allclose(slope_deg[inner], math.degrees(math.atan(math.hypot(east, north))), atol=1e-3)
    err = (aspect_deg[inner] - aspect + 180.0) % 360.0 - 180.0  # 0 and 359.9999 are the same direction
    np.testing.assert_allclose(err, 0.0, atol=1e-3)
    assert ((aspect_deg[inner] >= 0) & (aspect_deg[inner] < 360)).all()


def test_five_point_seven_degrees() -> None:
    slope_deg, aspect_deg = slope_aspect(plane(0.1, 0.0), 10.0, 10.0)
    assert slope_deg[4, 5] == pytest.approx(5.7106, abs=1e-4) and aspect_deg[4, 5] == pytest.approx(270.0)


def test_flat_is_slope_zero_aspect_zero_and_border_is_nan() -> None:
    slope_deg, aspect_deg = slope_aspect(np.full((5, 6), 123.0, np.float32), 10.0, 10.0)
    assert (slope_deg[1:-1, 1:-1] == 0).all() and (aspect_deg[1:-1, 1:-1] == 0).all()
    for a in (slope_deg, aspect_deg):
        assert np.isnan(a[[0, -1], :]).all() and np.isnan(a[:, [0, -1]]).all()


def test_nan_reaches_its_neighbours_only() -> None:
    dem = plane(0.05, 0.02, shape=(9, 9))
    dem[4, 4] = np.nan
    slope_deg, aspect_deg = slope_aspect(dem, 10.0, 10.0)
    assert np.isnan(slope_deg[3:6, 3:6]).all() and np.isnan(aspect_deg[3:6, 3:6]).all()
    assert np.isfinite(slope_deg[1:-1, 1:-1]).sum() == 7 * 7 - 9


def test_tiny_dem_is_all_nan() -> None:
    slope_deg, aspect_deg = slope_aspect(np.zeros((2, 5), np.float32), 10.0, 10.0)
    assert np.isnan(slope_deg).all() and np.isnan(aspect_deg).all()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="positive"):
        slope_aspect(np.zeros((4, 4), np.float32), 10.0, -10.0)
    with pytest.raises(ValueError, match="one"):
        slope_aspect(np.zeros((1, 4, 4), np.float32), 10.0, 10.0)


def utm32_grid(west: float, south: float, east: float, north: float, res: float) -> tuple[Affine, tuple[int, int]]:
    left, bottom, right, top = transform_bounds(4326, 32632, west, south, east, north)
    x0, y0 = math.floor(left / res) * res, math.ceil(top / res) * res
    return Affine(res, 0, x0, 0, -res, y0), (math.ceil((y0 - bottom) / res), math.ceil((right - x0) / res))


@pytest.mark.realdata
def test_real_dem_of_sao_tome(shared_data: Path) -> None:
    path = shared_data / COP_DEM
    if not path.is_file():
        pytest.skip(f"{path} not found")
    transform, shape = utm32_grid(6.44, 0.01, 6.78, 0.42, 30.0)
    dem = reproject_dem(path, "EPSG:32632", transform, shape)
    assert dem.dtype == np.float32 and dem.shape == shape
    assert np.isfinite(dem).all()  # the grid lies inside the 1 x 1 degree source
    with rasterio.open(path) as src:
        source = src.read(1)
        peak_lon, peak_lat = src.xy(*np.unravel_index(source.argmax(), source.shape))
    px, py = Transformer.from_crs(4326, 32632, always_xy=True).transform(peak_lon, peak_lat)
    col, row = ~transform @ (px, py)
    assert dem[int(row), int(col)] == pytest.approx(source.max(), abs=10.0)  # Pico de Sao Tome, ~1976 m
    assert dem.max() <= source.max() + 1e-3  # bilinear never overshoots

    slope_deg, aspect_deg = slope_aspect(dem, 30.0, 30.0)
    land = (dem > 5)[1:-1, 1:-1]
    s, a = slope_deg[1:-1, 1:-1][land], aspect_deg[1:-1, 1:-1][land]
    assert 0.2 < land.mean() < 0.8
    assert np.isfinite(s).all() and np.isfinite(a).all()
    assert 5 < np.median(s) < 30 and np.percentile(s, 99) < 60 and s.max() < 85
    steep = a[s > 5]
    quadrants = np.histogram(steep, bins=4, range=(0, 360))[0] / steep.size
    assert (quadrants > 0.15).all()  # an island's slopes face every way
    sea = (dem < 1)[1:-1, 1:-1]
    assert np.median(slope_deg[1:-1, 1:-1][sea]) < 1


@pytest.mark.realdata
def test_reproject_dem_from_an_open_dataset_leaves_nan_outside(shared_data: Path) -> None:
    path = shared_data / COP_DEM
    if not path.is_file():
        pytest.skip(f"{path} not found")
    transform, shape = utm32_grid(6.5, -0.05, 6.6, 0.05, 100.0)  # straddles the tile's southern edge (0 N)
    with rasterio.open(path) as src:
        dem = reproject_dem(src, 32632, transform, shape)
    assert np.isnan(dem[-5:]).all() and np.isfinite(dem[:5]).all()
