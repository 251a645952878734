"""The real service (`bentoml serve`) against a real MLflow server and the data plane's real composites.

Models are trained and registered with the library; the human approval that lets a version become champion is
given here as the ApprovalOperator's response would carry it (the Airflow HITL path itself is covered by
test_model_plane_chain and test_train_model_dag).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import rasterio
from pyproj import Geod
from rasterio.features import geometry_mask
from shapely.geometry import box, mapping, shape

from tests.conftest import ARTIFACTS
from tests.fixtures.browser import chromium_page
from tests.fixtures.dataplane import REGION, YEAR
from tests.fixtures.procs import wait_until
from tests.fixtures.serving import TOKEN, settings_now, start_service, train_and_approve

pytestmark = [pytest.mark.services, pytest.mark.airflow]

WEST, SOUTH, EAST, NORTH = json.loads(REGION)


def _one_subtile_aoi() -> dict[str, Any]:
    """A ~600 m AOI west of lon 0 (zone 30) cut to the part one 366 px subtile owns."""
    from terracover import grid

    st = grid.subtile_of_point(WEST + 0.004, SOUTH + 0.003, 366)
    part = box(WEST + 0.001, SOUTH + 0.001, WEST + 0.008, SOUTH + 0.006).intersection(st.owned_wgs84.buffer(-0.0002))
    assert part.geom_type == "Polygon" and part.area > 0.3 * 0.007 * 0.005
    return mapping(part)


ONE_TILE_AOI = _one_subtile_aoi()
WHOLE_REGION = mapping(box(WEST + 0.0005, SOUTH + 0.0005, EAST - 0.0005, NORTH - 0.0005))  # zones 30 and 31


@pytest.fixture(scope="module")
def service(
    serving_env: dict[str, str], champion_version: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with start_service(serving_env, tmp_path_factory.mktemp("serving") / "bentoml.log") as url:
        yield url


def predict(url: str, aoi: Any, year: int = YEAR, **extra: Any) -> httpx.Response:
    return httpx.post(f"{url}/predict", json={"aoi": aoi, "year": year, **extra}, timeout=300)


def _error(r: httpx.Response) -> str:
    body = r.json()
    return str(body["error"])


def _raster(answer: dict[str, Any]) -> Path:
    url = answer["raster_url"]
    assert url.startswith("file://"), url
    return Path(url.removeprefix("file://"))


def test_prediction_embeds_the_class_colour_table_and_ships_its_quality_layer(
    service: str, champion_version: str
) -> None:
    r = predict(service, ONE_TILE_AOI)
    assert r.status_code == 200, r.text
    body = r.json()
    with rasterio.open(_raster(body)) as out:
        assert out.colormap(1)[4][:3] == (0, 50, 200)  # water's colour embedded, no side-car needed
        grid_of_map, classified = (out.transform, out.shape), out.read(1) > 0
    quality_path = Path(body["quality_raster_url"].removeprefix("file://"))
    with rasterio.open(quality_path) as q:
        assert q.descriptions == ("quality", "clear_observations") and (q.transform, q.shape) == grid_of_map
        assert (np.isin(q.read(1), [1, 2, 3]) == classified).all()  # every classified pixel says how
    assert set(body["stac_item"]["assets"]) == {"classification", "quality"}
    download = httpx.get(f"{service}{body['quality_download_path']}", timeout=60)
    assert download.status_code == 200 and download.content == quality_path.read_bytes()


def test_prediction_matches_the_model_run_offline_pixel_for_pixel(service: str, champion_version: str) -> None:
    from terracover import grid, registry
    from terracover.features import select_bands
    from terracover.keys import stack_key
    from terracover.store import open_store

    r = predict(service, ONE_TILE_AOI)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["model"]["version"] == champion_version and 0 < answer["avg_confidence"] <= 1
    s = settings_now()
    model = registry.open_registry(s).load_model(YEAR)
    with rasterio.open(_raster(answer)) as out:
        classes_band, conf_band = out.read(1), out.read(2)
        transform, crs = out.transform, out.crs
        # class and confidence first; the quality layer (observed / filled / unclassified) follows
        assert out.descriptions[:2] == ("class", "confidence")
    aoi = shape(ONE_TILE_AOI)
    (st,) = grid.subtiles_for_geometry(aoi, s.subtile_size)
    assert st.crs == crs
    # Same lattice: the output's top-left pixel is a whole-pixel offset into the subtile's stack.
    col0 = round((transform.c - st.transform.c) / 10)
    row0 = round((st.transform.f - transform.f) / 10)
    h, w = classes_band.shape
    with open_store(s).open_raster(stack_key(YEAR, st)) as src:
        idx = select_bands(list(src.descriptions), model.features)
        values = src.read(idx, window=((row0, row0 + h), (col0, col0 + w)), out_dtype=np.float32)
    from pyproj import Transformer
    from terracover.grid import transform_xy

    aoi_utm = transform_xy(Transformer.from_crs(4326, crs, always_xy=True).transform, aoi.segmentize(0.001))
    inside = geometry_mask([aoi_utm], out_shape=(h, w), transform=transform, invert=True)
    usable = inside & np.isfinite(values).all(axis=0)
    proba = model.estimator.predict_proba(values[:, usable].T)
    expected = np.asarray(model.estimator.classes_)[proba.argmax(axis=1)]
    assert usable.sum() > 1000
    np.testing.assert_array_equal(classes_band[usable], expected)
    assert (classes_band[~usable] == 0).all()
    # Percent rounding of a float32 probability may differ by one step at .5 boundaries.
    np.testing.assert_allclose(conf_band[usable], np.clip(np.rint(proba.max(axis=1) * 100), 1, 100), atol=1)
    assert answer["pixels"] == int(usable.sum())
    assert answer["avg_confidence"] == pytest.approx(float(proba.max(axis=1).mean()), abs=1e-5)


def test_multi_tile_aoi_is_one_seamless_mosaic(service: str) -> None:
    r = predict(service, WHOLE_REGION)
    assert r.status_code == 200, r.text
    answer = r.json()
    item = answer["stac_item"]
    tiles = {cid.split("-")[1] for cid in item["properties"]["terracover:composite_items"]}
    assert len(tiles) >= 2, tiles  # crosses lon 0: the UTM 30/31 boundary and two MGRS tiles
    with rasterio.open(_raster(answer)) as out:
        cls = out.read(1)
        assert out.crs.to_epsg() in (32630, 32631)
    aoi = shape(WHOLE_REGION)
    # One mosaic: every pixel of the AOI is classified (composites cover the region), no seam of zeros.
    area_m2 = abs(Geod(ellps="WGS84").geometry_area_perimeter(aoi)[0])
    classified_ha = sum(answer["class_areas_ha"].values())
    assert classified_ha + answer["unclassified_ha"] == pytest.approx(area_m2 / 1e4, rel=0.01)
    assert answer["unclassified_ha"] < 0.02 * classified_ha, answer
    from pyproj import Transformer
    from terracover.grid import transform_xy

    with rasterio.open(_raster(answer)) as out:
        to_out = Transformer.from_crs(4326, out.crs, always_xy=True).transform
        inside = geometry_mask(
            [transform_xy(to_out, aoi.segmentize(0.001))], out_shape=cls.shape, transform=out.transform, invert=True
        )
        # No seam: the columns along lon 0 (the UTM 30/31 and tile border) are as complete as the whole AOI
        # (composites may have no clear observation in places; a seam would be a whole unclassified column).
        border_x, _ = to_out(0.0, (SOUTH + NORTH) / 2)
        border_col = int((border_x - out.transform.c) // 10)
    overall = (cls[inside] > 0).mean()
    for c in range(border_col - 2, border_col + 3):
        column = cls[:, c][inside[:, c]]
        assert len(column) > 50 and (column > 0).mean() >= min(0.9, overall - 0.05), (c, (column > 0).mean())


def test_geojson_format_returns_class_polygons(service: str) -> None:
    r = predict(service, {"type": "Feature", "properties": {}, "geometry": ONE_TILE_AOI}, format="geojson")
    assert r.status_code == 200, r.text
    fc = r.json()["geojson"]
    assert fc["type"] == "FeatureCollection" and fc["features"]
    names = {f["properties"]["class_name"] for f in fc["features"]}
    assert names == set(r.json()["class_areas_ha"])


BOWTIE = {"type": "Polygon", "coordinates": [[[0, 39.95], [0.01, 39.96], [0.01, 39.95], [0, 39.96], [0, 39.95]]]}


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b'{"aoi": {"type": "Polygon", ', 400, "Invalid JSON"),
        ({"aoi": BOWTIE, "year": YEAR}, 400, "invalid"),
        ({"aoi": {"type": "Polygon", "coordinates": []}, "year": YEAR}, 400, "empty"),
        ({"aoi": {"type": "Point", "coordinates": [0, 39.95]}, "year": YEAR}, 400, "Point"),
        ({"aoi": {"type": "FeatureCollection", "features": []}, "year": YEAR}, 400, "no features"),
        ({"aoi": mapping(box(500000, 4400000, 501000, 4401000)), "year": YEAR}, 400, "WGS84"),
        ({"aoi": mapping(box(-1, 39, 1, 41)), "year": YEAR}, 413, "limit"),
        ({"aoi": ONE_TILE_AOI, "year": 2019}, 404, "no model for 2019"),
        ({"aoi": mapping(box(10.0, 45.0, 10.01, 45.01)), "year": YEAR}, 422, "32TNQ"),
        ({"aoi": ONE_TILE_AOI}, 400, "year"),
    ],
    ids=["malformed-json", "bowtie", "empty", "point", "empty-collection", "projected", "too-large",
         "unknown-year", "no-coverage", "missing-year"],
)  # fmt: skip
def test_bad_requests_get_a_4xx_that_says_what_to_fix(
    service: str, body: dict[str, Any] | bytes, status: int, needle: str
) -> None:
    if isinstance(body, bytes):
        r = httpx.post(f"{service}/predict", content=body, headers={"content-type": "application/json"})
    else:
        r = httpx.post(f"{service}/predict", json=body, timeout=60)
    assert r.status_code == status, r.text
    assert needle in r.text, r.text


def _metrics(url: str) -> str:
    return httpx.get(f"{url}/metrics", timeout=30).text


def _sample(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_predictions_confidence_pixels_and_drift(service: str, champion_version: str) -> None:
    before = _metrics(service)
    ok0 = _sample(before, "terracover_predictions_total", status="ok", year=str(YEAR))
    bad0 = _sample(before, "terracover_predictions_total", status="client_error")
    answer = predict(service, ONE_TILE_AOI).json()
    predict(service, BOWTIE)
    after = _metrics(service)
    assert _sample(after, "terracover_predictions_total", status="ok", year=str(YEAR)) == ok0 + 1
    assert _sample(after, "terracover_predictions_total", status="client_error") == bad0 + 1
    assert _sample(after, "terracover_prediction_confidence_count", model_version=champion_version) >= 1
    assert _sample(after, "terracover_pixels_classified_total", model_version=champion_version) >= answer["pixels"]
    assert _sample(after, "terracover_prediction_seconds_count", year=str(YEAR)) >= 1
    assert "terracover_feature_drift_psi{" in after
    assert 'bentoml_service_request_total{endpoint="/predict"' in after


def test_every_prediction_is_a_stac_item_with_provenance(service: str) -> None:
    from terracover.catalog import PREDICTIONS_COLLECTION, open_catalog

    answer = predict(service, ONE_TILE_AOI).json()
    item = open_catalog(settings_now()).get_item(PREDICTIONS_COLLECTION, answer["prediction_id"])
    assert item is not None
    props = item.properties
    assert props["terracover:model"] == answer["model"]
    assert len(props["terracover:dataset_sha256"]) == 64 and props["terracover:training_git_sha"]
    assert props["terracover:serving_git_sha"] == "5e5e" * 10
    rels = {(link.rel, link.href.rsplit("/", 1)[-1]) for link in item.links}
    assert ("derived_from", f"{answer['model']['name']}-v{answer['model']['version']}") in rels
    assert all(("derived_from", cid) in rels for cid in props["terracover:composite_items"])
    assert item.assets["classification"].extra_fields["terracover:key"].endswith(f"{answer['prediction_id']}.tif")
    r = httpx.get(f"{service}{answer['download_path']}", timeout=60)
    assert r.status_code == 200 and r.content[:4] in (b"II*\x00", b"II+\x00")


def test_models_and_readiness_details(service: str, champion_version: str) -> None:
    models = httpx.get(f"{service}/models").json()
    (year,) = [y for y in models["years"] if y["year"] == YEAR]
    assert year["champion"]["version"] == champion_version and year["coverage_bbox"]
    ready = httpx.get(f"{service}/readyz").json()
    assert ready["ready"] and ready["mlflow"]["reachable"] and ready["years"][str(YEAR)]["champion"]


def test_coverage_is_the_served_footprint_and_any_half_km_aoi_inside_gets_a_map(service: str) -> None:
    """GET /coverage answers the union of the year's stack footprints; 0.5 km AOIs drawn at random anywhere
    inside it (also over subtiles whose owner tile has no stack) each get 200 with a map."""
    r = httpx.get(f"{service}/coverage", params={"year": YEAR})
    assert r.status_code == 200, r.text
    footprint = shape(r.json()["geometry"])
    assert footprint.is_valid and footprint.contains(box(WEST + 0.001, SOUTH + 0.001, EAST - 0.001, NORTH - 0.001))
    assert httpx.get(f"{service}/coverage").status_code == 400
    assert httpx.get(f"{service}/coverage", params={"year": 1999}).status_code == 404
    rng = np.random.default_rng(14)
    half_km_lat, half_km_lon = 0.0045, 0.0045 / np.cos(np.radians(SOUTH))
    minx, miny, maxx, maxy = footprint.bounds
    drawn = 0
    while drawn < 6:
        x, y = rng.uniform(minx, maxx - half_km_lon), rng.uniform(miny, maxy - half_km_lat)
        aoi = box(x, y, x + half_km_lon, y + half_km_lat)
        if not footprint.contains(aoi):
            continue
        drawn += 1
        answer = predict(service, mapping(aoi))
        assert answer.status_code == 200, (aoi.bounds, answer.text)
        body = answer.json()
        assert body["pixels"] > 0 and 0 < body["classified_fraction"] <= 1
        assert sum(body["quality_fractions"].values()) == pytest.approx(1, abs=1e-4)
        with rasterio.open(_raster(body)) as src:
            assert src.count == 2 and src.descriptions == ("class", "confidence")


def test_new_champion_is_answered_after_reload_and_shadow_is_scored(service: str, champion_version: str) -> None:
    new = train_and_approve("rf_fast", seed=7)
    assert predict(service, ONE_TILE_AOI).json()["model"]["version"] == champion_version  # not reloaded yet
    assert httpx.post(f"{service}/admin/reload").status_code == 401
    r = httpx.post(f"{service}/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    assert r.status_code == 200 and r.json()["reloaded"], r.text
    assert predict(service, ONE_TILE_AOI).json()["model"]["version"] == new

    shadow = train_and_approve("lgbm", seed=3, shadow=True)
    httpx.post(f"{service}/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    answer = predict(service, ONE_TILE_AOI).json()
    assert answer["model"]["version"] == new and "shadow" not in json.dumps(answer["model"])

    def scored() -> bool:
        return _sample(_metrics(service), "terracover_shadow_agreement_count", shadow_version=shadow) >= 1

    try:
        wait_until(scored, 300, "shadow agreement metric")
    except TimeoutError as exc:  # say what the service exposed, so a failure on a loaded machine can be read
        r = httpx.get(f"{service}/metrics", timeout=60)
        shown = [line for line in r.text.splitlines() if "shadow" in line]
        raise AssertionError(f"{exc}\n/metrics answered {r.status_code}; shadow lines: {shown[:20]}") from exc
    text = _metrics(service)
    assert _sample(text, "terracover_shadow_agreement_sum", champion_version=new, shadow_version=shadow) > 0


def _click_map_until(page: Any, lon: float, lat: float, done: str, shots: Path) -> None:
    """Click the map at ``lon, lat`` once it is still (no zoom or pan under way, so the point computed is the one
    clicked) and wait for the page to show ``done``. A click the page did not take (seen once on a loaded CI
    machine, cause not found) is given again, as a person would, at most three times; then the test fails with
    the page's status and a screenshot."""
    for _ in range(3):
        page.wait_for_function("!map._animatingZoom && !(map._panAnim && map._panAnim._inProgress)", timeout=60_000)
        point = f"map.latLngToContainerPoint([{lat}, {lon}])"
        x, y = page.evaluate(f"(() => {{ const p = {point}; return [p.x, p.y]; }})()")
        box_ = page.locator("#map").bounding_box()
        assert box_ is not None
        page.mouse.click(box_["x"] + x, box_["y"] + y)
        try:
            page.wait_for_selector(done, timeout=20_000)
            return
        except Exception:
            continue
    page.screenshot(path=str(shots / "map-failed.png"))
    raise AssertionError(f"the map did not take a click at {lon, lat}; the page says: {page.inner_text('#status')!r}")


@pytest.mark.browser
def test_browser_draws_an_aoi_and_sees_the_layer(service: str) -> None:
    shots = ARTIFACTS / "serving"
    shots.mkdir(parents=True, exist_ok=True)
    with chromium_page(1200, 800) as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(service + "/")
        page.wait_for_selector(f"#year option[value='{YEAR}']", state="attached")
        page.select_option("#year", str(YEAR))  # other tests register other years on the shared MLflow
        # The year's footprint drawn: the page has fitted its view and no other year's answer will move it.
        page.wait_for_function(f"document.body.dataset.coverage === '{YEAR}'", timeout=120_000)
        # Draw: press Draw, then click two corners inside the covered region.
        corners = [(WEST + 0.002, SOUTH + 0.002), (WEST + 0.010, SOUTH + 0.008)]
        # Zoom to the region first (the page fits all covered subtiles, which other tests may have widened).
        page.evaluate(f"map.fitBounds([[{SOUTH}, {WEST}], [{NORTH}, {EAST}]], {{animate: false}})")
        page.click("#draw")
        # The first corner is taken when the status asks for the opposite one, the second when drawing ends.
        taken = ["#status:text-is('Click the opposite corner.')", "#draw:not(.active)"]
        for (lon, lat), done in zip(corners, taken, strict=True):
            _click_map_until(page, lon, lat, done, shots)
        try:
            page.wait_for_selector("#predict:not([disabled])", timeout=60_000)
        except Exception:
            page.screenshot(path=str(shots / "map-failed.png"))
            raise AssertionError(f"no AOI drawn; the page says: {page.inner_text('#status')!r}") from None
        page.click("#predict")
        try:
            page.wait_for_selector("#result:not([hidden])", timeout=120_000)
        except Exception:
            page.screenshot(path=str(shots / "map-failed.png"))
            raise AssertionError(f"no result; the page says: {page.inner_text('#status')!r}") from None
        # the AOI's map is tiles of the stored COG over the year's imagery (tiles from its stacks), both loaded
        page.wait_for_function(f"(document.body.dataset.classes || '').startsWith('{YEAR}:')", timeout=120_000)
        page.wait_for_function(f"document.body.dataset.imagery === '{YEAR}'", timeout=120_000)
        map_tiles = page.locator(".leaflet-maps-pane img.leaflet-tile-loaded").count()
        imagery_tiles = page.locator(".leaflet-tile-pane img.leaflet-tile-loaded").count()
        filled = page.locator(".leaflet-overlay-pane path").count()
        confidence = page.inner_text("#confidence")
        classified = page.inner_text("#classified")
        page.screenshot(path=str(shots / "map.png"))
        # The quality toggle swaps the class polygons for the quality layer, and back.
        page.check("#show-quality")
        page.wait_for_function("document.body.dataset.layer === 'quality'")
        quality_fills = page.evaluate(
            "Array.from(document.querySelectorAll('.leaflet-overlay-pane path')).map(p => p.getAttribute('fill'))"
        )
        page.screenshot(path=str(shots / "map-quality.png"))
        page.uncheck("#show-quality")
        page.wait_for_function("document.body.dataset.layer === 'classes'")
        coverage_year = page.evaluate("document.body.dataset.coverage")
    assert not errors, errors
    assert filled >= 2  # the AOI outline and the served footprint
    assert map_tiles >= 1 and imagery_tiles >= 1, (map_tiles, imagery_tiles)
    assert confidence.endswith("%") and "observed" in classified, classified
    assert "#1a9641" in quality_fills or "#fdae61" in quality_fills, quality_fills  # observed or gap-filled
    assert coverage_year == str(YEAR)  # the served footprint was fetched and drawn for the selected year


def test_model_cache_keeps_serving_when_mlflow_is_unreachable(
    serving_env: dict[str, str], champion_version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from terracover.serving.models import ModelCache

    from tests.fixtures.procs import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    s = settings_now()
    cache = ModelCache(s)
    assert cache.refresh()
    model = cache.get(YEAR)
    assert model is not None
    cache.settings = s.model_copy(update={"mlflow_tracking_uri": f"http://127.0.0.1:{free_port()}"})
    assert not cache.refresh()
    assert cache.get(YEAR) is model  # still served
    status = cache.status()
    assert status["ready"] and not status["mlflow"]["reachable"] and status["mlflow"]["last_error"]
