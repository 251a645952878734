"""The offline stand-in for the public catalogs: Sentinel-2 L2A-like scenes, a DEM and validated labels.

For a lon/lat region and a year it writes, per MGRS tile the region touches, scenes shaped like Earth Search's
``sentinel-2-l2a`` items (every band a COG at its native 10/20/60 m resolution on the tile's grid, an SCL
band with clouds, cloud shadows, thin cirrus and snow), a GLO-30-like DEM in EPSG:4326, and label points.
The land cover underneath is a deterministic function of position (and, for crop rotation, of the year),
evaluated in one lon/lat frame so tiles and UTM zones agree at their seams. Spectra are
:mod:`terracover.spectra`'s: per-class Sentinel-2 L2A surface reflectance calibrated on the real samples in
``../shared/data``, seasonal phenology, within-class variability and mixed pixels, so classes overlap the way
real ones do. It is a stand-in, not a replacement for the real-data tests (``../shared/data``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pystac
from affine import Affine
from numba import njit
from pyproj import Transformer
from scipy import ndimage
from shapely.geometry import box, mapping
from shapely.geometry.base import BaseGeometry

from terracover import grid, spectra
from terracover.bands import BANDS, SCL, SPECTRAL_BANDS
from terracover.classes import CLASS_CODES
from terracover.cog import write_cog
from terracover.features import SEASONS
from terracover.keys import label_key

log = logging.getLogger(__name__)

_REFL_BAND_SPECS = [b for b in BANDS if b.is_reflectance]
_SCENE_BANDS = (*SPECTRAL_BANDS, SCL.name)
# Scenes are written once and read once (by ingestion): zstd level 1 without a predictor writes ~7x faster than
# the stacks' level 9 with one, for ~13 % more bytes (sensor noise leaves little to compress), single-threaded
# (many small rasters, not one big one). The pixels are the same whatever the compression.
_SCENE_ZSTD_LEVEL = 1


@dataclass(frozen=True)
class LandChange:
    """A declared land-cover change: from ``year`` on, the lon/lat box ``bbox`` is class ``to_class``.

    Deterministic and known in advance, so tests and the demo can check that change detection finds it."""

    bbox: tuple[float, float, float, float]
    to_class: int
    year: int

    @classmethod
    def parse(cls, text: str) -> LandChange:
        """``"W,S,E,N,CLASS,YEAR"`` (the ``--land-change`` option)."""
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 6:
            raise ValueError(f"--land-change wants W,S,E,N,CLASS,YEAR (got {text!r})")
        w, s, e, n = (float(p) for p in parts[:4])
        code, year = int(parts[4]), int(parts[5])
        if code not in CLASS_CODES:
            raise ValueError(f"--land-change class {code} is not one of {CLASS_CODES}")
        return cls((w, s, e, n), code, year)


@dataclass
class SimulationConfig:
    """What to simulate. The defaults are a realistic archive: every Sentinel-2 A+B overpass of the year (5-day
    revisit), clouds from ``climate``, scenes above ``max_cloud_cover`` dropped as ingestion drops them.
    ``dates_per_season`` makes a thin archive instead (that many kept overpasses per season: fast tests)."""

    region_bbox: tuple[float, float, float, float]
    year: int
    dates_per_season: int | None = None
    seed: int = 42
    climate: str | Sequence[float] = "mediterranean"  # a CLOUD_CLIMATES name or 12 monthly mean covers (%)
    persistent_cloud: float = 0.03  # share of the land under persistent cloud (cloudy on most days)
    max_cloud_cover: float = 80.0  # the ingestion's scene filter (settings.max_cloud_cover)
    label_points: int = 900
    label_noise: float = 0.02
    subtile_size: int = 1098  # scenes cover the region snapped out to whole subtiles, like ingestion reads
    land_changes: tuple[LandChange, ...] = ()

    def __post_init__(self) -> None:
        monthly_cloud_cover(self.climate)
        if self.dates_per_season is not None and self.dates_per_season < 1:
            raise ValueError(
                f"dates_per_season must be at least 1 (or None for every overpass), got {self.dates_per_season}"
            )
        if not 0 <= self.persistent_cloud < 1:
            raise ValueError(f"persistent_cloud is a share of the area in [0, 1), got {self.persistent_cloud}")


@dataclass
class SimulatedArchive:
    scene_items: list[pystac.Item] = field(default_factory=list)
    dem_items: list[pystac.Item] = field(default_factory=list)
    labels: pd.DataFrame = field(default_factory=pd.DataFrame)
    plans: list[TilePlan] = field(default_factory=list)


# --- deterministic value noise in a common metric frame ------------------------------------------------------


def _hash01(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """A uniform [0, 1) value per integer lattice point (splitmix-style integer hash, vectorised)."""
    h = (ix.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ (iy.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F))
    h ^= np.uint64(seed * 0x165667B19E3779F9 & 0xFFFFFFFFFFFFFFFF)
    h ^= h >> np.uint64(31)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def value_noise(x: np.ndarray, y: np.ndarray, scale_m: float, seed: int) -> np.ndarray:
    """Smooth noise in [0, 1] of metric coordinates with features about ``scale_m`` across."""
    gx, gy = x / scale_m, y / scale_m
    x0, y0 = np.floor(gx), np.floor(gy)
    fx, fy = gx - x0, gy - y0
    sx, sy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    ix, iy = x0.astype(np.int64) + (1 << 30), y0.astype(np.int64) + (1 << 30)
    v00, v10 = _hash01(ix, iy, seed), _hash01(ix + 1, iy, seed)
    v01, v11 = _hash01(ix, iy + 1, seed), _hash01(ix + 1, iy + 1, seed)
    return (v00 * (1 - sx) + v10 * sx) * (1 - sy) + (v01 * (1 - sx) + v11 * sx) * sy


def _fbm(x: np.ndarray, y: np.ndarray, scale_m: float, seed: int, octaves: int = 3) -> np.ndarray:
    total, amp, norm = np.zeros_like(x), 1.0, 0.0
    for o in range(octaves):
        total += amp * value_noise(x, y, scale_m / 2**o, seed + 101 * o)
        norm += amp
        amp *= 0.5
    return total / norm


def metric_xy(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A global equirectangular frame in metres: the same world position gives the same value in any zone."""
    return lon * 111_320.0 * np.cos(np.deg2rad(40.0)), lat * 110_540.0


def _uniform(noise: np.ndarray) -> np.ndarray:
    """Map value noise onto [0, 1] uniformly (by its own quantiles), so a threshold is an area fraction."""
    return np.interp(noise, _NOISE_QUANTILES, np.linspace(0, 1, _NOISE_QUANTILES.size))


def _noise_quantiles() -> np.ndarray:
    rng = np.random.default_rng(0)
    sample = value_noise(rng.uniform(0, 1e6, 200_000), rng.uniform(0, 1e6, 200_000), 1000.0, 1)
    return np.quantile(sample, np.linspace(0, 1, 101))


_NOISE_QUANTILES = _noise_quantiles()


def true_classes(
    lon: np.ndarray, lat: np.ndarray, year: int, seed: int = 42, changes: Sequence[LandChange] = ()
) -> np.ndarray:
    """The simulated land cover (class codes 1-9) at lon/lat points.

    Layers of uniform noise at a few hundred metres to a kilometre, so every class appears in a region of a
    few kilometres; later layers win (water over everything, then built-up, forests...). Declared
    ``changes`` in force in ``year`` win over all of them.
    """
    x, y = metric_xy(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    wet = _uniform(value_noise(x, y, 700, seed + 1))
    urban = _uniform(value_noise(x, y, 600, seed + 2))
    forest = _uniform(value_noise(x, y, 800, seed + 3))
    shrub = _uniform(value_noise(x, y, 500, seed + 4))
    bare = _uniform(value_noise(x, y, 400, seed + 5))
    farm = _uniform(value_noise(x, y, 1000, seed + 8))
    # rectangular parcels ~250 x 180 m, each a crop field or a meadow, rotating every few years
    px, py = np.floor(x / 250.0).astype(np.int64), np.floor(y / 180.0).astype(np.int64)
    parcel = _hash01(px + (1 << 30), py + (1 << 30), seed + 6)
    rotation = _hash01(px + (1 << 30), py + (1 << 30), seed + 7 + year) < 0.08  # ~8% change class this year

    cls = np.full(x.shape, 2, dtype=np.uint8)  # herbaceous vegetation
    field_is_crop = (parcel < 0.6) ^ rotation
    cls[(farm > 0.5) & field_is_crop] = 6
    cls[shrub > 0.85] = 3
    cls[bare > 0.93] = 9
    cls[forest > 0.8] = 8
    cls[forest > 0.88] = 7
    cls[urban > 0.9] = 1
    cls[wet < 0.1] = 5
    cls[wet < 0.06] = 4
    lon_a, lat_a = np.asarray(lon), np.asarray(lat)
    for ch in changes:
        if year >= ch.year:
            w, s, e, n = ch.bbox
            cls[(lon_a >= w) & (lon_a <= e) & (lat_a >= s) & (lat_a <= n)] = ch.to_class
    return cls


def elevation(lon: np.ndarray, lat: np.ndarray, seed: int = 42) -> np.ndarray:
    """Simulated terrain in metres: hills away from water, flat near it."""
    x, y = metric_xy(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    wet = _uniform(value_noise(x, y, 700, seed + 1))
    hills = _fbm(x, y, 3000, seed + 11, octaves=4)
    return (20 + 400 * np.clip(wet - 0.1, 0, None) * hills + 40 * value_noise(x, y, 400, seed + 12)).astype(np.float32)


# --- the acquisition plan: Sentinel-2 A+B orbits, then the weather -------------------------------------------

RELATIVE_ORBITS = 143  # per 10-day repeat cycle of one satellite
ORBITS_PER_DAY = 14.3
REVISIT_DAYS = 5  # Sentinel-2A and 2B fly 180 degrees apart on the same tracks: a track every 5 days
_TRACK_SPACING_DEG = 360.0 / RELATIVE_ORBITS  # neighbouring tracks at the equator
_NEXT_TRACK_WEST = 43  # each orbit lands 10 tracks west of the last, so the western neighbour is orbit R+43
_EPOCH = date(2017, 1, 1)  # a day Sentinel-2A flew relative orbit 1: the model's epoch, not the real ephemeris
_REFERENCE_TRACK = (0.06, 51)  # (longitude, relative orbit) of one track: R051 over the demo region


def relative_orbit(lon: float) -> int:
    """The relative orbit whose (descending, nadir) track runs nearest ``lon``.

    Tracks are 360/143 degrees apart and consecutive orbits land 10 tracks west of each other, so the track
    east of orbit R is flown by R-43, three days earlier: neighbouring tiles differ consistently, as in reality.
    A tile in the ~30 km side-lap of two tracks is given its nearest one only.
    """
    tracks_east = round((lon - _REFERENCE_TRACK[0]) / _TRACK_SPACING_DEG)
    return (_REFERENCE_TRACK[1] - 1 - _NEXT_TRACK_WEST * tracks_east) % RELATIVE_ORBITS + 1


@dataclass(frozen=True)
class Acquisition:
    """One overpass of a tile: the day, which satellite, and its relative orbit."""

    day: date
    platform: str
    relative_orbit: int


def acquisitions(t: grid.Tile, year: int) -> list[Acquisition]:
    """Every overpass of tile ``t`` within the seasons of ``year`` (winter starts the December before).

    Sentinel-2A flies relative orbit R on day (R-1)/14.3 of every 10-day cycle, Sentinel-2B five days later:
    one tile is seen every 5 days, ~73 times a stack year, before any cloud filter.
    """
    orbit = relative_orbit(float(t.footprint_wgs84.centroid.x))
    first = _EPOCH.toordinal() + int((orbit - 1) / ORBITS_PER_DAY)
    start, _ = SEASONS[0].window(year)
    _, end = SEASONS[-1].window(year)
    k = -((first - start.toordinal()) // REVISIT_DAYS)  # first overpass on or after the season start
    out = []
    for day in range(first + k * REVISIT_DAYS, end.toordinal() + 1, REVISIT_DAYS):
        platform = "sentinel-2a" if ((day - first) // REVISIT_DAYS) % 2 == 0 else "sentinel-2b"
        out.append(Acquisition(date.fromordinal(day), platform, orbit))
    return out


# Mean scene cloud cover (%) per calendar month, January..December. Cloudier winters everywhere; the levels
# follow the usual ranking of Sentinel-2 scene statistics (dry Mediterranean summers, overcast Atlantic winters).
CLOUD_CLIMATES: dict[str, tuple[float, ...]] = {
    "mediterranean": (42, 40, 36, 34, 28, 16, 9, 12, 24, 34, 40, 44),
    "temperate": (76, 70, 62, 55, 52, 48, 45, 44, 50, 62, 74, 78),
    "atlantic": (82, 77, 70, 62, 58, 56, 55, 55, 60, 70, 79, 84),
    "arid": (18, 16, 14, 12, 8, 4, 3, 4, 6, 10, 14, 18),
}
_CLOUD_COVER_SPREAD = 1.0  # Beta(a, b) with a + b = 1: U-shaped, many clear and many overcast scenes, as observed


def monthly_cloud_cover(climate: str | Sequence[float]) -> tuple[float, ...]:
    """The 12 monthly means (%) of a named climate, or of 12 numbers given directly."""
    if isinstance(climate, str):
        if climate not in CLOUD_CLIMATES:
            raise ValueError(f"unknown cloud climate {climate!r}; choose one of {sorted(CLOUD_CLIMATES)} or 12 numbers")
        return CLOUD_CLIMATES[climate]
    means = tuple(float(v) for v in climate)
    if len(means) != 12 or not all(0 <= v <= 100 for v in means):
        raise ValueError(f"a cloud climate is 12 monthly mean cover percentages in [0, 100], got {climate!r}")
    return means


def weather_cover(day: date, climate: str | Sequence[float], seed: int) -> float:
    """The day's cloud amount (fraction of the sky) over the region, drawn from the month's climatology.

    A function of the day only: tiles seen on the same day share the weather (the cloud field is a function of
    position), tiles on other orbits see other days.
    """
    mean = min(max(monthly_cloud_cover(climate)[day.month - 1] / 100.0, 0.005), 0.995)
    rng = np.random.default_rng([seed, day.toordinal()])
    return float(rng.beta(mean * _CLOUD_COVER_SPREAD, (1 - mean) * _CLOUD_COVER_SPREAD))


# --- scenes --------------------------------------------------------------------------------------------------

_CLOUD_SCALE_M = 1800.0
_SHADOW_OFFSET_M = (350.0, -250.0)  # sun from the south-west: shadows fall north-east of clouds
_PERSISTENT_BOOST = 0.35  # added to the cloud field where cloud persists (relief, coast): cloudy most days


def _fbm_quantiles() -> np.ndarray:
    """Quantiles of the cloud field's distribution, so a wanted cover maps onto a threshold without sorting."""
    rng = np.random.default_rng(1)
    sample = _fbm(rng.uniform(0, 1e7, 100_000), rng.uniform(0, 1e7, 100_000), _CLOUD_SCALE_M, 3)
    return np.quantile(sample, np.linspace(0, 1, 1001))


_FBM_QUANTILES = _fbm_quantiles()


def _lonlat_grid(t: grid.Tile, bounds: tuple[float, float, float, float], res: int) -> tuple[np.ndarray, np.ndarray]:
    xs = np.arange(bounds[0] + res / 2, bounds[2], res)
    ys = np.arange(bounds[3] - res / 2, bounds[1], -res)
    xx, yy = np.meshgrid(xs, ys)
    lon, lat = Transformer.from_crs(t.epsg, 4326, always_xy=True).transform(xx, yy)
    return np.asarray(lon), np.asarray(lat)


def _season_index(day: date, year: int) -> int:
    for i, season in enumerate(SEASONS):
        start, end = season.window(year)
        if start <= day <= end:
            return i
    raise ValueError(f"{day} is outside the seasons of {year}")


def _surface(
    lon: np.ndarray, lat: np.ndarray, classes: np.ndarray, season: int, bands: Sequence[int], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cloud-free reflectance (len(bands), H, W) of one season and its clear-sky SCL (H, W).

    The spectra, phenology, within-class variability and mixed pixels are :mod:`terracover.spectra`'s.
    Computed once per tile, resolution and season and shared by every date of the season (dates differ by
    their noise and their clouds only).
    """
    x, y = metric_xy(lon, lat)
    return spectra.surface(x, y, classes, season, bands, seed, value_noise)


@dataclass
class _CloudMasks:
    """One date's cloud, shadow and cirrus masks at 20 m (SCL's resolution); other resolutions derive from it."""

    dense: np.ndarray
    medium: np.ndarray
    shadow: np.ndarray
    cirrus: np.ndarray

    @property
    def cover(self) -> float:
        """The scene's eo:cloud_cover (%): SCL cloud medium + high + thin cirrus, as Sen2Cor counts it."""
        return 100.0 * float((self.dense | self.medium | self.cirrus).mean())

    def codes(self) -> np.ndarray:
        """The four masks as one (H, W) uint8 at 20 m (a :data:`_SKY` code per pixel): what rendering reads."""
        code = np.zeros(self.dense.shape, np.uint8)
        code[self.cirrus] = _SKY["cirrus"]
        code[self.shadow] = _SKY["shadow"]
        code[self.medium] = _SKY["medium"]
        code[self.dense] = _SKY["dense"]
        return code


# Sky codes of a pixel on one date (the masks are disjoint), and the SCL class each one writes.
_SKY = {"clear": 0, "cirrus": 1, "shadow": 2, "medium": 3, "dense": 4}
_SKY_SCL = np.array([0, 10, 3, 8, 9], np.uint8)  # SCL of each code (0: keep the clear-sky SCL)


def _sky_at(codes20: np.ndarray, res: int) -> tuple[np.ndarray, int]:
    """A date's 20 m sky codes for a ``res`` grid of the same bounds, and the kernel's upsampling factor."""
    if res == 10:
        return codes20, 2  # each 20 m pixel covers 2 x 2 pixels at 10 m: the kernel indexes [i // 2, j // 2]
    if res == 20:
        return codes20, 1
    if res == 60:
        return np.ascontiguousarray(codes20[1::3, 1::3]), 1  # the 20 m pixel at each 60 m pixel's centre
    raise ValueError(f"no cloud masks at {res} m")


@dataclass
class _TileFrame:
    """What never changes between the dates of one tile: grids, classes, seasonal surfaces, static fields."""

    bounds: tuple[float, float, float, float]
    lonlat: dict[int, tuple[np.ndarray, np.ndarray]]
    classes: dict[int, np.ndarray]
    cloud_xy: tuple[np.ndarray, np.ndarray]  # 60 m metric coordinates the cloud field is evaluated on
    persistence: np.ndarray  # 60 m: how much the cloud field is raised where cloud persists
    cloud_brightness: dict[int, np.ndarray]
    atmosphere: np.ndarray  # 20 m: static spatial pattern of aerosol and water vapour
    footprint: BaseGeometry  # the scenes' lon/lat footprint, the same for every date
    draw_seed: tuple[int, int]  # the tile's pool of sensor-noise draws
    surfaces: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    draws: dict[int, np.ndarray] = field(default_factory=dict)

    def surface(self, res: int, season: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        if (res, season) not in self.surfaces:
            lon, lat = self.lonlat[res]
            bands = [i for i, b in enumerate(_REFL_BAND_SPECS) if b.resolution_m == res]
            self.surfaces[res, season] = _surface(lon, lat, self.classes[res], season, bands, seed)
        return self.surfaces[res, season]

    def sensor_draws(self, res: int, n_bands: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A date's standard normal draws at ``res``: (H, W) for the pixel gain, (bands, H, W) for the noise.

        They are a window, at an offset drawn from the date's ``rng``, into one pool of draws per tile and
        resolution twice the size a date needs: each date's draws are independent N(0, 1), as fresh ones would
        be, and each pixel's draws differ from date to date, but drawing them cost a third of a scene's render.
        """
        h, w = self.classes[res].shape
        need = (n_bands + 1) * h * w
        if res not in self.draws:
            pool_rng = np.random.default_rng([*self.draw_seed, res])
            self.draws[res] = pool_rng.standard_normal(2 * need, dtype=np.float32)
        start = int(rng.integers(0, self.draws[res].size - need + 1))
        window = self.draws[res][start : start + need]
        return window[: h * w].reshape(h, w), window[h * w :].reshape(n_bands, h, w)


def _tile_frame(t: grid.Tile, bounds: tuple[float, float, float, float], cfg: SimulationConfig) -> _TileFrame:
    lonlat = {res: _lonlat_grid(t, bounds, res) for res in (10, 20, 60)}
    classes = {res: true_classes(*lonlat[res], cfg.year, cfg.seed, cfg.land_changes) for res in lonlat}
    x60, y60 = metric_xy(*lonlat[60])
    area = cfg.persistent_cloud
    if area > 0:
        u = _uniform(value_noise(x60, y60, 1500, cfg.seed + 40))
        persistence = _PERSISTENT_BOOST * np.clip((u - (1 - area)) / (0.5 * area), 0, 1)
    else:
        persistence = np.zeros_like(x60)
    brightness = {}
    for res in (10, 20, 60):
        x, y = metric_xy(*lonlat[res])
        brightness[res] = (0.35 + 0.25 * value_noise(x, y, 200, cfg.seed + 30)).astype(np.float32)
    atmosphere = value_noise(*lonlat[20], 0.2, cfg.seed + 50)
    footprint = grid.transform_xy(
        Transformer.from_crs(t.epsg, 4326, always_xy=True).transform, box(*bounds).segmentize(1000)
    )
    draw_seed = (cfg.seed, zlib.crc32(t.name.encode()))
    return _TileFrame(bounds, lonlat, classes, (x60, y60), persistence, brightness, atmosphere, footprint, draw_seed)


def _upsample3(field60: np.ndarray, shape20: tuple[int, int]) -> np.ndarray:
    """A 60 m field onto the 20 m grid of the same bounds, bilinear (pixel centres aligned)."""
    return ndimage.zoom(field60, 3, order=1, mode="nearest", grid_mode=True)[: shape20[0], : shape20[1]]


def _clouds(frame: _TileFrame, day: date, cfg: SimulationConfig) -> _CloudMasks:
    """The date's masks: a cloud field (a function of position and day) cut where the day's amount says."""
    key = int(day.strftime("%Y%m%d")) + cfg.seed
    amount = weather_cover(day, cfg.climate, cfg.seed)
    x, y = frame.cloud_xy
    shape20 = frame.classes[20].shape
    cut = float(np.interp(1 - amount, np.linspace(0, 1, _FBM_QUANTILES.size), _FBM_QUANTILES)) if amount > 0 else 2.0
    cloud = _upsample3(_fbm(x, y, _CLOUD_SCALE_M, key) + frame.persistence, shape20)
    sx, sy = _SHADOW_OFFSET_M
    shade = _upsample3(_fbm(x - sx, y - sy, _CLOUD_SCALE_M, key) + frame.persistence, shape20)
    dense = cloud > cut + 0.04
    medium = (cloud > cut) & ~dense
    shadow = (shade > cut) & ~(dense | medium)
    rng = np.random.default_rng(key)
    cirrus_cut = 0.75 + 0.25 * rng.random()  # thin cirrus on some days, none on most
    cirrus = _upsample3(value_noise(x, y, 3000, key + 5), shape20) > cirrus_cut
    cirrus &= ~(dense | medium | shadow)
    return _CloudMasks(dense, medium, shadow, cirrus)


def _observe(
    surface: np.ndarray,
    clear_scl: np.ndarray,
    sky20: np.ndarray,
    res: int,
    brightness: np.ndarray,
    gain_z: np.ndarray,
    noise_z: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """One date's (bands, H, W) uint16 DNs and (H, W) SCL: the season's surface, sensor noise (a per-pixel gain
    and per-band noise from the standard normal draws ``gain_z`` and ``noise_z``), then clouds.

    One pass of :func:`_observe_kernel`, in float32 in the order numpy's array operations would do it, so the DNs
    are those of the numpy formulation to the bit.
    """
    ramp = np.float32(0.05) / 12 * np.arange(surface.shape[0], dtype=np.float32)
    sky, up = _sky_at(sky20, res)
    dn = np.empty(surface.shape, np.uint16)
    scl = np.empty(clear_scl.shape, np.uint8)
    _observe_kernel(
        surface, gain_z, noise_z, sky, up, brightness, (1 + ramp).astype(np.float32), clear_scl, _SKY_SCL, dn, scl
    )
    return dn, scl


@njit(cache=True, nogil=True)
def _observe_kernel(
    surface: np.ndarray,
    gain_z: np.ndarray,
    noise_z: np.ndarray,
    sky: np.ndarray,
    up: int,
    brightness: np.ndarray,
    cloud_ramp: np.ndarray,
    clear_scl: np.ndarray,
    sky_scl: np.ndarray,
    dn: np.ndarray,
    scl: np.ndarray,
) -> None:
    """Per pixel and band: ``surface * (1 + .04 z) + .004 z'``, +.05 under cirrus, x.35 in shadow, the cloud's
    brightness under cloud; clipped to [.0001, 1.5] and scaled to DNs (x10000, rounded half to even, >= 1)."""
    n_bands, height, width = surface.shape
    f32 = np.float32
    for i in range(height):
        for j in range(width):
            code = sky[i // up, j // up]
            gain = f32(1) + f32(0.04) * gain_z[i, j]
            scl[i, j] = clear_scl[i, j] if code == 0 else sky_scl[code]
            for b in range(n_bands):
                r = surface[b, i, j] * gain + f32(0.004) * noise_z[b, i, j]
                if code == 1:
                    r = r + f32(0.05)
                elif code == 2:
                    r = r * f32(0.35)
                elif code >= 3:
                    r = brightness[i, j] * cloud_ramp[b]
                r = min(max(r, f32(0.0001)), f32(1.5))
                dn[b, i, j] = np.uint16(max(np.rint(r * f32(10000)), f32(1)))


def _scene_item(
    t: grid.Tile,
    acq: Acquisition,
    bounds: tuple[float, float, float, float],
    footprint: BaseGeometry,
    hrefs: dict[str, str],
    cloud_cover: float,
) -> pystac.Item:
    props = {
        "platform": acq.platform,
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "eo:cloud_cover": round(cloud_cover, 3),
        "sat:relative_orbit": acq.relative_orbit,
        "proj:epsg": t.epsg,
        "mgrs:utm_zone": t.zone,
        "mgrs:latitude_band": t.band,
        "mgrs:grid_square": t.name[3:],
        "grid:code": f"MGRS-{t.name}",
        # 02.14 predates BOA_ADD_OFFSET: the simulated DNs are reflectance x 10000 with no offset
        "s2:processing_baseline": "02.14",
        "terracover:simulated": True,
    }
    day = acq.day
    when = datetime(day.year, day.month, day.day, 10, 30, tzinfo=UTC)
    item = pystac.Item(
        id=f"S2{acq.platform[-1].upper()}_{t.name}_{day:%Y%m%d}_0_L2A",
        geometry=mapping(footprint),
        bbox=list(footprint.bounds),
        datetime=when,
        properties=props,
        collection="sentinel-2-l2a",
    )
    for band in (*BANDS, SCL):
        res = band.resolution_m
        item.add_asset(
            band.asset_key,
            pystac.Asset(
                href=hrefs[band.name],
                media_type=pystac.MediaType.COG,
                roles=["data"],
                extra_fields={
                    "gsd": res,
                    "proj:shape": [round((bounds[3] - bounds[1]) / res), round((bounds[2] - bounds[0]) / res)],
                    "proj:transform": [res, 0, bounds[0], 0, -res, bounds[3]],
                },
            ),
        )
    return item


@dataclass(frozen=True)
class TilePlan:
    """A tile's year of overpasses, each with its scene cloud cover, and the ones an ingestion would keep."""

    tile: str
    acquisitions: list[Acquisition]
    cloud_cover: list[float]
    kept: list[int]  # indexes into acquisitions

    def summary(self) -> dict[str, object]:
        return {
            "relative_orbit": self.acquisitions[0].relative_orbit if self.acquisitions else None,
            "acquisitions": len(self.acquisitions),
            "kept": len(self.kept),
            "mean_cloud_cover": round(float(np.mean(self.cloud_cover)), 1) if self.cloud_cover else None,
        }


def _thin(plan: list[int], days: list[date], year: int, per_season: int) -> list[int]:
    """``per_season`` of the kept overpasses of each season, spread evenly over it (a thin archive for tests)."""
    chosen: list[int] = []
    for s in range(len(SEASONS)):
        in_season = [i for i in plan if _season_index(days[i], year) == s]
        n = min(per_season, len(in_season))
        chosen += [in_season[int((k + 0.5) * len(in_season) / n)] for k in range(n)]
    return sorted(chosen)


def _plan_tile(t: grid.Tile, frame: _TileFrame, cfg: SimulationConfig) -> tuple[TilePlan, dict[int, np.ndarray]]:
    """The tile's plan and the 20 m sky codes (:meth:`_CloudMasks.codes`) of each kept overpass."""
    acqs = acquisitions(t, cfg.year)
    masks = [_clouds(frame, a.day, cfg) for a in acqs]
    covers = [m.cover for m in masks]
    kept = [i for i, c in enumerate(covers) if c <= cfg.max_cloud_cover]
    if cfg.dates_per_season is not None:
        kept = _thin(kept, [a.day for a in acqs], cfg.year, cfg.dates_per_season)
    return TilePlan(t.name, acqs, covers, kept), {i: masks[i].codes() for i in kept}


def _region_tiles(cfg: SimulationConfig) -> list[tuple[grid.Tile, tuple[float, float, float, float]]]:
    out = []
    for t in grid.tiles_for_geometry(box(*cfg.region_bbox)):
        bounds = grid.region_bounds(t.name, cfg.region_bbox, cfg.subtile_size)
        if bounds is not None:
            out.append((t, bounds))
    return out


def plan_scenes(cfg: SimulationConfig) -> list[TilePlan]:
    """Each tile's overpasses and their cloud cover, without rendering a scene (cheap: clouds at 60 m)."""
    return [_plan_tile(t, _tile_frame(t, bounds, cfg), cfg)[0] for t, bounds in _region_tiles(cfg)]


def simulate_scenes(cfg: SimulationConfig, out_dir: Path) -> tuple[list[pystac.Item], list[TilePlan]]:
    """Render the overpasses an ingestion would keep (cloud cover <= ``cfg.max_cloud_cover``) as COGs.

    Only the region's window of each tile is written (its subtiles, as ingestion reads them).
    """
    items: list[pystac.Item] = []
    plans: list[TilePlan] = []
    for t, bounds in _region_tiles(cfg):
        frame = _tile_frame(t, bounds, cfg)
        plan, skies = _plan_tile(t, frame, cfg)
        plans.append(plan)
        for i in plan.kept:
            acq = plan.acquisitions[i]
            season = _season_index(acq.day, cfg.year)
            folder = out_dir / str(cfg.year) / "scenes" / t.name / acq.day.isoformat()
            folder.mkdir(parents=True, exist_ok=True)
            hrefs: dict[str, str] = {}
            rng = np.random.default_rng([cfg.seed, acq.day.toordinal()])
            for res in (10, 20, 60):
                surface, clear_scl = frame.surface(res, season, cfg.seed)
                gain_z, noise_z = frame.sensor_draws(res, surface.shape[0], rng)
                dn, scl = _observe(surface, clear_scl, skies[i], res, frame.cloud_brightness[res], gain_z, noise_z)
                transform = Affine(res, 0, bounds[0], 0, -res, bounds[3])
                res_bands = [b for b in _REFL_BAND_SPECS if b.resolution_m == res]
                layers: dict[str, np.ndarray] = {b.name: dn[k] for k, b in enumerate(res_bands)}
                if res == SCL.resolution_m:
                    layers[SCL.name] = scl
                    level = float(rng.random())
                    layers["AOT"] = (120 + 60 * frame.atmosphere * (0.5 + level)).astype(np.uint16)
                    layers["WVP"] = (1500 + 1000 * frame.atmosphere * (0.5 + level)).astype(np.uint16)
                for name, data in layers.items():
                    path = folder / f"{name}.tif"
                    write_cog(
                        path, data, transform, t.epsg, nodata=0, descriptions=[name], overviews=False,
                        threads=1, level=_SCENE_ZSTD_LEVEL, predictor=False,
                    )  # fmt: skip
                    hrefs[name] = str(path.resolve())
            items.append(_scene_item(t, acq, bounds, frame.footprint, hrefs, plan.cloud_cover[i]))
            log.info("simulated %s %s (%.0f%% cloud)", t.name, acq.day, plan.cloud_cover[i])
    return items, plans


def simulate_dem(region_bbox: tuple[float, float, float, float], out_dir: Path, seed: int = 42) -> pystac.Item:
    """A GLO-30-like DEM (EPSG:4326, 1 arc-second) covering the region with a margin."""
    res = 1 / 3600
    w, s, e, n = region_bbox
    w, s = float(np.floor((w - 0.05) / res) * res), float(np.floor((s - 0.05) / res) * res)
    e, n = float(np.ceil((e + 0.05) / res) * res), float(np.ceil((n + 0.05) / res) * res)
    lons = np.arange(w + res / 2, e, res)
    lats = np.arange(n - res / 2, s, -res)
    lon, lat = np.meshgrid(lons, lats)
    dem = elevation(lon, lat, seed)
    path = out_dir / "dem" / "simulated_glo30_dem.tif"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_cog(path, dem, Affine(res, 0, w, 0, -res, n), 4326, nodata=-32767.0, descriptions=["elevation"])
    item = pystac.Item(
        id="simulated-glo30-dem",
        geometry=mapping(box(w, s, e, n)),
        bbox=[w, s, e, n],
        datetime=datetime(2021, 4, 22, tzinfo=UTC),
        properties={"terracover:simulated": True},
        collection="cop-dem-glo-30",
    )
    item.add_asset("data", pystac.Asset(href=str(path.resolve()), media_type=pystac.MediaType.COG, roles=["data"]))
    return item


def simulate_labels(cfg: SimulationConfig, n: int | None = None, id_prefix: str = "sim") -> pd.DataFrame:
    """Validated label points stratified over the classes, with a small labelling-error rate."""
    n = n or cfg.label_points
    rng = np.random.default_rng(cfg.seed * 7919 + cfg.year + len(id_prefix))
    w, s, e, nn = cfg.region_bbox
    cand_lon = rng.uniform(w, e, 40 * n)
    cand_lat = rng.uniform(s, nn, 40 * n)
    cls = true_classes(cand_lon, cand_lat, cfg.year, cfg.seed, cfg.land_changes)
    per_class = max(1, n // len(CLASS_CODES))
    picks = []
    for code in CLASS_CODES:
        idx = np.flatnonzero(cls == code)
        picks.append(rng.choice(idx, size=min(per_class, idx.size), replace=False))
    sel = np.sort(np.concatenate(picks))
    labels = cls[sel].astype(np.int64)
    flip = rng.random(sel.size) < cfg.label_noise
    labels[flip] = rng.choice(CLASS_CODES, size=int(flip.sum()))
    digest = hashlib.sha256(f"{id_prefix}{cfg.year}{cfg.seed}".encode()).hexdigest()[:6]
    return pd.DataFrame(
        {
            "point_id": [f"{id_prefix}-{cfg.year}-{digest}-{i:05d}" for i in range(sel.size)],
            "lon": cand_lon[sel],
            "lat": cand_lat[sel],
            "year": cfg.year,
            "class_code": labels,
            "validated": True,
            "source": "simulator",
        }
    )


def simulate_archive(cfg: SimulationConfig, out_dir: Path) -> SimulatedArchive:
    """Write one year of the simulated archive under ``out_dir`` (years accumulate) and return it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    scenes, plans = simulate_scenes(cfg, out_dir)
    dem = simulate_dem(cfg.region_bbox, out_dir, cfg.seed)
    labels = simulate_labels(cfg)
    items_dir = out_dir / "items"
    items_dir.mkdir(exist_ok=True)
    pystac.ItemCollection(scenes).save_object(str(items_dir / f"scenes-{cfg.year}.json"))
    pystac.ItemCollection([dem]).save_object(str(items_dir / "dem.json"))
    summary = {p.tile: p.summary() for p in plans}
    (items_dir / f"acquisitions-{cfg.year}.json").write_text(json.dumps(summary, indent=1) + "\n")
    labels.to_parquet(items_dir.parent / f"labels-{cfg.year}.parquet", index=False)
    return SimulatedArchive(scenes, [dem], labels, plans)


def load_archive(out_dir: Path) -> SimulatedArchive:
    """Everything simulated so far under ``out_dir`` (all years)."""
    items_dir = out_dir / "items"
    if not items_dir.is_dir():
        raise FileNotFoundError(f"no simulated archive at {out_dir}: run `python -m terracover.simulate` first")
    scenes = [i for p in sorted(items_dir.glob("scenes-*.json")) for i in pystac.ItemCollection.from_file(str(p))]
    dem = (
        list(pystac.ItemCollection.from_file(str(items_dir / "dem.json"))) if (items_dir / "dem.json").exists() else []
    )
    frames = [pd.read_parquet(p) for p in sorted(out_dir.glob("labels-*.parquet"))]
    return SimulatedArchive(scenes, dem, pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())


def main(argv: list[str] | None = None) -> None:
    """``python -m terracover.simulate --years 2023``: simulate into ``$TERRACOVER_HOME/archive`` and drop the
    year's validated labels into the store's ``labels/`` prefix (as a field campaign would)."""
    from terracover.settings import get_settings
    from terracover.store import open_store

    s = get_settings()
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--years", type=int, nargs="+", default=s.years)
    p.add_argument(
        "--dates-per-season",
        type=int,
        default=None,
        help="a thin archive: this many kept overpasses per season (default: every overpass, 5-day revisit)",
    )
    p.add_argument(
        "--climate",
        default="mediterranean",
        help=f"cloud climatology: one of {sorted(CLOUD_CLIMATES)} or 12 comma-separated monthly mean covers (%%)",
    )
    p.add_argument("--label-points", type=int, default=900)
    p.add_argument("--seed", type=int, default=s.random_seed)
    p.add_argument("--out", type=Path, default=s.home / "archive")
    p.add_argument("--no-labels", action="store_true", help="do not drop labels into the store")
    p.add_argument(
        "--land-change",
        type=LandChange.parse,
        action="append",
        default=[],
        metavar="W,S,E,N,CLASS,YEAR",
        help="from YEAR on, the lon/lat box is class CLASS (repeatable; write --land-change=W,... when W < 0)",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    climate: str | list[float] = args.climate
    if "," in args.climate:
        climate = [float(v) for v in args.climate.split(",")]
    try:
        monthly_cloud_cover(climate)
    except ValueError as e:
        p.error(str(e))
    store = open_store(s)
    for year in args.years:
        cfg = SimulationConfig(
            s.region_bbox,
            year,
            args.dates_per_season,
            args.seed,
            climate=climate,
            max_cloud_cover=s.max_cloud_cover,
            label_points=args.label_points,
            subtile_size=s.subtile_size,
            land_changes=tuple(args.land_change),
        )
        archive = simulate_archive(cfg, args.out)
        print(f"simulated {year}: {len(archive.scene_items)} scenes, {len(archive.labels)} labels -> {args.out}")
        for plan in archive.plans:
            print(
                f"  {plan.tile}: {len(plan.acquisitions)} overpasses (relative orbit"
                f" {plan.summary()['relative_orbit']}), {len(plan.kept)} kept at"
                f" eo:cloud_cover <= {cfg.max_cloud_cover:g}"
            )
        if not args.no_labels:
            key = label_key(f"simulated-{year}")
            with store.writer(key, suffix=".parquet") as path:
                archive.labels.to_parquet(path, index=False)
            print(f"labels for {year} -> {store.uri(key)}")
    print(json.dumps({"archive": str(args.out)}))


if __name__ == "__main__":
    main()
