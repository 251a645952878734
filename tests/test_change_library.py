"""Change codes, transition matrices and the model-change share on small known arrays."""

from __future__ import annotations

from typing import Any

import morecantile
import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.features import geometry_mask
from shapely.geometry import Point, box
from sklearn.tree import DecisionTreeClassifier
from terracover import grid
from terracover.catalog import open_catalog
from terracover.change import BASE, SameYearError, change_codes, colormap, detect_change, summarize, transition_counts
from terracover.cog import write_cog
from terracover.grid import transform_xy
from terracover.mapfile import confidence_percent
from terracover.predict import coverage, predict_aoi
from terracover.registry import LoadedModel
from terracover.settings import Settings
from terracover.stacks import stack_key
from terracover.store import ObjectStore, open_store
from terracover.tiles import classified_png

from tests.synthetic_stacks import write_stack


def test_change_codes_and_transitions():
    a = np.array([[6, 6, 2], [7, 0, 4]], dtype=np.uint8)
    b = np.array([[2, 6, 2], [8, 4, 0]], dtype=np.uint8)
    codes = change_codes(a, b)
    assert codes.tolist() == [[6 * BASE + 2, 6 * BASE + 6, 2 * BASE + 2], [7 * BASE + 8, 0, 0]]
    t = transition_counts(a, b)
    assert t.sum() == 4 and t[6, 2] == 1 and t[6, 6] == 1 and t[7, 8] == 1 and t[2, 2] == 1
    cmap = colormap()
    assert cmap[0][3] == 0 and cmap[6 * BASE + 6] == cmap[2 * BASE + 2] != cmap[6 * BASE + 2]


def test_model_change_share_separates_model_from_land():
    # 10 pixels: 4 really changed (the same model sees it too), 2 changed only because the model changed
    a = np.array([6, 6, 6, 6, 7, 7, 2, 2, 2, 2], dtype=np.uint8)
    b = np.array([2, 2, 2, 2, 8, 8, 2, 2, 2, 2], dtype=np.uint8)
    c = np.array([2, 2, 2, 2, 7, 7, 2, 2, 2, 2], dtype=np.uint8)
    s = summarize(a, b, c, pixel_ha=0.01)
    assert s.changed_fraction == pytest.approx(0.6)
    assert s.model_change_share == pytest.approx(2 / 6)
    assert s.same_model_changed_fraction == pytest.approx(0.4)
    assert s.transition_ha == {
        "cropland": {"herbaceousVegetation": 0.04},
        "closedForest": {"openForest": 0.02},
        "herbaceousVegetation": {"herbaceousVegetation": 0.04},
    }
    assert s.compared_ha == pytest.approx(0.1) and s.changed_ha == pytest.approx(0.06)


def test_confident_change_counts_only_pixels_the_same_model_is_sure_of_in_both_years():
    # the same 10 pixels; the from-year model is unsure (<= 0.5) of pixels 2, 3 in one year and of 8 in both
    a = np.array([6, 6, 6, 6, 7, 7, 2, 2, 2, 2], dtype=np.uint8)
    b = np.array([2, 2, 2, 2, 8, 8, 2, 2, 2, 2], dtype=np.uint8)
    c = np.array([2, 2, 2, 2, 7, 7, 2, 2, 2, 2], dtype=np.uint8)
    conf_a = np.array([0.9, 0.9, 0.5, 0.9, 0.8, 0.8, 0.7, 0.7, 0.4, 0.7], dtype=np.float32)
    conf_c = np.array([0.9, 0.6, 0.9, 0.3, 0.8, 0.8, 0.7, 0.7, 0.2, 0.7], dtype=np.float32)
    s = summarize(a, b, c, 0.01, conf_a, conf_c)
    assert s.same_model_changed_fraction == pytest.approx(0.4)
    assert s.confident_share == pytest.approx(0.7)  # pixels 0, 1, 4, 5, 6, 7, 9
    assert s.confident_changed_fraction == pytest.approx(2 / 7)  # pixels 0 and 1 changed
    assert summarize(a, b, c, 0.01).confident_changed_fraction is None  # without confidences: not given
    unsure = np.full(10, 0.5, np.float32)
    assert summarize(a, b, c, 0.01, unsure, unsure).confident_changed_fraction is None


def test_no_change_has_no_share():
    a = np.full((3, 3), 7, np.uint8)
    s = summarize(a, a, a, 0.01)
    assert s.changed_fraction == 0.0 and s.model_change_share is None and s.same_model_changed_fraction == 0.0


def test_grids_must_match():
    with pytest.raises(ValueError, match="one grid"):
        summarize(np.ones((2, 2), np.uint8), np.ones((2, 3), np.uint8), np.ones((2, 2), np.uint8), 0.01)


# --- the whole comparison on synthetic stacks of two years --------------------------------------------------

YEARS = (2022, 2023)
SIZE = 183
NAMES = ["summer_B04", "summer_ndvi", "dem"]
AOI = box(-0.004, 39.951, 0.004, 39.957)  # crosses UTM zones 30/31
CHANGED = box(-0.003, 39.952, -0.001, 39.955)  # where the second year's red band is raised: the land changed


def _model(version: str, seed: int, names: list[str] = NAMES) -> LoadedModel:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1.5, (3000, len(names))).astype(np.float32)
    y = np.digitize(x[:, 0] + 0.5 * x[:, -1], [0.4, 0.7, 1.0, 1.4]) + 1
    est = DecisionTreeClassifier(max_depth=6, random_state=seed).fit(x, y)
    return LoadedModel("landcover-x", version, f"run{version}", names, est, "0" * 64, "sha")


@pytest.fixture
def two_years(settings: Settings) -> Settings:
    s = settings.model_copy(update={"subtile_size": SIZE})
    store, catalog = open_store(s), open_catalog(s)
    for year in YEARS:
        for st in grid.subtiles_for_geometry(AOI, SIZE):
            values = write_stack(store, catalog, year, st, NAMES)
            if year == YEARS[1]:
                inside = geometry_mask(
                    [transform_xy(Transformer.from_crs(4326, st.crs, always_xy=True).transform, CHANGED)],
                    out_shape=st.shape,
                    transform=st.transform,
                    invert=True,
                )
                values[0][inside] += 0.5
                with store.writer(stack_key(year, st), suffix=".tif") as path:
                    write_cog(path, values, st.transform, st.crs, nodata=float("nan"), descriptions=NAMES)
    return s


def test_detect_change_finds_the_changed_patch_and_blames_models_for_the_rest(two_years: Settings) -> None:
    store, catalog = open_store(two_years), open_catalog(two_years)
    same = _model("1", 0)
    ch = detect_change(AOI, YEARS[0], YEARS[1], same, same, store, catalog, two_years)
    s = ch.summary
    patch_px = ch.predictions["from"].pixels
    # one model on both years: change only inside the patch, all of it land change
    assert 0 < s.changed_fraction < 0.5 and s.model_change_share == 0.0
    with store.open_raster(ch.key) as src:
        codes, conf = src.read(1), src.read(2)
        assert src.colormap(1)[0][3] == 0 and src.descriptions == ("change", "min_confidence")
        to_wgs84 = Transformer.from_crs(src.crs, 4326, always_xy=True).transform
        rows, cols = np.nonzero((codes > 0) & (codes // BASE != codes % BASE))
        xs, ys = rasterio.transform.xy(src.transform, rows, cols)
    lon, lat = to_wgs84(np.asarray(xs), np.asarray(ys))
    assert all(CHANGED.buffer(0.0002).contains(Point(x, y)) for x, y in zip(lon, lat, strict=True))
    assert ((codes > 0) == (conf > 0)).all() and patch_px > 0

    # a different to-year model: more apparent change, and the extra part is reported as model change
    other = _model("2", 7)
    ch2 = detect_change(AOI, YEARS[0], YEARS[1], same, other, store, catalog, two_years)
    assert ch2.summary.changed_fraction > s.changed_fraction
    assert ch2.summary.model_change_share > 0
    land = ch2.summary.changed_fraction * (1 - ch2.summary.model_change_share)
    assert land == pytest.approx(s.changed_fraction, abs=0.02)
    png = classified_png(store, ch2.key, *_tile_of(AOI.centroid, 15))
    assert png is not None and png[:4] == b"\x89PNG"

    with pytest.raises(SameYearError):
        detect_change(AOI, 2022, 2022, same, same, store, catalog, two_years)


def _tile_of(p: Point, z: int) -> tuple[int, int, int]:
    t = morecantile.tms.get("WebMercatorQuad").tile(p.x, p.y, z)
    return t.z, t.x, t.y


def test_detect_change_reads_each_stack_once_and_writes_each_map_once(
    two_years: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The to-year stacks are read once for both models, and no map is read back: the arrays compared are
    the ones the COGs hold. Models with different features share the read and classify as on their own."""
    store, catalog = open_store(two_years), open_catalog(two_years)
    before, after = _model("1", 0), _model("2", 7, ["summer_ndvi", "dem"])  # the to-year model lacks a band
    opened: list[str] = []
    written: list[str] = []
    open_raster, writer = type(store).open_raster, type(store).writer

    def counting_open(self: ObjectStore, key: str) -> Any:
        opened.append(key)
        return open_raster(self, key)

    def counting_writer(self: ObjectStore, key: str, suffix: str = "") -> Any:
        written.append(key)
        return writer(self, key, suffix)

    monkeypatch.setattr(type(store), "open_raster", counting_open)
    monkeypatch.setattr(type(store), "writer", counting_writer)
    ch = detect_change(AOI, YEARS[0], YEARS[1], before, after, store, catalog, two_years)
    monkeypatch.undo()
    for year in YEARS:
        parts = coverage(AOI, year, catalog, two_years)
        stacks = [k for k in opened if k.startswith(f"composites/{year}/")]
        assert sorted(stacks) == sorted(p.key for p in parts), (year, opened)  # one read per part of the AOI
    assert all(k.startswith("composites/") for k in opened), opened  # no map read back
    preds = ch.predictions
    assert sorted(written) == sorted([ch.key, *(k for p in preds.values() for k in (p.key, p.quality_key))]), (
        written
    )  # each map once
    for p in preds.values():
        with store.open_raster(p.key) as src:
            assert np.array_equal(src.read(1), p.codes)
            assert np.array_equal(src.read(2), confidence_percent(p.codes, p.confidence))
    # one read, two models: what each classifies alone
    for p, model in ((preds["to"], after), (preds["cross"], before)):
        alone = predict_aoi(AOI, YEARS[1], model, store, catalog, two_years, keep_rows=0)
        assert np.array_equal(alone.codes, p.codes) and alone.class_areas_ha == p.class_areas_ha
        assert np.array_equal(alone.confidence, p.confidence, equal_nan=True)
