"""Reading in place: a real Sentinel-2 L2A scene (29RKH, 2020-02-19, from ../shared/data) served as COGs by a
local HTTP server that honours byte ranges and logs them, like the public sentinel-cogs bucket. The scene is
catalogued without a copy and composited through GDAL's /vsicurl/; the stack must equal the one built after a
copy ingestion, and the server's log must show only the subtile's window (plus each file's header) fetched,
even when the server answers 503 once (GDAL retries)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio

from tests.fixtures.range_http import range_server

pytestmark = [pytest.mark.realdata]

SCENE = "rio_tiler_pds_s2l2a_29RKH/S2A_29RKH_20200219_0_L2A"
SIZE = 366  # subtile edge (px at 10 m)
POINT = (-11.55, 24.74)  # inside 29RKH, where the 2020-02-19 scene has data
CHUNK = 16384  # GDAL /vsicurl/ fetches whole chunks of CPL_VSIL_CURL_CHUNK_SIZE


def _subtile() -> Any:
    from terracover import grid

    return grid.subtile_of_point(*POINT, SIZE)


def _native_cogs(shared: Path, out: Path) -> None:
    """The real scene over the 3 x 3 subtiles around ours, at each band's native resolution (the sample is the
    tile downsampled 10x; nearest upsampling keeps its values), as tiled COGs like the public archive's."""
    from rasterio.enums import Resampling
    from terracover.bands import BAND_BY_NAME
    from terracover.ingest import INGESTED_BANDS

    st = _subtile()
    step = SIZE * 10
    bounds = (st.bounds[0] - step, st.bounds[1] - step, st.bounds[2] + step, st.bounds[3] + step)
    out.mkdir(parents=True)
    for band in INGESTED_BANDS:
        res = BAND_BY_NAME[band].resolution_m
        shape = (round((bounds[3] - bounds[1]) / res), round((bounds[2] - bounds[0]) / res))
        with rasterio.open(shared / SCENE / f"{band}.tif") as src:
            win = rasterio.windows.from_bounds(*bounds, transform=src.transform)
            data = src.read(1, window=win, out_shape=shape, resampling=Resampling.nearest)
        transform = rasterio.transform.from_origin(bounds[0], bounds[3], res, res)
        # Uncompressed tiles: nearest-upsampled data would compress to almost nothing and hide what was fetched.
        profile = {"driver": "COG", "width": shape[1], "height": shape[0], "count": 1, "dtype": "uint16",
                   "crs": "EPSG:32629", "transform": transform, "nodata": 0, "compress": "NONE", "blocksize": 256,
                   "overviews": "NONE"}  # fmt: skip
        with rasterio.open(out / f"{band}.tif", "w", **profile) as dst:
            dst.write(data, 1)


def _item(shared: Path, base_url: str) -> pystac.Item:
    """The scene's real STAC item, its band assets pointing at the local server."""
    d = json.loads((shared / SCENE / "S2A_29RKH_20200219_0_L2A.json").read_text())
    from terracover.bands import band_for_asset

    for key, asset in d["assets"].items():
        band = band_for_asset(key)
        asset["href"] = f"{base_url}/{band.name}.tif" if band else f"{base_url}/missing/{key}"
    d["links"] = []
    return pystac.Item.from_dict(d)


def _home(tmp: Path, name: str) -> Any:
    from terracover.settings import Settings

    st = _subtile()
    x, y = st.footprint_wgs84.centroid.x, st.footprint_wgs84.centroid.y
    return Settings(home=tmp / name, region_bbox=(x - 0.001, y - 0.001, x + 0.001, y + 0.001), subtile_size=SIZE)


def _build(settings: Any, item: pystac.Item, copy: bool) -> tuple[np.ndarray, dict[str, Any]]:
    from terracover.dem import DemSource, build_terrain
    from terracover.features import all_features
    from terracover.ingest import ingest_scene
    from terracover.keys import stack_key
    from terracover.pipeline import ready_catalog
    from terracover.simulate import simulate_dem
    from terracover.sources.stac_api import StacApiSource
    from terracover.stacks import build_stack
    from terracover.store import open_store

    class OneDem(DemSource):
        name = "test"

        def __init__(self, dem: pystac.Item):
            self.dem = dem

        def search(self, bbox: tuple[float, float, float, float]) -> list[pystac.Item]:
            return [self.dem]

        def asset_href(self, dem: pystac.Item) -> str:
            return next(iter(dem.assets.values())).href

    store, catalog = open_store(settings), ready_catalog(settings)
    st = _subtile()
    dem = simulate_dem(settings.region_bbox, settings.home / "dem")
    build_terrain(st.tile.name, settings.region_bbox, SIZE, OneDem(dem), store, catalog)
    result = ingest_scene(item, settings.region_bbox, SIZE, StacApiSource("http://unused"), store, catalog, copy=copy)
    names = [n for n in all_features() if n.startswith("winter_")] + ["dem", "slope", "aspect"]  # one winter scene
    build_stack(2020, st, store, catalog, feature_names=names)
    with rasterio.open(Path(store.root) / stack_key(2020, st)) as src:
        return src.read(), {"ingest": result, "catalogued": catalog.get_item("terracover-scenes", item.id)}


def _allowed(path: Path, bounds: tuple[float, float, float, float]) -> list[tuple[int, int]]:
    """Byte spans a window read may touch: the header and tile index, and the tiles the window overlaps, each
    widened to GDAL's fetch chunks."""
    import tifffile

    with rasterio.open(path) as src:
        win = rasterio.windows.from_bounds(*bounds, transform=src.transform).round_offsets().round_lengths()
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        tw, th = page.tilewidth, page.tilelength
        per_row = -(-page.imagewidth // tw)
        offsets, counts = page.dataoffsets, page.databytecounts
    spans = [(0, max(min(offsets), 2 * CHUNK))]  # GDAL opens a remote TIFF with one read of its first 32 KB
    for ty in range(int(win.row_off) // th, (int(win.row_off + win.height) - 1) // th + 1):
        for tx in range(int(win.col_off) // tw, (int(win.col_off + win.width) - 1) // tw + 1):
            i = ty * per_row + tx
            spans.append((offsets[i], offsets[i] + counts[i]))
    merged: list[tuple[int, int]] = []
    for a, b in sorted((a // CHUNK * CHUNK, -(-b // CHUNK) * CHUNK) for a, b in spans):
        if merged and a <= merged[-1][1]:  # consecutive tiles come in one merged request
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def test_read_in_place_equals_copy_and_fetches_only_the_window(shared_data: Path, tmp_path: Path) -> None:
    cogs = tmp_path / "archive"
    _native_cogs(shared_data, cogs / "scene")
    with range_server(cogs) as (url, log):
        copied, copy_info = _build(_home(tmp_path, "copy"), _item(shared_data, f"{url}/scene"), copy=True)
        assert copy_info["ingest"].copied == 15
        # Read in place from a second path of the same files, so nothing comes from GDAL's cache of the first.
        (cogs / "public").symlink_to(cogs / "scene")
        item = _item(shared_data, f"{url}/public")
        log.clear()
        log.fail_next["/public/B03.tif"] = 1  # a transient error: GDAL must retry, not fail or fill
        in_place, info = _build(_home(tmp_path, "in-place"), item, copy=False)
        served = log.served()
        statuses = [s for *_, s in log.requests]
    assert info["ingest"].copied == 0 and not (tmp_path / "in-place" / "store" / "scenes").exists()
    catalogued = info["catalogued"]
    assert catalogued.properties["terracover:access"] == "in-place"
    assert catalogued.assets["B04"].href == f"{url}/public/B04.tif"
    assert catalogued.properties["eo:cloud_cover"] == item.properties["eo:cloud_cover"]
    assert "s2:processing_baseline" in catalogued.properties and "SCL" in catalogued.assets

    assert np.isfinite(copied).any()
    np.testing.assert_array_equal(in_place, copied)  # bit-identical, NaNs in the same places

    assert 503 in statuses and 200 not in statuses, "a whole-file GET, or the 503 was never sent"
    st = _subtile()
    total = 0
    seen: set[tuple[str, int, int]] = set()
    for path, first, last in served:
        band_file = cogs / "scene" / Path(path).name
        spans = _allowed(band_file, st.bounds)
        assert any(a <= first and last < b for a, b in spans), f"{path} bytes {first}-{last} outside {spans}"
        total += last - first + 1
        assert (path, first, last) not in seen, f"{path} bytes {first}-{last} fetched twice"
        seen.add((path, first, last))
    files = {p for p, *_ in served}
    whole = sum((cogs / "scene" / Path(p).name).stat().st_size for p in files)
    print(f"in place: {len(served)} ranged GETs, {total:,} of {whole:,} bytes of {len(files)} files for one"
          f" {SIZE} x {SIZE} subtile-date (uncompressed 256 px tiles)")  # fmt: skip
    assert len(files) == 15 and total < 0.5 * whole
