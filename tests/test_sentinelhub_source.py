"""The Sentinel Hub source with the real `sentinelhub` client against a local stand-in speaking its protocol:
OAuth client-credentials token, Catalog API search (STAC, paginated by ``context.next``) and Process API
(evalscript + bbox + resolution -> GeoTIFF), serving the real 29RKH tile from ../shared/data."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rasterio.windows import from_bounds

from tests.fixtures.procs import free_port, http_ok, wait_until

pytestmark = [pytest.mark.realdata]

ITEM_DIR = "rio_tiler_pds_s2l2a_29RKH/S2A_29RKH_20200219_0_L2A"
CLIENT = ("terracover-test", "s3cret")


def _app(folder: Path) -> object:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    item = json.loads((folder / "S2A_29RKH_20200219_0_L2A.json").read_text())
    # The Catalog API names items by product; its properties carry no grid:code (the source reads the id).
    feature = {**item, "id": "S2A_MSIL2A_20200219T112121_N0214_R037_T29RKH_20200219T121930", "links": []}
    feature["properties"] = {k: v for k, v in item["properties"].items() if not k.startswith(("grid:", "mgrs:"))}
    calls: dict[str, list[object]] = {"token": [], "search": [], "process": []}

    async def token(request: Request) -> Response:
        form = await request.form()
        ok = (form.get("client_id"), form.get("client_secret")) == CLIENT or request.headers.get("authorization")
        calls["token"].append(dict(form))
        if not ok:
            return JSONResponse({"error": "invalid_client"}, 401)
        return JSONResponse({"access_token": "t0k3n", "token_type": "Bearer", "expires_in": 3600})

    def authorised(request: Request) -> bool:
        return request.headers.get("authorization") == "Bearer t0k3n"

    async def search(request: Request) -> Response:
        if not authorised(request):
            return JSONResponse({"error": "unauthorised"}, 401)
        body = await request.json()
        calls["search"].append(body)
        # Page 1 is empty but has a next token: the client must follow context.next.
        if body.get("next") is None:
            return JSONResponse({"type": "FeatureCollection", "features": [feature], "context": {"next": 1}})
        return JSONResponse({"type": "FeatureCollection", "features": [], "context": {}})

    async def process(request: Request) -> Response:
        if not authorised(request):
            return JSONResponse({"error": "unauthorised"}, 401)
        body = await request.json()
        calls["process"].append(body)
        band = re.search(r'bands: \["(\w+)"\]', body["evalscript"]).group(1)  # type: ignore[union-attr]
        bbox = body["input"]["bounds"]["bbox"]
        out = body["output"]
        if "width" not in out:  # resolution given instead of a size
            out = {
                "width": round((bbox[2] - bbox[0]) / out["resx"]),
                "height": round((bbox[3] - bbox[1]) / out["resy"]),
            }
        with rasterio.open(folder / f"{band}.tif") as src:
            assert src.crs.to_epsg() == int(body["input"]["bounds"]["properties"]["crs"].rsplit("/", 1)[-1])
            win = from_bounds(*bbox, transform=src.transform)
            data = src.read(1, window=win, out_shape=(out["height"], out["width"]), resampling=Resampling.nearest,
                            boundless=True, fill_value=0)  # fmt: skip
            profile = {"driver": "GTiff", "height": data.shape[0], "width": data.shape[1], "count": 1,
                       "dtype": "uint16", "crs": src.crs}  # fmt: skip
        with MemoryFile() as mem:
            with mem.open(**profile) as dst:
                dst.write(data, 1)
            return Response(mem.read(), media_type="image/tiff")

    app = Starlette(
        routes=[
            Route("/oauth/token", token, methods=["POST"]),
            Route("/api/v1/catalog/1.0.0/search", search, methods=["POST"]),
            Route("/api/v1/process", process, methods=["POST"]),
        ]
    )
    app.state.calls = calls
    return app


@pytest.fixture
def standin(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, dict[str, list[object]]]]:
    import uvicorn

    app = _app(shared_data / ITEM_DIR)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_ok(f"{url}/oauth/token")() or server.started, 30, "sentinel hub stand-in")
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # plain HTTP is only acceptable on loopback
    try:
        yield url, app.state.calls  # type: ignore[attr-defined]
    finally:
        server.should_exit = True
        thread.join(10)


def test_search_and_read_through_the_sentinelhub_client(
    standin: tuple[str, dict[str, list[object]]], shared_data: Path
) -> None:
    from terracover.sources.base import SceneQuery
    from terracover.sources.sentinelhub import SentinelHubSource

    url, calls = standin
    source = SentinelHubSource(url, *CLIENT)
    query = SceneQuery(
        tiles=("29RKH",), bbox=(-11.6, 24.7, -11.5, 24.78), start=date(2020, 2, 1), end=date(2020, 2, 28),
        max_cloud_cover=20,
    )  # fmt: skip
    items = source.search(query)
    assert [i.properties["s2:mgrs_tile"] for i in items] == ["29RKH"]
    assert len(calls["search"]) == 2, "the client must follow context.next"
    first = calls["search"][0]
    assert first["collections"] == ["sentinel-2-l2a"] and "eo:cloud_cover <= 20" in json.dumps(first)  # type: ignore[index]

    with rasterio.open(shared_data / ITEM_DIR / "B04.tif") as src:
        left, top = src.transform.c + 100 * 100, src.transform.f - 100 * 100  # a 100 m-pixel aligned corner
        truth = src.read(1, window=from_bounds(left, top - 2000, left + 2000, top, transform=src.transform))
    got = source.read_band(items[0], "B04", (left, top - 2000, left + 2000, top), 100.0)
    assert got.dtype == np.uint16 and got.shape == (20, 20)
    np.testing.assert_array_equal(got, truth)
    assert calls["token"], "an OAuth token was fetched"
