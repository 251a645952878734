"""The offline stand-in for the public catalogs: Sentinel-2 L2A-like scenes, a DEM and validated labels.

For a lon/lat region and a year it writes, per MGRS tile the region touches, scenes shaped like Earth Search's
``sentinel-2-l2a`` items (every band a COG at its native 10/20/60 m resolution on the tile's grid, an SCL
band with clouds, cloud shadows, thin cirrus and snow), a GLO-30-like DEM in EPSG:4326, and label points.
The land cover underneath is a deterministic function of position (and, for crop rotation, of the year),
evaluated in one lon/lat frame so tiles and UTM zones agree at their seams. Spectra mix four endmembers
(vegetation, soil, water, urban) with per-class seasonal phenology, so classes are separable but overlap
the way real ones do. It is a stand-in, not a replacement for the real-data tests (``../shared/data``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pystac
from affine import Affine
from pyproj import Transformer
from shapely.geometry import box, mapping
from shapely.ops import transform as shp_transform

from terracover import grid
from terracover.bands import BANDS, SCL, SPECTRAL_BANDS
from terracover.classes import CLASS_CODES
from terracover.cog import write_cog
from terracover.features import SEASONS

log = logging.getLogger(__name__)

# Endmember reflectance for B01..B12 (the 12 reflectance bands, ESA order incl. B8A).
_REFL_BANDS = [b.name for b in BANDS if b.is_reflectance]
_ENDMEMBERS = {
    "veg": [0.03, 0.03, 0.07, 0.03, 0.10, 0.30, 0.38, 0.42, 0.44, 0.44, 0.20, 0.09],
    "soil": [0.10, 0.12, 0.16, 0.21, 0.24, 0.26, 0.28, 0.30, 0.31, 0.31, 0.38, 0.32],
    "water": [0.06, 0.07, 0.06, 0.04, 0.03, 0.02, 0.02, 0.015, 0.012, 0.01, 0.005, 0.003],
    "urban": [0.12, 0.13, 0.14, 0.16, 0.18, 0.19, 0.20, 0.21, 0.22, 0.22, 0.28, 0.25],
}
_EM = np.array([_ENDMEMBERS[k] for k in ("veg", "soil", "water", "urban")], dtype=np.float32)  # (4, 12)
# Per class and season (winter, spring, summer, autumn): vegetation fraction; other fractions per class.
_PHENOLOGY = {
    1: (0.15, 0.2, 0.15, 0.15),  # builtUp
    2: (0.5, 0.8, 0.3, 0.5),  # herbaceousVegetation
    3: (0.4, 0.5, 0.4, 0.4),  # shrubland
    4: (0.0, 0.02, 0.02, 0.0),  # water
    5: (0.45, 0.7, 0.65, 0.5),  # wetland
    6: (0.2, 0.9, 0.1, 0.3),  # cropland: green in spring, harvested in summer
    7: (0.85, 0.92, 0.92, 0.88),  # closedForest
    8: (0.55, 0.65, 0.6, 0.55),  # openForest
    9: (0.03, 0.05, 0.03, 0.03),  # bareSoil
}
_WATER_FRACTION = {4: 1.0, 5: 0.35}
_URBAN_FRACTION = {1: 0.85}
_SCENE_BANDS = (*SPECTRAL_BANDS, SCL.name)


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
    region_bbox: tuple[float, float, float, float]
    year: int
    dates_per_season: int = 3
    seed: int = 42
    cloud_fraction: float = 0.35
    label_points: int = 900
    label_noise: float = 0.02
    subtile_size: int = 1098  # scenes cover the region snapped out to whole subtiles, like ingestion reads
    land_changes: tuple[LandChange, ...] = ()


@dataclass
class SimulatedArchive:
    scene_items: list[pystac.Item] = field(default_factory=list)
    dem_items: list[pystac.Item] = field(default_factory=list)
    labels: pd.DataFrame = field(default_factory=pd.DataFrame)


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


# --- scenes --------------------------------------------------------------------------------------------------


def scene_dates(year: int, per_season: int, seed: int) -> list[date]:
    """``per_season`` acquisition dates spread over each season, jittered like real revisit gaps."""
    rng = np.random.default_rng(seed + year)
    days: list[date] = []
    for season in SEASONS:
        start, end = season.window(year)
        span = (end - start).days
        for k in range(per_season):
            offset = int((k + 0.5) * span / per_season + rng.integers(-4, 5))
            days.append(date.fromordinal(start.toordinal() + min(max(offset, 0), span)))
    return days


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


def _render(
    lon: np.ndarray,
    lat: np.ndarray,
    classes: np.ndarray,
    day: date,
    season: int,
    cfg: SimulationConfig,
    clouds: dict[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """(12, H, W) reflectance and (H, W) SCL for one date at one resolution."""
    x, y = metric_xy(lon, lat)
    veg = np.choose(classes.astype(np.int64) - 1, [np.float32(_PHENOLOGY[c][season]) for c in CLASS_CODES])
    # within-class variability: some fields greener than others, slowly varying in space and time
    veg = np.clip(veg * (0.8 + 0.4 * value_noise(x, y, 300, cfg.seed + 20 + season)), 0, 1).astype(np.float32)
    water = np.zeros_like(veg)
    urban = np.zeros_like(veg)
    for code, frac in _WATER_FRACTION.items():
        water[classes == code] = frac
    for code, frac in _URBAN_FRACTION.items():
        urban[classes == code] = frac
    veg = np.minimum(veg, 1 - water - urban)
    soil = np.clip(1 - veg - water - urban, 0, 1)
    fractions = np.stack([veg, soil, water, urban])  # (4, H, W)
    refl = np.einsum("ehw,eb->bhw", fractions, _EM)
    rng = np.random.default_rng(int(day.strftime("%Y%m%d")) + cfg.seed)
    refl *= 1 + rng.normal(0, 0.04, size=refl.shape[1:]).astype(np.float32)
    refl += rng.normal(0, 0.004, size=refl.shape).astype(np.float32)

    scl = np.where(classes == 4, 6, np.where(veg > 0.35, 4, 5)).astype(np.uint8)
    cirrus, medium, dense, shadow = clouds["cirrus"], clouds["medium"], clouds["dense"], clouds["shadow"]
    refl[:, cirrus] += 0.05
    scl[cirrus] = 10
    refl[:, shadow] *= 0.35
    scl[shadow] = 3
    cloud = medium | dense
    brightness = 0.35 + 0.25 * value_noise(x, y, 200, cfg.seed + 30)
    refl[:, cloud] = (brightness[cloud] * (1 + 0.05 * np.arange(12)[:, None] / 12)).astype(np.float32)
    scl[medium] = 8
    scl[dense] = 9
    return np.clip(refl, 0.0001, 1.5), scl


def _clouds(lon: np.ndarray, lat: np.ndarray, day: date, cfg: SimulationConfig) -> dict[str, np.ndarray]:
    """Cloud, shadow and cirrus masks of one date, as a function of position (so all resolutions agree)."""
    x, y = metric_xy(lon, lat)
    key = int(day.strftime("%Y%m%d")) + cfg.seed
    amount = np.random.default_rng(key).uniform(0, 2 * cfg.cloud_fraction)  # clear days and overcast days
    thr = float(np.clip(1 - amount, 0.05, 1.01))
    field_ = _fbm(x, y, 1800, key)
    # the noise is roughly normal around 0.5: map the wanted cover onto its quantiles
    cut = float(np.quantile(field_, min(thr, 1.0))) if thr < 1 else 2.0
    dense = field_ > cut + 0.04
    medium = (field_ > cut) & ~dense
    sx, sy = 350.0, -250.0  # sun from the south-west: shadows fall north-east of clouds
    shadow_field = _fbm(x - sx, y - sy, 1800, key)
    shadow = (shadow_field > cut) & ~(dense | medium)
    cirrus = (value_noise(x, y, 3000, key + 5) > 0.8) & ~(dense | medium | shadow)
    return {"dense": dense, "medium": medium, "shadow": shadow, "cirrus": cirrus}


def _to_dn(refl: np.ndarray) -> np.ndarray:
    return np.clip(np.round(refl * 10000), 1, 65535).astype(np.uint16)


def _scene_item(
    t: grid.Tile,
    day: date,
    k: int,
    bounds: tuple[float, float, float, float],
    hrefs: dict[str, str],
    cloud_cover: float,
) -> pystac.Item:
    footprint = shp_transform(
        Transformer.from_crs(t.epsg, 4326, always_xy=True).transform, box(*bounds).segmentize(1000)
    )
    props = {
        "platform": "sentinel-2a" if k % 2 else "sentinel-2b",
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "eo:cloud_cover": round(cloud_cover, 3),
        "proj:epsg": t.epsg,
        "mgrs:utm_zone": t.zone,
        "mgrs:latitude_band": t.band,
        "mgrs:grid_square": t.name[3:],
        "grid:code": f"MGRS-{t.name}",
        # 02.14 predates BOA_ADD_OFFSET: the simulated DNs are reflectance x 10000 with no offset
        "s2:processing_baseline": "02.14",
        "terracover:simulated": True,
    }
    when = datetime(day.year, day.month, day.day, 10, 30, tzinfo=UTC)
    item = pystac.Item(
        id=f"S2{'A' if k % 2 else 'B'}_{t.name}_{day:%Y%m%d}_0_L2A",
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


def simulate_scenes(cfg: SimulationConfig, out_dir: Path) -> list[pystac.Item]:
    from terracover.ingest import region_bounds

    items: list[pystac.Item] = []
    days = scene_dates(cfg.year, cfg.dates_per_season, cfg.seed)
    for t in grid.tiles_for_geometry(box(*cfg.region_bbox)):
        bounds = region_bounds(t.name, cfg.region_bbox, cfg.subtile_size)
        if bounds is None:
            continue
        frames = {res: _lonlat_grid(t, bounds, res) for res in (10, 20, 60)}
        classes = {res: true_classes(*frames[res], cfg.year, cfg.seed, cfg.land_changes) for res in frames}
        for k, day in enumerate(days):
            season = _season_index(day, cfg.year)
            folder = out_dir / str(cfg.year) / "scenes" / t.name / day.isoformat()
            folder.mkdir(parents=True, exist_ok=True)
            hrefs: dict[str, str] = {}
            cloud_cover = 0.0
            for res in (10, 20, 60):
                lon, lat = frames[res]
                clouds = _clouds(lon, lat, day, cfg)
                refl, scl = _render(lon, lat, classes[res], day, season, cfg, clouds)
                transform = Affine(res, 0, bounds[0], 0, -res, bounds[3])
                for b in (*BANDS, SCL):
                    if b.resolution_m != res:
                        continue
                    if b.name == SCL.name:
                        data = scl
                        cloud_cover = 100.0 * float(np.isin(scl, (8, 9, 10)).mean())
                    elif b.name == "AOT":
                        data = np.full(scl.shape, 120, np.uint16) + (value_noise(lon, lat, 0.2, k) * 60).astype(
                            np.uint16
                        )
                    elif b.name == "WVP":
                        data = (1500 + 1000 * value_noise(lon, lat, 0.3, k + 1)).astype(np.uint16)
                    else:
                        data = _to_dn(refl[_REFL_BANDS.index(b.name)])
                    path = folder / f"{b.name}.tif"
                    write_cog(path, data, transform, t.epsg, nodata=0, descriptions=[b.name], overviews=False)
                    hrefs[b.name] = str(path.resolve())
            items.append(_scene_item(t, day, k, bounds, hrefs, cloud_cover))
            log.info("simulated %s %s (%.0f%% cloud)", t.name, day, cloud_cover)
    return items


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
    scenes = simulate_scenes(cfg, out_dir)
    dem = simulate_dem(cfg.region_bbox, out_dir, cfg.seed)
    labels = simulate_labels(cfg)
    items_dir = out_dir / "items"
    items_dir.mkdir(exist_ok=True)
    pystac.ItemCollection(scenes).save_object(str(items_dir / f"scenes-{cfg.year}.json"))
    pystac.ItemCollection([dem]).save_object(str(items_dir / "dem.json"))
    labels.to_parquet(items_dir.parent / f"labels-{cfg.year}.parquet", index=False)
    return SimulatedArchive(scenes, [dem], labels)


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
    p.add_argument("--dates-per-season", type=int, default=3)
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
        help="from YEAR on, the lon/lat box is class CLASS (repeatable): known change for tests and the demo",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    store = open_store(s)
    for year in args.years:
        cfg = SimulationConfig(
            s.region_bbox,
            year,
            args.dates_per_season,
            args.seed,
            label_points=args.label_points,
            subtile_size=s.subtile_size,
            land_changes=tuple(args.land_change),
        )
        archive = simulate_archive(cfg, args.out)
        print(f"simulated {year}: {len(archive.scene_items)} scenes, {len(archive.labels)} labels -> {args.out}")
        if not args.no_labels:
            key = f"labels/simulated-{year}.parquet"
            with store.writer(key, suffix=".parquet") as path:
                archive.labels.to_parquet(path, index=False)
            print(f"labels for {year} -> {store.uri(key)}")
    print(json.dumps({"archive": str(args.out)}))


if __name__ == "__main__":
    main()
