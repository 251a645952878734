"""AOI -> classified COG on synthetic stacks whose values are known everywhere: validation messages, lattice
alignment, seamless mosaics across tiles and UTM zones, areas; and the drift score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
from pyproj import Geod, Transformer
from shapely.geometry import box, mapping
from sklearn.tree import DecisionTreeClassifier
from terracover import grid
from terracover.catalog import open_catalog
from terracover.drift import DriftMonitor, Reference, psi
from terracover.grid import transform_xy
from terracover.predict import (
    AoiTooLargeError,
    BadRequestError,
    NoCoverageError,
    OutputGrid,
    predict_aoi,
    served_footprint,
    validate_aoi,
)
from terracover.registry import LoadedModel
from terracover.settings import Settings
from terracover.store import open_store

from tests.synthetic_stacks import pixel_values, stacks_over, write_stack

YEAR = 2022
SIZE = 183
NAMES = ["summer_B04", "summer_ndvi", "dem"]
# Straddles lon 0 (UTM zones 30/31, MGRS tiles 30SYJ/31SBD) within a few subtiles.
CROSSING = box(-0.004, 39.951, 0.004, 39.957)


def _model() -> LoadedModel:
    """A fitted tree on the synthetic value range: deterministic, several classes."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (3000, len(NAMES))).astype(np.float32)
    y = np.digitize(x[:, 0] + 0.5 * x[:, 1], [0.4, 0.7, 1.0]) + 1
    est = DecisionTreeClassifier(max_depth=6, random_state=0).fit(x, y)
    return LoadedModel("landcover-2022", "1", "run", NAMES, est, "0" * 64, "sha")


@pytest.fixture
def stacks(settings: Settings) -> Settings:
    return stacks_over(settings, CROSSING, SIZE, YEAR, NAMES)


@pytest.mark.parametrize(
    ("aoi", "error", "needle"),
    [
        ("not json", BadRequestError, "GeoJSON object"),
        ({"type": "Polygon", "coordinates": []}, BadRequestError, "empty"),
        ({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, BadRequestError, "LineString"),
        (mapping(box(300000, 4400000, 300100, 4400100)), BadRequestError, "WGS84"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}, BadRequestError, "invalid"),
        (mapping(box(0, 0, 1, 1)), AoiTooLargeError, "limit"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1]]]}, BadRequestError, "position"),
        ({"type": "Feature", "geometry": None}, BadRequestError, "no geometry"),
        (mapping(box(0, 85, 1, 85.1)), BadRequestError, "-80..84"),
    ],
)
def test_bad_aois_are_named(aoi: object, error: type[Exception], needle: str) -> None:
    with pytest.raises(error, match=needle):
        validate_aoi(aoi, max_km2=500, settings=Settings())


def test_feature_collections_are_unioned() -> None:
    fc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {}, "geometry": mapping(box(0, 39, 0.01, 39.01))},
            {"type": "Feature", "properties": {}, "geometry": mapping(box(0.02, 39, 0.03, 39.01))},
        ],
    }
    assert validate_aoi(fc, max_km2=500, settings=Settings()).geom_type == "MultiPolygon"


def test_output_grid_is_the_stacks_lattice() -> None:
    g = OutputGrid.for_aoi(box(-0.3, 39.5, -0.29, 39.51))
    st = grid.subtile_of_point(-0.295, 39.505, SIZE)
    assert g.crs == st.crs
    assert (g.transform.c - st.transform.c) % 10 == 0 and (g.transform.f - st.transform.f) % 10 == 0


def test_mosaic_across_zones_is_seamless_and_exact_in_the_aois_zone(stacks: Settings) -> None:
    s, model = stacks, _model()
    p = predict_aoi(CROSSING, YEAR, model, open_store(s), open_catalog(s), s)
    assert len({cid.split("-")[1] for cid in p.composite_items}) == 2
    with rasterio.open(open_store(s).path(p.key)) as src:
        cls, conf = src.read(1), src.read(2)
        transform, crs = src.transform, src.crs
    # Every output pixel whose centre is in the AOI is classified: no seam along the zone boundary.
    from rasterio.features import geometry_mask
    from terracover.predict import _project

    inside = geometry_mask([_project(CROSSING, crs)], cls.shape, transform, invert=True)
    assert (cls[inside] > 0).all() and (cls[~inside] == 0).all() and (conf[inside] >= 1).all()
    # Pixels owned by a subtile of the output's own zone are that stack's pixels, classified exactly.
    for st in grid.subtiles_for_geometry(CROSSING, SIZE):
        if st.crs != crs:
            continue
        values = pixel_values(st, NAMES)
        col0 = round((transform.c - st.transform.c) / 10)
        row0 = round((st.transform.f - transform.f) / 10)
        rows, cols = np.nonzero(inside)
        sr, sc = rows + row0, cols + col0
        ok = (sr >= 0) & (sr < st.shape[0]) & (sc >= 0) & (sc < st.shape[1])
        owned = np.array(
            [st.owned_wgs84.contains(_lonlat(transform, crs, r, c)) for r, c in zip(rows[ok], cols[ok], strict=True)]
        )
        r_, c_ = rows[ok][owned], cols[ok][owned]
        expected = model.estimator.predict(values[:, sr[ok][owned], sc[ok][owned]].T)
        np.testing.assert_array_equal(cls[r_, c_], expected)
    area_ha = abs(Geod(ellps="WGS84").geometry_area_perimeter(CROSSING)[0]) / 1e4
    assert sum(p.class_areas_ha.values()) + p.unclassified_ha == pytest.approx(area_ha, rel=0.01)
    assert p.avg_confidence == pytest.approx(conf[inside].mean() / 100, abs=0.006)  # band 2 rounds to 1 %


def _lonlat(transform: object, crs: object, r: int, c: int) -> object:
    from pyproj import Transformer
    from shapely.geometry import Point

    x, y = transform @ (c + 0.5, r + 0.5)  # type: ignore[operator]
    return Point(*Transformer.from_crs(crs, 4326, always_xy=True).transform(x, y))


def test_missing_stacks_are_listed(stacks: Settings) -> None:
    s = stacks
    with pytest.raises(NoCoverageError, match="no 2023 feature stack covers") as err:
        predict_aoi(CROSSING, 2023, _model(), open_store(s), open_catalog(s), s)
    assert err.value.missing and all("/" in m for m in err.value.missing)


def test_geojson_polygons_cover_the_classified_area(stacks: Settings) -> None:
    s = stacks
    p = predict_aoi(CROSSING, YEAR, _model(), open_store(s), open_catalog(s), s, fmt="geojson")
    assert p.geojson is not None
    codes = {f["properties"]["class_code"] for f in p.geojson["features"]}
    assert codes == set(np.unique(p.row_codes).tolist())


def test_psi_is_small_for_the_training_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"a": rng.normal(0, 1, 20000), "b": rng.uniform(0, 1, 20000)})
    ref = Reference.from_table(table, ["a", "b"])
    same = DriftMonitor(ref, sample_px=5000)
    scores = same.observe(np.column_stack([rng.normal(0, 1, 8000), rng.uniform(0, 1, 8000)]), ["a", "b"])
    assert scores is not None and (scores < 0.02).all()
    shifted = DriftMonitor(ref)
    scores = shifted.observe(np.column_stack([rng.normal(1.5, 1, 8000), rng.uniform(0, 1, 8000)]), ["a", "b"])
    assert scores is not None and scores[0] > 0.25 and scores[1] < 0.05
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == pytest.approx(0.0)


def test_an_aoi_too_thin_for_any_pixel_centre_takes_the_pixels_it_touches(stacks: Settings) -> None:
    from pyproj import Transformer
    from shapely.geometry import Polygon

    s = stacks
    st = grid.subtile_of_point(-0.002, 39.954, SIZE)
    x0, y0 = st.transform @ (50, 50)  # a pixel corner; the sliver stays between pixel centres
    to_wgs84 = Transformer.from_crs(st.crs, 4326, always_xy=True).transform
    sliver = Polygon([to_wgs84(x, y) for x, y in [(x0 + 1, y0), (x0 + 3, y0), (x0 + 3, y0 - 300), (x0 + 1, y0 - 300)]])
    p = predict_aoi(validate_aoi(mapping(sliver), 500, settings=s), YEAR, _model(), open_store(s), open_catalog(s), s)
    assert 25 <= p.pixels <= 40  # one column of 30 pixels (a lon/lat sliver may clip a neighbour)


def test_kept_rows_are_bounded_per_subtile(stacks: Settings) -> None:
    s = stacks
    p = predict_aoi(CROSSING, YEAR, _model(), open_store(s), open_catalog(s), s, keep_rows=100)
    assert p.pixels > 1000 and len(p.rows) <= 100 * len(p.composite_items) and len(p.rows) == len(p.row_codes)
    assert p.rows.shape[1] == len(NAMES)


def _zone30_stacks_under(aoi: object, s: Settings) -> list[grid.Subtile]:
    """Every subtile of the zone-30 tile whose footprint meets ``aoi``, owned or not (MGRS tiles overlap)."""
    from terracover.grid import transform_xy

    t = grid.tile_of_point(-0.002, 39.954)
    to_utm = Transformer.from_crs(4326, t.epsg, always_xy=True).transform
    x0, y0, x1, y1 = transform_xy(to_utm, aoi).bounds  # type: ignore[arg-type]
    step = SIZE * grid.RES_M
    return [
        grid.Subtile(t, r, c, SIZE)
        for r in range(int((t.uly - y1) // step), int((t.uly - y0) // step) + 1)
        for c in range(int((x0 - t.ulx) // step), int((x1 - t.ulx) // step) + 1)
    ]


def test_pixels_whose_owner_has_no_stack_come_from_any_stack_covering_them(settings: Settings) -> None:
    """Only the zone-30 tile's stacks exist; the zone-31 tile owns half the AOI but its stacks were never
    built: those pixels come from the zone-30 stacks (nearest neighbour), and the whole AOI is classified."""
    s = settings.model_copy(update={"subtile_size": SIZE})
    store, catalog = open_store(s), open_catalog(s)
    built = _zone30_stacks_under(CROSSING, s)
    for st in built:
        write_stack(store, catalog, YEAR, st, NAMES)
    owners = grid.subtiles_for_geometry(CROSSING, SIZE)
    assert {st.tile.name for st in owners} - {st.tile.name for st in built}  # some owners have no stack
    p = predict_aoi(CROSSING, YEAR, _model(), store, catalog, s)
    assert p.classified_fraction == 1.0 and p.unclassified_ha == 0
    assert set(p.composite_items) <= {f"{YEAR}-{st.tile.name}-{st.id}" for st in built}
    footprint = served_footprint(YEAR, catalog)
    assert footprint is not None and footprint.contains(CROSSING)
    # Outside every stack's footprint: a 422 naming the subtiles that have none.
    far = box(0.2, 39.951, 0.205, 39.955)
    with pytest.raises(NoCoverageError, match="GET /coverage") as err:
        predict_aoi(far, YEAR, _model(), store, catalog, s)
    assert err.value.missing and all(m.startswith("31") for m in err.value.missing)


def test_the_quality_band_tells_observed_filled_missing_and_unclassified(settings: Settings) -> None:
    """Quality per pixel from the stack's qa_* bands: observed (k clear dates), gap-filled, missing features
    (classified only by a model that accepts them), unclassified; fractions in the answer add up."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from terracover.missing import declare_accepts_missing
    from terracover.observation import FILLED, NOT_CLASSIFIED, OBSERVED, PARTIAL

    names = ["spring_B04", "summer_B04", "dem"]
    s = settings.model_copy(update={"subtile_size": SIZE})
    store, catalog = open_store(s), open_catalog(s)
    st = grid.subtile_of_point(-0.3, 39.5, SIZE)
    values = pixel_values(st, names)
    qa = np.full((2, *st.shape), 2, dtype=np.float32)  # spring, summer: 2 clear dates each
    qa[1, 40:80] = 0  # rows 40-79: summer interpolated
    qa[1, 80:120], values[1, 80:120] = np.nan, np.nan  # rows 80-119: summer missing
    qa[:, 120:], values[:2, 120:] = np.nan, np.nan  # rows 120-: nothing seen (terrain only)
    write_stack(store, catalog, YEAR, st, [*names, "qa_spring", "qa_summer"], values=np.concatenate([values, qa]))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (2000, 3)).astype(np.float32)
    y = np.digitize(x[:, 0] + x[:, 1], [0.7, 1.3]) + 1
    x[rng.random(2000) < 0.2, 1] = np.nan
    plain = LoadedModel(f"landcover-{YEAR}", "1", "run", names, DecisionTreeClassifier(max_depth=5).fit(
        np.nan_to_num(x), y), "0" * 64, "sha")  # fmt: skip
    aware = LoadedModel(f"landcover-{YEAR}", "2", "run", names, declare_accepts_missing(
        HistGradientBoostingClassifier(max_iter=20).fit(x, y)), "0" * 64, "sha")  # fmt: skip
    x0, y0 = st.transform @ (0, 0)
    x1, y1 = st.transform @ (st.shape[1], st.shape[0])
    aoi = transform_xy(Transformer.from_crs(st.crs, 4326, always_xy=True).transform, box(x0, y1, x1, y0).buffer(-25))
    for model, partial in ((plain, NOT_CLASSIFIED), (aware, PARTIAL)):
        p = predict_aoi(aoi, YEAR, model, store, catalog, s)
        with rasterio.open(store.path(p.key)) as src, rasterio.open(store.path(p.quality_key)) as qsrc:
            assert src.descriptions == ("class", "confidence")
            assert qsrc.descriptions == ("quality", "clear_observations")
            assert (qsrc.transform, qsrc.shape) == (src.transform, src.shape)
            cls, quality, clear = src.read(1), qsrc.read(1), qsrc.read(2)
            off = round((src.transform.f - st.transform.f) / 10)  # output row of the stack's row r: r + off

        def at(stack_row: int, quality: np.ndarray = quality, off: int = off) -> set[int]:
            row = quality[stack_row + off]
            return set(np.unique(row[row > 0]).tolist())

        assert at(10) == {OBSERVED} and at(60) == {FILLED} and at(100) == {partial} and at(150) == {NOT_CLASSIFIED}
        assert set(np.unique(clear[quality == OBSERVED]).tolist()) == {4}  # 2 + 2 clear dates
        assert ((cls > 0) == np.isin(quality, [OBSERVED, FILLED, PARTIAL])).all()
        q = p.quality_fractions
        assert sum(q.values()) == pytest.approx(1.0, abs=1e-5)
        assert p.classified_fraction == pytest.approx(q["observed"] + q["gap_filled"] + q["missing_features"], abs=1e-5)
        assert p.gap_filled_fraction == q["gap_filled"] > 0
        assert (q["missing_features"] > 0) == (model is aware)
