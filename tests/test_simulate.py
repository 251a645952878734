"""The simulator: deterministic, native resolutions on the tile grid, realistic clouds, spectra and labels."""

from __future__ import annotations

import hashlib
import itertools
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import rasterio
from terracover import grid
from terracover.bands import BAND_BY_ASSET
from terracover.classes import CLASS_CODES
from terracover.simulate import (
    _SKY,
    LandChange,
    SimulationConfig,
    _observe,
    _region_tiles,
    _tile_frame,
    acquisitions,
    load_archive,
    plan_scenes,
    relative_orbit,
    simulate_archive,
    true_classes,
    weather_cover,
)

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


def test_five_day_revisit_with_orbit_consistent_dates() -> None:
    here, east = grid.tile("30SYK"), grid.tile("31SDE")  # ~2.5 degrees east: the next track
    for t in (here, east):
        acqs = acquisitions(t, 2023)
        gaps = {(b.day - a.day).days for a, b in itertools.pairwise(acqs)}
        assert gaps == {5} and 72 <= len(acqs) <= 74  # Sentinel-2 A+B: ~73 overpasses a stack year
        assert {a.platform for a in acqs[::2]} | {a.platform for a in acqs[1::2]} == {"sentinel-2a", "sentinel-2b"}
        assert len({a.platform for a in acqs[::2]}) == 1  # A and B alternate
    r_here, r_east = acquisitions(here, 2023)[0].relative_orbit, acquisitions(east, 2023)[0].relative_orbit
    assert (r_here - r_east) % 143 == 43  # the track east is flown 43 orbits (three days) earlier
    assert relative_orbit(0.06) == 51


def test_cloud_climatology_is_cloudier_in_winter_and_configurable() -> None:
    def mean_cover(climate: str, months: tuple[int, ...]) -> float:
        days = [date(2023, m, d) for m in months for d in range(1, 29)]
        return float(np.mean([weather_cover(d, climate, 42) for d in days]))

    assert mean_cover("mediterranean", (12, 1, 2)) > mean_cover("mediterranean", (6, 7, 8)) + 0.15
    assert mean_cover("temperate", (6, 7, 8)) > mean_cover("mediterranean", (6, 7, 8)) + 0.2
    with pytest.raises(ValueError, match="12 monthly"):
        SimulationConfig(REGION, 2023, climate=[50.0] * 11)


def test_scene_filter_and_thin_archive(archive_dir: Path) -> None:
    plans = plan_scenes(SimulationConfig(REGION, 2023, subtile_size=366, climate="temperate", max_cloud_cover=60))
    for plan in plans:
        assert len(plan.acquisitions) >= 72
        assert all(plan.cloud_cover[i] <= 60 for i in plan.kept)
        assert 0 < len(plan.kept) < len(plan.acquisitions)  # the filter drops the overcast scenes
    thin = load_archive(archive_dir).scene_items  # dates_per_season=1: one kept overpass per season and tile
    assert len(thin) == 2 * 4 and all(i.properties["eo:cloud_cover"] <= 80 for i in thin)
    assert {i.properties["sat:relative_orbit"] for i in thin} == {51}


def _observe_numpy(
    surface: np.ndarray,
    clear_scl: np.ndarray,
    sky: np.ndarray,
    brightness: np.ndarray,
    gain_z: np.ndarray,
    noise_z: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The rendering written with numpy arrays (how the simulator did it before its fused kernel)."""
    gain = 1 + 0.04 * gain_z
    refl = surface * gain + 0.004 * noise_z
    ramp = np.float32(0.05) / 12 * np.arange(surface.shape[0], dtype=np.float32)[:, None, None]
    refl = np.where(sky == _SKY["cirrus"], refl + np.float32(0.05), refl)
    refl = np.where(sky == _SKY["shadow"], refl * np.float32(0.35), refl)
    refl = np.where(sky >= _SKY["medium"], brightness * (1 + ramp), refl)
    scl = clear_scl.copy()
    for name, code in (("cirrus", 10), ("shadow", 3), ("medium", 8), ("dense", 9)):
        scl[sky == _SKY[name]] = code
    dn = np.clip(np.round(np.clip(refl, 0.0001, 1.5) * 10000), 1, 65535).astype(np.uint16)
    return dn, scl


@pytest.mark.parametrize("res", [10, 20, 60])
def test_the_rendering_kernel_gives_numpys_dns_to_the_bit(res: int) -> None:
    """The fused per-pixel kernel does numpy's float32 operations in numpy's order: same draws, same scene."""
    rng = np.random.default_rng(5)
    h20, w20 = 90, 120
    sky20 = rng.integers(0, 5, (h20, w20)).astype(np.uint8)
    shape = {10: (2 * h20, 2 * w20), 20: (h20, w20), 60: (h20 // 3, w20 // 3)}[res]
    sky = {10: np.repeat(np.repeat(sky20, 2, 0), 2, 1), 20: sky20, 60: sky20[1::3, 1::3]}[res]
    surface = (rng.random((4, *shape)) * 0.6).astype(np.float32)
    surface[0, :3] = 0.0  # dark enough to be clipped
    clear_scl = rng.integers(4, 7, shape).astype(np.uint8)
    brightness = (0.35 + 0.25 * rng.random(shape)).astype(np.float32)
    gain_z = rng.standard_normal(shape, dtype=np.float32)
    noise_z = rng.standard_normal((4, *shape), dtype=np.float32)
    got = _observe(surface, clear_scl, sky20, res, brightness, gain_z, noise_z)
    want = _observe_numpy(surface, clear_scl, sky, brightness, gain_z, noise_z)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_each_dates_sensor_draws_are_fresh_standard_normals() -> None:
    """Dates take their draws from one pool per tile: each date's are N(0, 1), and a pixel's differ by date."""
    cfg = SimulationConfig(REGION, 2023, dates_per_season=1, subtile_size=366)
    t, bounds = _region_tiles(cfg)[0]
    frame = _tile_frame(t, bounds, cfg)
    days = [np.random.default_rng([cfg.seed, day]) for day in range(738000, 738040)]
    gains = np.stack([frame.sensor_draws(10, 4, rng)[0] for rng in days])
    noise = frame.sensor_draws(10, 4, np.random.default_rng(1))[1]
    assert gains.shape[1:] == noise.shape[1:] == frame.classes[10].shape
    for z in (gains[0], noise):
        assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01
    per_pixel = gains.std(axis=0)  # across dates
    assert abs(float(np.median(per_pixel)) - 1) < 0.05
    assert abs(np.corrcoef(gains[0].ravel(), gains[1].ravel())[0, 1]) < 0.01
