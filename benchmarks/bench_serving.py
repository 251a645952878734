"""End-to-end prediction latency and a load test against the real service, with the KHAOS way as baseline.

Setup (all in a temporary home, embedded defaults): a model (``--config``, default ``mlp_hgb``, the champion
configuration: the MLP, fastest at equal accuracy in :mod:`benchmarks.bench_classify`, on complete pixels and
HistGradientBoosting on pixels with missing features) of the 15 KHAOS features trained on that synthetic table,
registered in MLflow (SQLite) and approved by the benchmark operator; feature stacks (COG, 1098 px subtiles)
for a 2 x 2 subtile area whose pixels are test rows arranged in smooth class patches; ``bentoml serve`` with
2 workers.

- **e2e**: ``POST /predict`` for a 10 km x 10 km AOI (1e6 px) and a ~50,000 px AOI: p50/p95 over repeats.
- **baseline** (how KHAOS served): for every request, read each needed band raster of the whole tile, crop
  to the AOI, classify with KHAOS's model (RandomForest, 100 full-depth trees) in one ``predict_proba`` call,
  write a GeoTIFF. The full 10980 x 10980 tile per band is a VRT repeating the 22 km of real stacks 5 x 5
  times through distinct file names (every block decoded, as for a real tile; no 7 GB on disk).
- **load**: 1000 requests of random polygons (3-12 vertices, 0.5-400 ha) over the covered area from N
  concurrent asyncio clients: throughput, latency percentiles, failures.

``python -m benchmarks.bench_serving [--requests 1000] [--clients 4]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pyproj import Transformer
from shapely.geometry import Polygon, box, mapping

from benchmarks.bench_classify import KHAOS_FEATURES, synthetic_table

ROOT = Path(__file__).resolve().parent.parent
YEAR = 2023
CENTRE = (-0.60, 39.45)  # inside one UTM zone (30) and one MGRS tile


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _smooth_labels(rng: np.random.Generator, shape: tuple[int, int], classes: int, scale: int = 40) -> np.ndarray:
    coarse = rng.integers(0, classes, (shape[0] // scale + 2, shape[1] // scale + 2))
    return np.kron(coarse, np.ones((scale, scale), dtype=np.int64))[: shape[0], : shape[1]]


def prepare(home: Path, config: str) -> dict[str, Any]:
    """Model in MLflow, stacks and baseline band rasters; returns what the runs need."""
    os.environ["TERRACOVER_HOME"] = str(home)
    from terracover import grid, registry
    from terracover.catalog import open_catalog
    from terracover.cog import write_cog
    from terracover.dataset import META
    from terracover.evaluate import evaluate_model
    from terracover.settings import get_settings
    from terracover.store import open_store
    from terracover.train import train

    from tests.synthetic_stacks import write_stack

    get_settings.cache_clear()
    s = get_settings()
    table = synthetic_table()
    filler: dict[str, Any] = {"lon": 0.0, "lat": 0.0, "year": YEAR, "tile": "t", "subtile": "s", "row": 0, "col": 0}
    table = table.assign(point_id=[f"p{i}" for i in range(len(table))], **filler)[[*META, *KHAOS_FEATURES]]
    trained = train(table, config, features=KHAOS_FEATURES, seed=0)
    ev = evaluate_model(trained.estimator, table, trained.features)
    khaos = train(table, "rf_full", features=KHAOS_FEATURES, seed=0)  # the baseline's model
    khaos_accuracy = evaluate_model(khaos.estimator, table, khaos.features).overall_accuracy
    reg = registry.open_registry(s)
    ref = registry.log_and_register(
        reg, trained, ev, table_uri=f"{s.store_uri}/datasets/{YEAR}/bench.parquet", dataset_sha256="0" * 64,
        year=YEAR, dag_run_id="benchmark",
    )  # fmt: skip
    response = {"chosen_options": ["Approve"], "responded_by_user": {"name": "benchmark operator"},
                "responded_at": datetime.now(UTC)}  # fmt: skip
    registry.approve(reg, ref, registry.Approval.from_hitl_response(response))

    store, catalog = open_store(s), open_catalog(s)
    lon, lat = CENTRE
    area = box(lon - 0.12, lat - 0.10, lon + 0.12, lat + 0.10)
    subs = grid.subtiles_for_geometry(area, s.subtile_size)
    test = table[table.split == "test"]
    rows_by_class = [
        test[test.class_code == c][KHAOS_FEATURES].to_numpy(np.float32) for c in sorted(test.class_code.unique())
    ]
    rng = np.random.default_rng(0)
    for st in subs:
        write_stack(store, catalog, YEAR, st, KHAOS_FEATURES)
        labels = _smooth_labels(rng, st.shape, len(rows_by_class))
        values = np.empty((len(KHAOS_FEATURES), *st.shape), dtype=np.float32)
        for k, rows in enumerate(rows_by_class):
            where = labels == k
            values[:, where] = rows[rng.integers(0, len(rows), int(where.sum()))].T
        from terracover.keys import stack_key
        from terracover.stacks import STACK_TILE_PX

        with store.writer(stack_key(YEAR, st), suffix=".tif") as path:
            write_cog(
                path, values, st.transform, st.crs, nodata=float("nan"), descriptions=KHAOS_FEATURES,
                blocksize=STACK_TILE_PX,  # the production stacks' tiling (terracover.stacks)
            )  # fmt: skip
    baseline_dir = home / "khaos-tile"
    _write_baseline_tile(baseline_dir, subs, store)
    return {
        "area": area, "subtiles": len(subs), "baseline_dir": baseline_dir, "model_version": ref.version,
        "khaos_estimator": khaos.estimator, "accuracy": ev.overall_accuracy, "khaos_accuracy": khaos_accuracy,
    }  # fmt: skip


TILE_PX = 10980  # a Sentinel-2 tile at 10 m


def _write_baseline_tile(out: Path, subs: list[Any], store: Any) -> None:
    """Per feature, a full-tile raster (10980 x 10980 px) as KHAOS read whole on every request.

    The real data covers the 2 x 2 subtile area; the rest of the tile repeats it: a VRT of 5 x 5 sources,
    each a distinct file name (symlinks to the one GeoTIFF) so GDAL decodes every block as it would for a
    real tile instead of serving repeats from its block cache. The rasters hold feature values, indices
    included, so the baseline skips computing its five indices: that flatters it a little."""
    import rasterio
    from rasterio.merge import merge

    out.mkdir(parents=True, exist_ok=True)
    from terracover.keys import stack_key

    srcs = [rasterio.open(store.path(stack_key(YEAR, st))) for st in subs]
    mosaic, transform = merge(srcs)
    crs = srcs[0].crs
    for src in srcs:
        src.close()
    for k, name in enumerate(KHAOS_FEATURES):
        profile = {"driver": "GTiff", "height": mosaic.shape[1], "width": mosaic.shape[2], "count": 1,
                   "dtype": "float32", "crs": crs, "transform": transform, "compress": "deflate"}  # fmt: skip
        with rasterio.open(out / f"{name}.tif", "w", **profile) as dst:
            dst.write(mosaic[k], 1)
        _tile_vrt(out, name, mosaic.shape[1:], transform, crs)


def _tile_vrt(out: Path, name: str, shape: tuple[int, ...], transform: Any, crs: Any) -> None:
    h, w = int(shape[0]), int(shape[1])
    reps = math.ceil(TILE_PX / min(h, w))
    sources = []
    for i in range(reps):
        for j in range(reps):
            link = out / f"{name}.{i}_{j}.tif"
            if not link.exists():
                link.symlink_to(out / f"{name}.tif")
            sources.append(
                f'<SimpleSource><SourceFilename relativeToVRT="1">{link.name}</SourceFilename><SourceBand>1'
                f'</SourceBand><SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/><DstRect xOff="{j * w}"'
                f' yOff="{i * h}" xSize="{w}" ySize="{h}"/></SimpleSource>'
            )
    gt = ", ".join(str(v) for v in (transform.c, transform.a, 0.0, transform.f, 0.0, transform.e))
    (out / f"{name}.vrt").write_text(
        f'<VRTDataset rasterXSize="{TILE_PX}" rasterYSize="{TILE_PX}"><SRS>{crs.to_wkt()}</SRS>'
        f"<GeoTransform>{gt}</GeoTransform>"
        f'<VRTRasterBand dataType="Float32" band="1">{"".join(sources)}</VRTRasterBand></VRTDataset>'
    )


def khaos_predict(aoi: Polygon, baseline_dir: Path, estimator: Any, out: Path) -> float:
    """The baseline request: full-tile reads, crop, indices, one predict_proba, GeoTIFF write. Returns seconds."""
    import rasterio
    from rasterio.windows import from_bounds

    t0 = time.perf_counter()
    layers = []
    transform = None
    profile: dict[str, Any] = {}
    for name in KHAOS_FEATURES:
        with rasterio.open(baseline_dir / f"{name}.vrt") as src:
            full = src.read(1)  # KHAOS read every band raster whole, then cropped
            to = Transformer.from_crs(4326, src.crs, always_xy=True).transform
            b = Polygon([to(x, y) for x, y in aoi.exterior.coords]).bounds
            win = from_bounds(*b, transform=src.transform).round_offsets().round_lengths()
            r0, c0 = int(win.row_off), int(win.col_off)
            crop = full[r0 : r0 + int(win.height), c0 : c0 + int(win.width)]
            layers.append(crop)
            transform = src.window_transform(win)
            profile = {"crs": src.crs}
    x = np.stack(layers).reshape(len(layers), -1).T
    proba = estimator.predict_proba(x)
    cls = estimator.classes_[proba.argmax(axis=1)].astype(np.uint8).reshape(layers[0].shape)
    with rasterio.open(out, "w", driver="GTiff", height=cls.shape[0], width=cls.shape[1], count=1, dtype="uint8",
                       crs=profile["crs"], transform=transform, compress="deflate") as dst:  # fmt: skip
        dst.write(cls, 1)
    return time.perf_counter() - t0


@contextmanager
def service(home: Path, workers: int = 2) -> Any:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    # its own BENTOML_HOME: a `bentoml serve` starting elsewhere empties a shared one's metrics directory
    env = {**os.environ, "TERRACOVER_HOME": str(home), "TERRACOVER_SERVING_WORKERS": str(workers),
           "BENTOML_HOME": str(home / "bentoml"),
           "BENTOML_DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true",
           "PYTHONPATH": f"{ROOT / 'include'}:{os.environ.get('PYTHONPATH', '')}"}  # fmt: skip
    log = (home / "serving.log").open("wb")
    bento = str(Path(sys.executable).parent / "bentoml")
    proc = subprocess.Popen(
        [bento, "serve", "terracover.serving.service:LandCover", "--host", "127.0.0.1", "--port", str(port)],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        for _ in range(180):
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        else:
            raise RuntimeError(f"service did not start; see {home / 'serving.log'}")
        yield url
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)


def square(lon: float, lat: float, side_m: float) -> Polygon:
    dlat = side_m / 2 / 111_320
    dlon = dlat / math.cos(math.radians(lat))
    return box(lon - dlon, lat - dlat, lon + dlon, lat + dlat)


def random_polygon(rng: np.random.Generator, area: Polygon) -> Polygon:
    """A star-shaped polygon of 3-12 vertices and 0.5-400 ha inside ``area`` (KHAOS-test-like AOIs)."""
    ha = float(np.exp(rng.uniform(np.log(0.5), np.log(400))))
    radius_m = math.sqrt(ha * 1e4 / math.pi)
    minx, miny, maxx, maxy = area.buffer(-0.02).bounds
    lon, lat = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
    n = int(rng.integers(3, 13))
    angles = np.sort(rng.uniform(0, 2 * math.pi, n))
    radii = radius_m * rng.uniform(0.6, 1.4, n)
    pts = [(lon + r * math.cos(a) / (111_320 * math.cos(math.radians(lat))), lat + r * math.sin(a) / 111_320)
           for a, r in zip(angles, radii, strict=True)]  # fmt: skip
    poly = Polygon(pts)
    return poly if poly.is_valid and poly.area > 0 else square(lon, lat, 2 * radius_m)


def latency(url: str, aoi: Polygon, repeat: int) -> dict[str, Any]:
    """p50/p95 of sequential requests from one client session, as the load test's clients and any real client
    send them: a bare ``httpx.post`` builds a new client, TLS context included, per call (~40 ms here, for a
    plain-HTTP request), which is the benchmark's own cost, not the service's."""
    times, pixels = [], 0
    with httpx.Client(timeout=600) as client:
        for _ in range(repeat):
            t0 = time.perf_counter()
            r = client.post(f"{url}/predict", json={"aoi": mapping(aoi), "year": YEAR})
            times.append(time.perf_counter() - t0)
            r.raise_for_status()
            pixels = r.json()["pixels"]
    return {"pixels": pixels, "p50_s": float(np.percentile(times, 50)), "p95_s": float(np.percentile(times, 95)),
            "repeat": repeat}  # fmt: skip


async def _load(url: str, aois: list[Polygon], clients: int) -> dict[str, Any]:
    queue: asyncio.Queue[Polygon] = asyncio.Queue()
    for a in aois:
        queue.put_nowait(a)
    lat: list[float] = []
    failures: list[str] = []

    async def client() -> None:
        async with httpx.AsyncClient(timeout=600) as c:
            while not queue.empty():
                aoi = queue.get_nowait()
                t0 = time.perf_counter()
                try:
                    r = await c.post(f"{url}/predict", json={"aoi": mapping(aoi), "year": YEAR})
                    if r.status_code != 200:
                        failures.append(f"{r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                lat.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - t0
    p50, p95, p99 = (float(v) for v in np.percentile(lat, [50, 95, 99]))
    return {
        "requests": len(aois), "clients": clients, "seconds": wall, "throughput_rps": len(aois) / wall,
        "p50_s": p50, "p95_s": p95, "p99_s": p99, "failures": len(failures), "failure_examples": failures[:3],
    }  # fmt: skip


def run(requests: int = 1000, clients: int = 4, repeat: int = 5, config: str = "mlp_hgb") -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tc-bench-") as tmp:
        home = Path(tmp)
        t0 = time.perf_counter()
        setup = prepare(home, config)
        setup_s = time.perf_counter() - t0
        khaos = setup["khaos_estimator"]
        lon, lat = CENTRE
        big, small = square(lon, lat, 10_000), square(lon, lat, 2_240)
        with service(home) as url:
            httpx.post(f"{url}/predict", json={"aoi": mapping(small), "year": YEAR}, timeout=600)  # load the model
            e2e_big = latency(url, big, repeat)
            e2e_small = latency(url, small, repeat * 4)
            rng = np.random.default_rng(42)
            load = asyncio.run(_load(url, [random_polygon(rng, setup["area"]) for _ in range(requests)], clients))
        # Two runs each (the baseline is slow); the faster one counts.
        base = sorted(khaos_predict(big, setup["baseline_dir"], khaos, home / "k.tif") for _ in range(2))
        base_small = sorted(khaos_predict(small, setup["baseline_dir"], khaos, home / "k.tif") for _ in range(2))
    return {
        "setup_seconds": setup_s,
        "model": {"config": config, "test_accuracy": setup["accuracy"], "khaos_test_accuracy": setup["khaos_accuracy"]},
        "e2e_10km": {**e2e_big, "baseline_p50_s": base[0], "ratio": base[0] / e2e_big["p50_s"]},
        "e2e_50k": {**e2e_small, "baseline_p50_s": base_small[0], "ratio": base_small[0] / e2e_small["p50_s"]},
        "load": load,
    }


def format_table(r: dict[str, Any]) -> str:
    lines = [
        f"End-to-end POST /predict on SYNTHETIC feature stacks (test rows of the synthetic 9-class table) "
        f"({r['model']['config']}, accuracy {r['model']['test_accuracy']:.3f}, 2 workers) vs the KHAOS way"
        f" (full-tile reads, RandomForest(100, full depth), accuracy"
        f" {r['model']['khaos_test_accuracy']:.3f})",
        "| AOI | pixels | p50 s | p95 s | KHAOS-way best s | x baseline |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, label in (("e2e_50k", "2.24 km square"), ("e2e_10km", "10 km square")):
        e = r[key]
        lines.append(f"| {label} | {e['pixels']:,} | {e['p50_s']:.3f} | {e['p95_s']:.3f} | {e['baseline_p50_s']:.3f} |"
                     f" {e['ratio']:.1f} |")  # fmt: skip
    ld = r["load"]
    lines += ["", f"Load test: {ld['requests']} random polygons (0.5-400 ha), {ld['clients']} concurrent clients",
              "| throughput req/s | p50 s | p95 s | p99 s | failures |", "|---:|---:|---:|---:|---:|",
              f"| {ld['throughput_rps']:.1f} | {ld['p50_s']:.3f} | {ld['p95_s']:.3f} | {ld['p99_s']:.3f} |"
              f" {ld['failures']} |"]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--config", default="mlp_hgb")
    a = p.parse_args()
    res = run(a.requests, a.clients, config=a.config)
    print(format_table(res))
    print(json.dumps(res, indent=1, default=str))
