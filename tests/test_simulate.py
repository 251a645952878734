"""The simulator: deterministic, native resolutions on the tile grid, realistic clouds, spectra and labels."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import rasterio
from terracover import grid
from terracover.bands import BAND_BY_ASSET
from terracover.classes import CLASS_CODES
from terracover.simulate import LandChange, SimulationConfig, load_archive, simulate_archive, true_classes

REGION = (-0.012, 39.950, 0.012, 39.962)  # crosses the UTM 30/31 boundary


@pytest.fixture(scope="module")
def archive_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("archive")
    simulate_archive(SimulationConfig(REGION, 2023, dates_per_season=1, subtile_size=366, label_points=270), out)
    return out


def _digest(path: str) -> str:
    with rasterio.open(path) as src:
        return hashlib.sha256(src.read().tobytes()).hexdigest()


def test_deterministic(archive_dir: Path, tmp_path: Path) -> None:
    again = simulate_archive(
        SimulationConfig(REGION, 2023, dates_per_season=1, subtile_size=366, label_points=270), tmp_path
    )
    first = load_archive(archive_dir)
    assert [i.id for i in again.scene_items] == [i.id for i in first.scene_items]
    for a, b in zip(again.scene_items[:2], first.scene_items[:2], strict=True):
        assert _digest(a.assets["scl"].href) == _digest(b.assets["scl"].href)
        assert _digest(a.assets["nir08"].href) == _digest(b.assets["nir08"].href)
    assert again.labels.equals(first.labels)


def test_bands_at_native_resolution_on_the_tile_grid(archive_dir: Path) -> None:
    items = load_archive(archive_dir).scene_items
    assert {i.properties["grid:code"][5:7] for i in items} == {"30", "31"}
    for item in items[:2]:
        t = grid.tile(item.properties["grid:code"].removeprefix("MGRS-"))
        bounds = None
        for key, asset in item.assets.items():
            band = BAND_BY_ASSET[key]
            with rasterio.open(asset.href) as src:
                assert src.res == (band.resolution_m, band.resolution_m), key
                assert src.crs.to_epsg() == t.epsg
                assert (src.transform.c - t.ulx) % 60 == 0 and (t.uly - src.transform.f) % 60 == 0
                bounds = bounds or src.bounds
                assert src.bounds == bounds, f"{key} does not share the scene's bounds"


def test_clouds_shadows_and_cover(archive_dir: Path) -> None:
    codes: set[int] = set()
    for item in load_archive(archive_dir).scene_items:
        with rasterio.open(item.assets["scl"].href) as src:
            scl = src.read(1)
        codes |= set(np.unique(scl).tolist())
        assert item.properties["eo:cloud_cover"] == pytest.approx(100 * np.isin(scl, (8, 9, 10)).mean(), abs=0.01)
    assert {3, 4, 5, 6, 8, 9, 10} <= codes


def test_spectra_are_plausible(archive_dir: Path) -> None:
    summer = next(i for i in load_archive(archive_dir).scene_items if i.datetime and i.datetime.month in (6, 7, 8))
    with (
        rasterio.open(summer.assets["red"].href) as r,
        rasterio.open(summer.assets["nir"].href) as n,
        rasterio.open(summer.assets["green"].href) as g,
    ):
        red, nir, green = (x.read(1).astype(float) for x in (r, n, g))
        xs, ys = r.xy(*np.indices(red.shape).reshape(2, -1))
        from pyproj import Transformer

        lon, lat = Transformer.from_crs(r.crs, 4326, always_xy=True).transform(xs, ys)
    with rasterio.open(summer.assets["scl"].href) as src:
        scl = np.repeat(np.repeat(src.read(1), 2, 0), 2, 1)
    cls = true_classes(np.asarray(lon), np.asarray(lat), 2023).reshape(red.shape)
    clear = np.isin(scl, (4, 5, 6))
    ndvi = (nir - red) / (nir + red)
    assert ndvi[clear & (cls == 7)].mean() > 0.5  # closed forest
    assert ndvi[clear & (cls == 4)].mean() < 0  # water
    assert (nir[clear & (cls == 4)] < green[clear & (cls == 4)]).mean() > 0.9


def test_labels_cover_every_class_and_match_the_truth(archive_dir: Path) -> None:
    labels = load_archive(archive_dir).labels
    assert set(labels.class_code) == set(CLASS_CODES)
    assert labels.lon.between(REGION[0], REGION[2]).all() and labels.lat.between(REGION[1], REGION[3]).all()
    truth = true_classes(labels.lon.to_numpy(), labels.lat.to_numpy(), 2023)
    agreement = (truth == labels.class_code.to_numpy()).mean()
    assert 0.95 < agreement < 1.0  # 2% label noise, some flips land on the true class
    assert labels.point_id.is_unique and labels.validated.all()


def test_declared_land_change_applies_from_its_year_inside_its_box_only() -> None:
    change = LandChange.parse("-0.010,39.952,-0.006,39.956,1,2024")
    rng = np.random.default_rng(3)
    lon, lat = rng.uniform(-0.012, 0.012, 4000), rng.uniform(39.950, 39.962, 4000)
    inside = (lon >= -0.010) & (lon <= -0.006) & (lat >= 39.952) & (lat <= 39.956)
    before = true_classes(lon, lat, 2023, changes=[change])
    assert (before == true_classes(lon, lat, 2023)).all()
    after = true_classes(lon, lat, 2024, changes=[change])
    assert (after[inside] == 1).all() and inside.any()
    assert (after[~inside] == true_classes(lon, lat, 2024)[~inside]).all()
    with pytest.raises(ValueError, match="W,S,E,N"):
        LandChange.parse("1,2,3")
    with pytest.raises(ValueError, match="class 12"):
        LandChange.parse("0,0,1,1,12,2024")
