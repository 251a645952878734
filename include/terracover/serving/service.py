"""The prediction service: ``bentoml serve terracover.serving.service:LandCover``.

``POST /predict`` classifies a GeoJSON AOI for a year with that year's champion (docs/architecture.md section 3);
``POST /change`` compares two years' maps of an AOI (:mod:`terracover.change`).
Next to it, on the same port: ``GET /models``, ``POST /admin/reload`` (bearer token), ``GET /readyz`` with details,
the map page at ``/`` and downloads of stored predictions; BentoML adds ``/healthz``, ``/livez`` and
``/metrics``. Every answered prediction is a STAC item; a year's ``shadow`` model scores the same pixels after
the answer has been sent.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
from pyproj import Geod
from shapely.geometry import mapping
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from terracover import classes, registry
from terracover.accuracy import area_estimates
from terracover.catalog import COMPOSITES_COLLECTION, open_catalog
from terracover.change import Change, SameYearError, change_item, detect_change, record_change
from terracover.errors import BadRequestError, UnknownYearError, status_of
from terracover.keys import change_key, prediction_key, prediction_quality_key
from terracover.predict import Format, Prediction, classify, predict_aoi, served_footprint, validate_aoi
from terracover.provenance import prediction_item, record
from terracover.registry import SHADOW, LoadedModel
from terracover.serving.metrics import metrics
from terracover.serving.models import ModelCache
from terracover.settings import get_settings, redact_uri
from terracover.store import LocalStore, StoreWriteError, open_store

log = logging.getLogger("terracover.serving")
STATIC = Path(__file__).parent / "static"
_SERVICE: dict[str, LandCover] = {}  # this worker's service instance, for the routes mounted beside the API


def _service() -> LandCover:
    return _SERVICE["instance"]


# --- routes beside the API -------------------------------------------------------------------------------


async def index(_: Request) -> Response:
    """The map page: draw an AOI, pick a year, see the classified layer."""
    return FileResponse(STATIC / "index.html", media_type="text/html")


async def models_view(_: Request) -> Response:
    """Years served, their champion (and shadow) versions, covered area and class legend."""
    return JSONResponse(await _to_thread(_service().models_overview))  # catalog reads stay off the event loop


async def reload_view(request: Request) -> Response:
    """Re-read the model aliases from MLflow now (bearer token TERRACOVER_RELOAD_TOKEN)."""
    svc = _service()
    token = svc.settings.reload_token.get_secret_value()
    if not hmac.compare_digest(request.headers.get("authorization", ""), f"Bearer {token}"):
        return JSONResponse({"error": "a valid 'Authorization: Bearer <TERRACOVER_RELOAD_TOKEN>' is required"}, 401)
    ok = await _to_thread(svc.models.request_reload)
    body = await _to_thread(svc.models_overview)
    return JSONResponse({"reloaded": ok, **body}, status_code=200 if ok else 503)


async def download_view(request: Request) -> Response:
    """A stored prediction's GeoTIFF (a redirect to a presigned URL when the store is S3)."""
    year, name = request.path_params["year"], request.path_params["name"]
    stem = name.removesuffix(".tif")
    pid = stem.removesuffix("_quality")
    if not name.endswith(".tif") or not year.isdigit() or not pid.replace("-", "").isalnum():
        return JSONResponse(
            {"error": "expected /predictions/{year}/{prediction_id}.tif or .../{prediction_id}_quality.tif"}, 400
        )
    svc = _service()
    key = (prediction_quality_key if stem != pid else prediction_key)(int(year), pid)
    if not svc.store.exists(key):
        return JSONResponse({"error": f"no prediction {pid} for {year}"}, 404)
    if isinstance(svc.store, LocalStore):
        return FileResponse(svc.store.path(key), media_type="image/tiff", filename=f"terracover-{year}-{stem}.tif")
    return RedirectResponse(svc.store.url(key))


def _is_id(text: str) -> bool:
    """A prediction or change id: ``{UTC timestamp}-{12 hex}``, ASCII letters, digits and dashes."""
    return bool(text) and text.isascii() and text.replace("-", "").isalnum()


async def change_download_view(request: Request) -> Response:
    """A stored change map's GeoTIFF (a redirect to a presigned URL when the store is S3)."""
    pair, name = request.path_params["pair"], request.path_params["name"]
    cid = name.removesuffix(".tif")
    years = pair.split("-")
    if len(years) != 2 or not all(len(y) == 4 and y.isascii() and y.isdigit() for y in years) or not _is_id(cid):
        return JSONResponse({"error": "expected /changes/{from_year}-{to_year}/{change_id}.tif"}, 400)
    svc = _service()
    key = change_key(int(years[0]), int(years[1]), cid)
    if not svc.store.exists(key):
        return JSONResponse({"error": f"no change map {cid} for {pair}"}, 404)
    if isinstance(svc.store, LocalStore):
        return FileResponse(
            svc.store.path(key), media_type="image/tiff", filename=f"terracover-change-{pair}-{cid}.tif"
        )
    return RedirectResponse(svc.store.url(key))


def _tile_address(request: Request) -> tuple[int, int, int] | None:
    """z, x, y of ``/{z}/{x}/{y}.png`` as integers (None when not plain decimal numbers)."""
    parts = (request.path_params["z"], request.path_params["x"], request.path_params["y"].removesuffix(".png"))
    if not all(p.isascii() and p.isdigit() and len(p) <= 8 for p in parts):
        return None
    z, x, y = (int(p) for p in parts)
    return z, x, y


def _png(png: bytes | None) -> Response:
    """A tile, or 204 where there is nothing to draw (XYZ clients leave the tile empty)."""
    if png is None:
        return Response(status_code=HTTPStatus.NO_CONTENT)
    return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


_BAD_TILE = "expected /{z}/{x}/{y}.png with whole numbers (XYZ tile address, Web Mercator)"


async def truecolour_tile_view(request: Request) -> Response:
    """An XYZ tile (256 px PNG) of a year's true colour from its own feature stacks (``?season=``, zoom >= 10)."""
    from terracover.tiles import DEFAULT_SEASON, stacks_under, true_colour_png

    year, address = request.path_params["year"], _tile_address(request)
    if address is None or not (year.isascii() and year.isdigit() and len(year) == 4):
        return JSONResponse({"error": f"{_BAD_TILE}, after /tiles/truecolour/{{year}}"}, 400)
    svc, season = _service(), request.query_params.get("season", DEFAULT_SEASON)

    def render() -> bytes | None:
        stacks = stacks_under(svc.catalog, int(year), *address)
        return true_colour_png(svc.store, stacks, *address, season=season)

    try:
        return _png(await _render_tile(render))
    except BadRequestError as exc:
        return JSONResponse(exc.body(), status_of(exc) or HTTPStatus.BAD_REQUEST)


async def map_tile_view(request: Request) -> Response:
    """An XYZ tile of a stored prediction or change map in its own colour table."""
    from terracover.tiles import classified_png

    kind, group, mid = request.path_params["kind"], request.path_params["group"], request.path_params["id"]
    address = _tile_address(request)
    years = group.split("-")
    ok_years = all(len(y) == 4 and y.isascii() and y.isdigit() for y in years)
    if address is None or kind not in ("predictions", "changes") or not ok_years or not _is_id(mid):
        return JSONResponse(
            {
                "error": f"{_BAD_TILE}, after /tiles/predictions/{{year}}/{{prediction_id}} or"
                " /tiles/changes/{from_year}-{to_year}/{change_id}"
            },
            400,
        )
    if (kind == "predictions") != (len(years) == 1) or len(years) > 2:
        return JSONResponse({"error": "a prediction is under one year, a change under {from_year}-{to_year}"}, 400)
    key = prediction_key(int(years[0]), mid) if kind == "predictions" else change_key(int(years[0]), int(years[1]), mid)
    svc = _service()
    if not svc.store.exists(key):
        return JSONResponse({"error": f"no stored map {kind}/{group}/{mid}"}, 404)
    try:
        return _png(await _render_tile(classified_png, svc.store, key, *address))
    except BadRequestError as exc:
        return JSONResponse(exc.body(), status_of(exc) or HTTPStatus.BAD_REQUEST)


async def coverage_view(request: Request) -> Response:
    """``GET /coverage?year=``: the exact footprint /predict serves for a year (union of its stack footprints)."""
    year = request.query_params.get("year", "")
    if not year.isdigit():
        return JSONResponse({"error": "give the year as a query parameter: /coverage?year=2023"}, 400)
    body = await _to_thread(_service().coverage_feature, int(year))
    if body is None:
        return JSONResponse({"error": f"no {year} feature stacks: run build_composites for {year}"}, 404)
    return JSONResponse(body)


async def _to_thread(fn: Any, *args: Any) -> Any:
    import anyio

    return await anyio.to_thread.run_sync(fn, *args)


_TILE_THREADS: dict[str, Any] = {}


async def _render_tile(fn: Any, *args: Any) -> Any:
    """Run a tile render in a thread, at most 4 at a time: a map view asks for a dozen tiles at once, and each
    reads rasters; unbounded, they starve the predictions on a small machine."""
    import anyio

    if "limiter" not in _TILE_THREADS:
        _TILE_THREADS["limiter"] = anyio.CapacityLimiter(4)
    return await anyio.to_thread.run_sync(fn, *args, limiter=_TILE_THREADS["limiter"])


web = Starlette(
    routes=[
        Route("/", index),
        Route("/models", models_view),
        Route("/coverage", coverage_view),
        Route("/admin/reload", reload_view, methods=["POST"]),
        Route("/predictions/{year}/{name}", download_view),
        Route("/changes/{pair}/{name}", change_download_view),
        Route("/tiles/truecolour/{year}/{z}/{x}/{y}", truecolour_tile_view),
        Route("/tiles/{kind}/{group}/{id}/{z}/{x}/{y}", map_tile_view),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
)


class ReadinessDetails:
    """``GET /readyz`` as JSON with reasons (MLflow reachable? which models?); 503 until the first model index.

    BentoML's own /readyz answers plain text only, and routes mounted beside the API cannot shadow it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/readyz" and "instance" in _SERVICE:
            status = _service().models.status()
            await JSONResponse(status, status_code=200 if status["ready"] else 503)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class RoutesInOpenApi:
    """``GET /docs.json`` lists the routes mounted beside the API too (``/models``, ``/admin/reload``, ...).

    BentoML documents only its own APIs and FastAPI apps; every Starlette route of :data:`web` is added here
    (path parameters, methods, the handler's docstring), so clients and schema-driven tests see every
    endpoint the service answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/docs.json" and scope["method"] == "GET":
            spec = LandCover.openapi_spec.asdict()  # type: ignore[attr-defined]
            spec["paths"] = {**spec["paths"], **_route_paths()}
            await JSONResponse(spec)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _route_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for route in web.routes:
        if not isinstance(route, Route):
            continue
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in route.param_convertors
        ]
        summary = (route.endpoint.__doc__ or route.name).strip().splitlines()[0]
        responses = {
            "200": {"description": "OK"},
            "4XX": {"description": 'What to fix, as {"error": "..."}'},
            "503": {"description": "Not ready (models not indexed yet, or a reload failed)"},
        }
        paths[route.path] = {
            method.lower(): {"summary": summary, "tags": ["Service APIs"], "parameters": params, "responses": responses}
            for method in sorted((route.methods or {"GET"}) - {"HEAD"})
        }
    return paths


class RequestGuard:
    """413 for request bodies over ``settings.max_request_bytes``, before any of it is parsed; 415 for form
    bodies (the APIs read JSON, and BentoML answers a malformed form with a 500).

    A declared Content-Length is checked up front; a chunked body is read up to the limit and replayed to
    the application, so the API never holds more than the limit of one request in memory."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = get_settings().max_request_bytes
        headers = dict(scope["headers"])
        if headers.get(b"content-type", b"").lower().startswith((b"multipart/", b"application/x-www-form-urlencoded")):
            await JSONResponse(
                {"error": "send the request body as JSON with 'content-type: application/json' (forms are not read)"},
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            )(scope, receive, send)
            return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _too_large(limit)(scope, receive, send)
            return
        if declared is not None:
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                await _too_large(limit)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _too_large(limit: int) -> Response:
    return JSONResponse(
        {
            "error": f"the request body is larger than the {limit:,} bytes allowed (TERRACOVER_MAX_REQUEST_BYTES):"
            " simplify the AOI's geometry or split it into several requests"
        },
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    )


# --- the service -----------------------------------------------------------------------------------------


def _log_to_stderr() -> None:
    """BentoML sets up handlers for its own loggers only: without one, terracover's INFO lines (model loads,
    index changes, shadow agreement) are dropped and its warnings printed bare. One handler, once."""
    logger = logging.getLogger("terracover")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] [%(name)s] %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


@bentoml.service(
    name="terracover",
    workers=get_settings().serving_workers,
    traffic={"timeout": 300},
)
@bentoml.asgi_app(web, path="/")
class LandCover:
    def __init__(self) -> None:
        # A registry outage must cost seconds, not MLflow's default minutes of retries, per refresh.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        _log_to_stderr()
        self.settings = get_settings()
        self.store = open_store(self.settings)
        self.catalog = open_catalog(self.settings)
        self.models = ModelCache(self.settings)
        self.metrics = metrics()
        self.models.refresh()
        self._stop = threading.Event()
        threading.Thread(target=self.models.run_periodic_refresh, args=(self._stop,), daemon=True).start()
        threading.Thread(target=self.models.warm, name="terracover-warm", daemon=True).start()
        self._after = ThreadPoolExecutor(max_workers=1, thread_name_prefix="terracover-shadow")
        # rio-tiler imported once here: tile requests render in threads, and a first import racing in two of
        # them fails with a partially initialised module
        import rio_tiler.io
        import rio_tiler.mosaic
        import rio_tiler.utils  # noqa: F401

        self.git_sha = registry.git_sha()
        _SERVICE["instance"] = self

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        self._stop.set()
        self._after.shutdown(wait=False, cancel_futures=True)

    @bentoml.api(route="/predict")
    def predict(self, aoi: dict[str, Any], year: int, ctx: bentoml.Context, format: Format = "cog") -> dict[str, Any]:
        """Classify a GeoJSON area of interest (Geometry, Feature or FeatureCollection, WGS84) for ``year``.

        Answers the class areas, the mean confidence, a URL of the classified COG and its STAC item; with
        ``format: "geojson"`` also the classes as polygons. Bad input gets a 4xx saying what to fix."""
        t0 = time.perf_counter()
        self.models.check_stamp()
        model: LoadedModel | None = None
        try:
            geom = validate_aoi(aoi, self.settings.max_aoi_km2, settings=self.settings)
            model = self._champion(year)
            shadow = self._shadow(year)
            p = predict_aoi(
                geom,
                year,
                model,
                self.store,
                self.catalog,
                self.settings,
                fmt=format,
                extra_features=shadow.features if shadow else (),
                keep_rows=max(self.settings.drift_sample_px, self.settings.shadow_sample_px),
            )
            item = prediction_item(p, model, self.store, self.git_sha, self._run_link(model))
            estimates = self._area_estimates(p.class_areas_ha, model)
            item.properties["terracover:area_estimates"] = estimates
            stac = record(item, self.catalog)
        except BadRequestError as exc:
            ctx.response.status_code = status_of(exc) or HTTPStatus.BAD_REQUEST
            self.metrics.predictions.labels(str(year), model.version if model else "none", "client_error").inc()
            return exc.body()
        except StoreWriteError as exc:
            log.error("prediction not stored, answered 503: %s", exc)
            self.metrics.predictions.labels(str(year), model.version if model else "none", "error").inc()
            ctx.response.status_code = HTTPStatus.SERVICE_UNAVAILABLE
            ctx.response.headers["Retry-After"] = "30"
            return {"error": "the map could not be stored (object store failed or full); nothing was kept: retry"}
        except Exception:
            self.metrics.predictions.labels(str(year), model.version if model else "none", "error").inc()
            raise
        self._observe(p, model, time.perf_counter() - t0)
        if shadow is not None:
            self._after.submit(self._score_shadow, p, model, shadow)
        answer: dict[str, Any] = {
            "prediction_id": p.prediction_id,
            "year": year,
            "model": {"name": model.name, "version": model.version, "run_id": model.run_id},
            "avg_confidence": round(p.avg_confidence, 6),
            "class_areas_ha": p.class_areas_ha,
            "area_estimates": estimates,
            "unclassified_ha": p.unclassified_ha,
            "pixels": p.pixels,
            "classified_fraction": p.classified_fraction,
            "gap_filled_fraction": p.gap_filled_fraction,
            "quality_fractions": p.quality_fractions,
            "raster_url": self.store.url(p.key),
            "download_path": f"/predictions/{year}/{p.prediction_id}.tif",
            "quality_raster_url": self.store.url(p.quality_key),
            "quality_download_path": f"/predictions/{year}/{p.prediction_id}_quality.tif",
            "stac_item": stac,
            "elapsed_ms": round((time.perf_counter() - t0) * 1000, 1),
        }
        if p.geojson is not None:
            answer["geojson"] = p.geojson
            answer["quality_geojson"] = p.quality_geojson
        return answer

    @bentoml.api(route="/change")
    def change(self, aoi: dict[str, Any], from_year: int, to_year: int, ctx: bentoml.Context) -> dict[str, Any]:
        """What changed in a GeoJSON area of interest between ``from_year`` and ``to_year``, and how sure we are.

        Classifies the AOI with each year's champion on that year's stacks and answers the transition matrix in
        hectares, the changed fraction, a COG of ``from*16+to`` codes and its STAC item; also the share of the
        apparent change that disappears when the ``from_year`` model classifies both years (model change, not
        land change), and each year's area estimates with 95 % intervals. Bad input gets a 4xx saying what
        to fix."""
        t0 = time.perf_counter()
        self.models.check_stamp()
        pair = "unserved"  # metric label: years asked for but not served stay one series, whatever a client sends
        try:
            geom = validate_aoi(aoi, self.settings.max_aoi_km2, settings=self.settings)
            if from_year == to_year:
                raise SameYearError(f"from_year and to_year are both {from_year}: give two different years")
            models = {role: self._champion(year) for role, year in (("from", from_year), ("to", to_year))}
            pair = f"{from_year}-{to_year}"
            ch = detect_change(
                geom, from_year, to_year, models["from"], models["to"], self.store, self.catalog, self.settings
            )
            for role, q in ch.predictions.items():  # the change item's derived_from links resolve to these
                record(
                    prediction_item(q, models["to" if role == "to" else "from"], self.store, self.git_sha), self.catalog
                )
            stac = record_change(change_item(ch, self.store, self.git_sha), self.catalog)
            estimates = {
                role: self._area_estimates(ch.predictions[role].class_areas_ha, models[role]) for role in ("from", "to")
            }
        except BadRequestError as exc:
            ctx.response.status_code = status_of(exc) or HTTPStatus.BAD_REQUEST
            self.metrics.changes.labels(pair, "client_error").inc()
            return exc.body()
        except StoreWriteError as exc:
            log.error("change map not stored, answered 503: %s", exc)
            self.metrics.changes.labels(pair, "error").inc()
            ctx.response.status_code = HTTPStatus.SERVICE_UNAVAILABLE
            ctx.response.headers["Retry-After"] = "30"
            return {"error": "the change map could not be stored (object store failed or full); retry"}
        except Exception:
            self.metrics.changes.labels(pair, "error").inc()
            raise
        self.metrics.changes.labels(pair, "ok").inc()
        self.metrics.changed_fraction.labels(pair).observe(ch.summary.changed_fraction)
        return self._change_answer(ch, estimates, stac, t0)

    # --- helpers ---------------------------------------------------------------------------------------

    def _champion(self, year: int) -> LoadedModel:
        model = self.models.get(year)
        if model is None:
            served = self.models.years()
            raise UnknownYearError(
                f"no model for {year}: years served are {served or 'none yet'}; train and approve a"
                f" landcover-{year} champion (dag train_model) first"
            )
        return model

    def _change_answer(
        self, ch: Change, estimates: dict[str, dict[str, Any] | None], stac: dict[str, Any], t0: float
    ) -> dict[str, Any]:
        def model(m: LoadedModel) -> dict[str, str]:
            return {"name": m.name, "version": m.version, "run_id": m.run_id}

        return {
            "change_id": ch.change_id,
            "from_year": ch.from_year,
            "to_year": ch.to_year,
            "models": {role: model(m) for role, m in ch.models.items()},
            **ch.summary.as_dict(),
            "area_estimates": estimates,
            "predictions": {role: q.prediction_id for role, q in ch.predictions.items()},
            "raster_url": self.store.url(ch.key),
            "download_path": f"/changes/{ch.from_year}-{ch.to_year}/{ch.change_id}.tif",
            "stac_item": stac,
            "elapsed_ms": round((time.perf_counter() - t0) * 1000, 1),
        }

    def _shadow(self, year: int) -> LoadedModel | None:
        try:
            return self.models.get(year, SHADOW)
        except Exception as exc:  # a broken shadow must never affect the answer
            log.warning("shadow model of %d unavailable: %s", year, exc)
            return None

    def _area_estimates(self, class_areas_ha: dict[str, float], model: LoadedModel) -> dict[str, Any] | None:
        """Mapped areas corrected with the model's reference sample (Olofsson et al. 2014), with 95 % intervals
        and the sample's description; None when the model's run has no sample MLflow can give now."""
        sample = self.models.accuracy_sample(model)
        return None if sample is None else area_estimates(class_areas_ha, sample)

    def _run_link(self, model: LoadedModel) -> str | None:
        uri = redact_uri(self.settings.mlflow_tracking_uri, keep_user=False)
        return f"{uri.rstrip('/')}/#/models/{model.name}/versions/{model.version}" if uri.startswith("http") else None

    def _observe(self, p: Prediction, model: LoadedModel, seconds: float) -> None:
        m, y, v = self.metrics, str(p.year), model.version
        m.predictions.labels(y, v, "ok").inc()
        m.confidence.labels(y, v).observe(p.avg_confidence)
        m.classified_fraction.labels(y).observe(p.classified_fraction)
        m.seconds.labels(y).observe(seconds)
        m.pixels.labels(y, v).inc(p.pixels)
        m.models_loaded.labels(y, v).set(1)
        monitor = self.models.drift_monitor(model)
        if monitor is not None:
            scores = monitor.observe(p.rows, p.feature_names)
            if scores is not None:
                for feature, score in zip(monitor.reference.features, scores, strict=True):
                    m.drift.labels(y, feature).set(float(score))

    def _score_shadow(self, p: Prediction, champion: LoadedModel, shadow: LoadedModel) -> None:
        """Classify (a sample of) the champion's pixels with the shadow; export agreement and confidence."""
        try:
            rows, codes = p.rows, p.row_codes
            limit = self.settings.shadow_sample_px
            if len(rows) > limit:
                pick = np.random.default_rng(0).choice(len(rows), limit, replace=False)
                rows, codes = rows[pick], codes[pick]
            cols = [p.feature_names.index(f) for f in shadow.features]
            # Rows were filtered on the champion's columns only: the shadow leaves the ones it cannot see
            # unclassified (code 0), and agreement counts the rows both models classified.
            shadow_codes, shadow_conf = classify(shadow, np.ascontiguousarray(rows[:, cols]))
            both = (shadow_codes > 0) & (codes > 0)
            if not both.any():
                log.info(
                    "shadow %s v%s on %s: no pixel both models classify", shadow.name, shadow.version, p.prediction_id
                )
                return
            agreement = float((shadow_codes[both] == codes[both]).mean())
            y = str(p.year)
            self.metrics.shadow_agreement.labels(y, champion.version, shadow.version).observe(agreement)
            self.metrics.shadow_confidence.labels(y, shadow.version).observe(float(shadow_conf[both].mean()))
            log.info(
                "shadow %s v%s on %s: agreement %.3f with v%s",
                shadow.name,
                shadow.version,
                p.prediction_id,
                agreement,
                champion.version,
            )
        except Exception:
            log.exception("shadow scoring failed for %s", p.prediction_id)

    def coverage_feature(self, year: int) -> dict[str, Any] | None:
        """The served footprint of ``year`` as a GeoJSON Feature (None when the year has no stacks)."""
        footprint = served_footprint(year, self.catalog)
        if footprint is None:
            return None
        area_m2, _ = Geod(ellps="WGS84").geometry_area_perimeter(footprint)
        return {
            "type": "Feature",
            "geometry": mapping(footprint),
            "properties": {"year": year, "area_km2": round(abs(area_m2) / 1e6, 3)},
            "bbox": list(footprint.bounds),
        }

    def models_overview(self) -> dict[str, Any]:
        """Years served, their champion (and shadow) versions, the covered area and the class legend."""
        status = self.models.status()
        coverage: dict[str, list[float]] = {}
        for year in self.models.years():
            items = self.catalog.search(collections=[COMPOSITES_COLLECTION], properties={"terracover:year": year})
            if items:
                b = np.array([i.bbox for i in items if i.bbox])
                coverage[str(year)] = [
                    float(b[:, 0].min()),
                    float(b[:, 1].min()),
                    float(b[:, 2].max()),
                    float(b[:, 3].max()),
                ]
        return {
            "years": [
                {
                    "year": int(y),
                    "champion": {"name": f"landcover-{y}", "version": m["champion"]},
                    "shadow": m["shadow"],
                    "coverage_bbox": coverage.get(y),
                }
                for y, m in status["years"].items()
            ],
            "mlflow_reachable": status["mlflow"]["reachable"],
            "max_aoi_km2": self.settings.max_aoi_km2,
            "classes": [{"code": c.code, "name": c.name, "colour": c.colour} for c in classes.CLASSES],
        }


LandCover.add_asgi_middleware(ReadinessDetails)  # type: ignore[attr-defined]
LandCover.add_asgi_middleware(RequestGuard)  # type: ignore[attr-defined]
LandCover.add_asgi_middleware(RoutesInOpenApi)  # type: ignore[attr-defined]
