"""The annual map product on small synthetic stacks in two UTM zones: every pixel a stack covers is classified
into a map COG (class with its colour table, confidence) and a quality COG, catalogued in terracover-maps, and
each zone's VRT mosaic opens with rasterio (GDAL, as QGIS does), shows the class colours and reads back the
subtiles' own values (no Airflow, no MLflow)."""

from __future__ import annotations

import numpy as np
import rasterio
from sklearn.ensemble import RandomForestClassifier
from terracover import grid
from terracover.catalog import MAPS_COLLECTION
from terracover.keys import map_key, map_mosaic_key, map_quality_key
from terracover.mapfile import MAP_BANDS, QUALITY_BANDS
from terracover.maps import map_subtile, publish_mosaics, stacks_of_year
from terracover.observation import NOT_CLASSIFIED, OBSERVED
from terracover.pipeline import ready_catalog
from terracover.registry import LoadedModel
from terracover.settings import Settings
from terracover.store import open_store

from tests.synthetic_stacks import pixel_values, write_stack

YEAR = 2023
SIZE = 183
NAMES = ["summer_ndvi", "summer_B11", "dem"]


def _model() -> LoadedModel:
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (300, len(NAMES))).astype(np.float32)
    y = np.where(X[:, 0] > 0.5, 7, 4)  # closedForest where "ndvi" is high, water elsewhere
    est = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    return LoadedModel("landcover-2023", "3", "run", NAMES, est, "sha", "git")


def test_every_stack_is_mapped_and_each_zone_has_a_mosaic(settings: Settings) -> None:
    store, catalog = open_store(settings), ready_catalog(settings)
    west = grid.subtile_of_point(-0.01, 39.95, SIZE)  # UTM 30
    west2 = grid.subtile_of_point(-0.01 - SIZE * 10 / 85_000, 39.95, SIZE)  # its western neighbour
    east = grid.subtile_of_point(0.01, 39.95, SIZE)  # UTM 31
    for st in (west, west2, east):
        write_stack(store, catalog, YEAR, st, NAMES, nan_rows=slice(0, 3) if st is east else None)
    model = _model()
    subtiles = stacks_of_year(YEAR, catalog, SIZE)
    assert {s.id for s in subtiles} == {west.id, west2.id, east.id}

    tiles = [map_subtile(YEAR, st, model, store, catalog) for st in subtiles]
    with rasterio.open(store.gdal_path(map_key(YEAR, "3", east))) as src:
        assert src.descriptions == MAP_BANDS and src.crs == east.crs
        assert src.colormap(1)[7][:3] == (0, 120, 0)  # closedForest's colour, embedded for QGIS
        cls, conf = src.read()
    with rasterio.open(store.gdal_path(map_quality_key(YEAR, "3", east))) as src:
        assert src.descriptions == QUALITY_BANDS
        quality = src.read(1)
    expected = np.where(pixel_values(east, NAMES)[0] > 0.5, 7, 4)
    assert (cls[:3] == 0).all() and (quality[:3] == NOT_CLASSIFIED).all()  # no class for a pixel it cannot see
    assert (cls[3:] == expected[3:]).mean() > 0.95 and (conf[3:] > 50).all() and (quality[3:] == OBSERVED).all()
    items = catalog.search(collections=[MAPS_COLLECTION], properties={"terracover:year": YEAR})
    assert len(items) == 3 and {i.properties["terracover:model_version"] for i in items} == {"3"}
    assert all(set(i.assets) == {"map", "quality"} for i in items)

    mosaics = publish_mosaics(YEAR, "3", tiles, store, SIZE)
    assert len(mosaics) == 2  # one per UTM zone
    zone30 = next(k for k in mosaics if k.endswith(f"{west.crs.to_epsg()}.vrt"))
    with rasterio.open(store.gdal_path(zone30)) as vrt:
        assert vrt.count == 2 and vrt.crs == west.crs and vrt.width == 2 * SIZE
        assert vrt.colormap(1)[7][:3] == (0, 120, 0)
        whole = vrt.read(1)
        for st in (west, west2):
            with rasterio.open(store.gdal_path(map_key(YEAR, "3", st))) as part:
                col = round((st.bounds[0] - vrt.bounds.left) / 10)
                np.testing.assert_array_equal(whole[:, col : col + SIZE], part.read(1))
    with rasterio.open(store.gdal_path(map_mosaic_key(YEAR, "3", west.crs.to_epsg(), quality=True))) as vrt:
        assert vrt.descriptions == QUALITY_BANDS and vrt.width == 2 * SIZE
