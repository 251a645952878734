"""The L2A offset end to end on real Sentinel-2 DNs, through the project's own ingestion and build_stack:

- a post-2022 Earth Search item with ``earthsearch:boa_offset_applied: true`` composites to exactly the same
  reflectance as the same data with the flag false and the +1000 offset still in the DNs (real 29RKH DNs);
- negative reflectance survives compositing (no clip to DN 1);
- a wrong offset (harmonised DNs declared as still carrying it: the Earth Search defect) is refused at ingestion
  by the dark-target check, and, when it reaches build_stack anyway, the physical-range guard fails the stack
  with a message naming the cause (real Slovenia DNs).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.transform import rowcol
from shapely.geometry import box
from terracover import grid
from terracover.bands import BAND_BY_NAME, SCL_CLOUD_HIGH, SCL_VEGETATION, SPECTRAL_BANDS
from terracover.catalog import COMPOSITES_COLLECTION, SCENES_COLLECTION
from terracover.cog import write_cog
from terracover.dem import DemSource, build_terrain
from terracover.grid import region_bounds
from terracover.ingest import INGESTED_BANDS, catalog_item, ingest_scene
from terracover.keys import scene_key, stack_key
from terracover.pipeline import ready_catalog
from terracover.radiometry import DN_OFFSET_PROPERTY, OffsetError
from terracover.settings import Settings
from terracover.sources.base import SceneQuery, SceneSource
from terracover.stackguard import OUT_OF_RANGE_PROPERTY, PhysicalRangeError
from terracover.stacks import build_stack
from terracover.store import open_store

pytestmark = pytest.mark.realdata

RKH = "rio_tiler_pds_s2l2a_29RKH/S2A_29RKH_20200219_0_L2A"
RKH_REGION = (-11.585, 24.715, -11.565, 24.735)
SLO = "eolearn_testeopatch/geotiff_derived"
SLO_REGION = (14.548, 45.868, 14.554, 45.873)
SUBTILE = 366
WINTER = [f"winter_{b}" for b in SPECTRAL_BANDS] + ["winter_ndvi", "dem"]
SUMMER = [f"summer_{b}" for b in SPECTRAL_BANDS] + ["summer_ndvi", "dem"]


class Files(SceneSource):
    """Reads the items' local COG hrefs (the base class's windowed reads); nothing to search."""

    name = "files"

    def search(self, query: SceneQuery) -> list[pystac.Item]:
        return []


class FlatDem(DemSource):
    name = "flat"

    def __init__(self, href: str):
        self.href = href

    def search(self, bbox: tuple[float, float, float, float]) -> list[pystac.Item]:
        when = datetime(2000, 1, 1, tzinfo=UTC)
        return [pystac.Item("dem", None, None, when, {})]

    def asset_href(self, item: pystac.Item) -> str:
        return self.href


def _write(path: Path, data: np.ndarray, transform: Affine, crs: Any, nodata: float = 0) -> str:
    write_cog(path, data[np.newaxis] if data.ndim == 2 else data, transform, crs, nodata=nodata, overviews=False)
    return str(path)


def _item(
    template: dict[str, Any], item_id: str, when: str, tile: str, hrefs: dict[str, str], **props: Any
) -> pystac.Item:
    """An Earth Search v1 item of the real item's shape: post-2022 baseline, raster:bands offset -0.1."""
    d = copy.deepcopy(template)
    d["id"], d["links"] = item_id, []
    t = grid.tile(tile)
    p = d["properties"]
    product = f"S2A_MSIL2A_{when[:10].replace('-', '')}T100000_N0509.SAFE"
    p.update({"datetime": when, "s2:processing_baseline": "05.09", "grid:code": f"MGRS-{tile}",
              "mgrs:utm_zone": t.zone, "mgrs:latitude_band": t.band, "mgrs:grid_square": tile[3:],
              "proj:epsg": t.epsg, "s2:product_uri": product})  # fmt: skip
    p.update(props)
    assets = {}
    for band in INGESTED_BANDS:
        key = BAND_BY_NAME[band].asset_key
        asset = copy.deepcopy(d["assets"][key])
        asset["href"] = hrefs[band]
        for rb in asset.get("raster:bands", []):
            if rb.get("scale") == 0.0001:
                rb["offset"] = -0.1  # what Earth Search publishes whatever the flag (Element84/earth-search#66)
        assets[key] = asset
    d["assets"] = assets
    return pystac.Item.from_dict(d)


def _stack(settings: Settings, items: list[pystac.Item], region: tuple[float, ...], dem: str, names: list[str],
           year: int) -> tuple[np.ndarray, pystac.Item]:  # fmt: skip
    store, catalog = open_store(settings), ready_catalog(settings)
    tile = grid.tiles_for_geometry(box(*region))[0].name
    for item in items:
        ingest_scene(item, region, SUBTILE, Files(), store, catalog)
    build_terrain(tile, region, SUBTILE, FlatDem(dem), store, catalog)
    sub = _centre_subtile(region, tile)
    build_stack(year, sub, store, catalog, feature_names=names)
    with rasterio.open(store.gdal_path(stack_key(year, sub))) as src:
        data = src.read()
    return data, catalog.search(collections=[COMPOSITES_COLLECTION])[0]


def _centre_subtile(region: tuple[float, ...], tile: str) -> grid.Subtile:
    """The subtile holding the region's centre (where the test's patches are)."""
    centre = box(*region).centroid
    return next(s for s in grid.subtiles_for_geometry(centre.buffer(1e-6), SUBTILE) if s.tile.name == tile)


def _settings(tmp: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> Settings:
    monkeypatch.setenv("TERRACOVER_HOME", str(tmp / name))
    monkeypatch.setenv("TERRACOVER_SUBTILE_SIZE", str(SUBTILE))
    return Settings()


@pytest.fixture(scope="module")
def rkh(shared_data: Path) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, Affine, Any]]]:
    folder = shared_data / RKH
    template = json.loads((folder / f"{folder.name}.json").read_text())
    rasters = {}
    for band in INGESTED_BANDS:
        with rasterio.open(folder / f"{band}.tif") as src:
            rasters[band] = (src.read(1), src.transform, src.crs)
    return template, rasters


def test_flag_true_and_offset_in_dns_composite_to_the_same_reflectance(
    rkh: tuple[dict[str, Any], dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    template, rasters = rkh
    dem = _write(tmp_path / "dem.tif", np.full((100, 100), 300, np.float32),
                 Affine(0.01, 0, -12.0, 0, -0.01, 25.0), "EPSG:4326", nodata=-9999)  # fmt: skip
    variants: dict[str, dict[str, str]] = {"applied": {}, "in_dns": {}}
    for band, (dn, transform, crs) in rasters.items():
        shifted = np.where(dn > 0, dn.astype(np.int32) + 1000, 0).astype(np.uint16)
        if band == "B12":  # a patch of dark water/shadow: reflectance -0.005, encodable only with the offset
            x, y = Transformer.from_crs(4326, crs, always_xy=True).transform(
                *np.mean(np.reshape(RKH_REGION, (2, 2)), 0)
            )
            row, col = rowcol(transform, x, y)
            shifted[row - 2 : row + 2, col - 2 : col + 2] = 950
        for name, data in (("applied", dn), ("in_dns", shifted if BAND_BY_NAME[band].is_reflectance and
                                                      band not in ("AOT", "WVP") else dn)):  # fmt: skip
            (tmp_path / name).mkdir(exist_ok=True)
            variants[name][band] = _write(tmp_path / name / f"{band}.tif", data, transform, crs)
    when = "2023-02-19T11:34:25Z"
    applied = _item(template, "S2A_29RKH_20230219_0_L2A", when, "29RKH", variants["applied"],
                    **{"earthsearch:boa_offset_applied": True})  # fmt: skip
    in_dns = _item(template, "S2A_29RKH_20230219_0_L2A", when, "29RKH", variants["in_dns"],
                   **{"earthsearch:boa_offset_applied": False})  # fmt: skip

    a, item_a = _stack(_settings(tmp_path, monkeypatch, "a"), [applied], RKH_REGION, dem, WINTER, 2023)
    b, item_b = _stack(_settings(tmp_path, monkeypatch, "b"), [in_dns], RKH_REGION, dem, WINTER, 2023)
    assert np.isfinite(a[:12]).mean() > 0.5  # the region is inside the scene
    b12 = WINTER.index("winter_B12")
    dark = (b[b12] < 0) & np.isfinite(b[b12])
    assert dark.any(), "the dark patch must composite to negative reflectance, not clip"
    np.testing.assert_allclose(b[b12][dark], -0.005, atol=1e-6)
    # bit-identical reflectance, indices and terrain, except B12 around the patch (bilinear reads blend it in)
    rows, cols = np.nonzero(dark)
    halo = np.zeros_like(dark)
    halo[max(rows.min() - 40, 0) : rows.max() + 40, max(cols.min() - 40, 0) : cols.max() + 40] = True
    others = [k for k in range(len(WINTER)) if k != b12]
    np.testing.assert_array_equal(a[others], b[others])
    np.testing.assert_array_equal(a[b12][~halo], b[b12][~halo])
    for item in (item_a, item_b):
        assert max(item.properties[OUT_OF_RANGE_PROPERTY]["winter"].values()) == 0.0

    store_b = open_store(_settings(tmp_path, monkeypatch, "b"))
    scenes = ready_catalog(_settings(tmp_path, monkeypatch, "b")).search(collections=[SCENES_COLLECTION])
    assert scenes[0].properties[DN_OFFSET_PROPERTY]["B04"] == 1000
    assert scenes[0].properties["earthsearch:boa_offset_applied"] is False  # carried into the store-side item
    assert store_b.exists(scene_key("29RKH", "2023-02-19", "B04"))


@pytest.fixture(scope="module")
def slovenia(shared_data: Path) -> dict[str, Any]:
    folder = shared_data / SLO
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    template = json.loads((shared_data / RKH / "S2A_29RKH_20200219_0_L2A.json").read_text())
    return {"folder": folder, "template": template}


def _slovenia_scenes(slo: dict[str, Any], out: Path, flag: bool) -> list[pystac.Item]:
    """The three clear and two cloudy real dates as L2A-shaped scenes: DNs = reflectance x 10000 (harmonised)."""
    items = []
    for tif in sorted(slo["folder"].glob("S2_L1C_*_13bands.tif")):
        day = tif.name.split("_")[2]
        hrefs: dict[str, str] = {}
        with rasterio.open(tif) as src:
            data, transform, crs, names = src.read(), src.transform, src.crs, list(src.descriptions)
        with rasterio.open(slo["folder"] / f"CLM_{day}.tif") as src:
            scl = np.where(src.read(1) == 1, SCL_CLOUD_HIGH, SCL_VEGETATION).astype(np.uint8)
        (out / day).mkdir(parents=True, exist_ok=True)
        for band in INGESTED_BANDS:
            if band in names:
                arr = data[names.index(band)]
            elif band == "SCL":
                arr = scl
            else:  # AOT / WVP: not in L1C; plausible constants
                arr = np.full(scl.shape, 150 if band == "AOT" else 1500, np.uint16)
            hrefs[band] = _write(out / day / f"{band}.tif", arr, transform, crs)
        items.append(_item(slo["template"], f"S2A_33TVL_{day.replace('-', '')}_0_L2A", f"{day}T10:00:00Z", "33TVL",
                           hrefs, **{"earthsearch:boa_offset_applied": flag}))  # fmt: skip
    return items


def test_a_wrong_offset_never_reaches_a_model(
    slovenia: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    """Harmonised DNs whose flag says "not applied" (Element84/earth-search#66): ingestion refuses the scene
    (dark targets); a stack built from such scenes anyway fails with the cause, and writes nothing."""
    wrong = _slovenia_scenes(slovenia, tmp_path / "scenes", flag=False)
    s = _settings(tmp_path, monkeypatch, "wrong")
    store, catalog = open_store(s), ready_catalog(s)
    with pytest.raises(OffsetError, match=r"offset removed twice|already harmonised"):
        ingest_scene(wrong[0], SLO_REGION, SUBTILE, Files(), store, catalog)
    assert not catalog.search(collections=[SCENES_COLLECTION])

    # The same scenes catalogued with the wrong offset (as an older ingestion, or an inconclusive check, would)
    bounds = region_bounds("33TVL", SLO_REGION, SUBTILE)
    assert bounds is not None
    for item in wrong:
        for band in INGESTED_BANDS:
            res = BAND_BY_NAME[band].resolution_m
            data = Files().read_band(item, band, bounds, res)
            day = item.datetime.date().isoformat() if item.datetime else ""
            with store.writer(scene_key("33TVL", day, band), suffix=".tif") as path:
                write_cog(path, data, Affine(res, 0, bounds[0], 0, -res, bounds[3]), 32633, nodata=0, overviews=False)
        radiometry = {DN_OFFSET_PROPERTY: dict.fromkeys(SPECTRAL_BANDS[:12], 1000),
                      "terracover:dn_offset_evidence": "earthsearch:boa_offset_applied=false"}  # fmt: skip
        catalog.upsert_items([catalog_item(item, "33TVL", bounds, store, INGESTED_BANDS, "files", radiometry)])
    build_terrain("33TVL", SLO_REGION, SUBTILE, FlatDem(str(slovenia["folder"] / "DEM.tif")), store, catalog)
    sub = _centre_subtile(SLO_REGION, "33TVL")
    with pytest.raises(PhysicalRangeError, match=r"summer composite is not physical.*subtracted.*boa_offset_applied"):
        build_stack(2015, sub, store, catalog, feature_names=SUMMER)
    assert not store.exists(stack_key(2015, sub)) and not catalog.search(collections=[COMPOSITES_COLLECTION])

    right = _slovenia_scenes(slovenia, tmp_path / "right", flag=True)
    ok = _settings(tmp_path, monkeypatch, "right")
    data, item = _stack(ok, right, SLO_REGION, str(slovenia["folder"] / "DEM.tif"), SUMMER, 2015)
    assert max(item.properties[OUT_OF_RANGE_PROPERTY]["summer"].values()) < 0.01
    scenes = ready_catalog(ok).search(collections=[SCENES_COLLECTION])
    assert {i.properties["terracover:dark_target"]["status"] for i in scenes} <= {"consistent", "inconclusive"}
    assert any(i.properties["terracover:dark_target"]["status"] == "consistent" for i in scenes)
