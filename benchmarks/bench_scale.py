"""Continental scale, measured: planning 540 tiles, the object-store read path, and one subtile-year costed.

- ``planning``: the plan functions of ingest_scenes and build_composites for the Iberian box and a 546-tile
  region, in a fresh interpreter (imports included, as in a plan task).
- ``subtile_year``: one full-size subtile-year (1098 x 1098 px, ~70 dates from the simulator, all bands):
  composite + indices + terrain + COG write, from the local folder and from the S3 API (moto server on
  loopback) side by side, with CPU-seconds, the bytes the S3 server sent (what the read path fetched, HTTP
  headers included), the process's read() bytes (local files and the COG writer's temporaries; sockets are not
  counted there), bytes written, the S3 server's own CPU-seconds (moto is Python and shares the machine's
  cores) and the process's peak RSS during the build (what sizes the heavy pod's memory per subtile in
  flight); then the projection for a tile-year, Iberia and 540 tiles (CPU-hours, object-store bytes, wall time
  on N heavy pods). The archive is synthetic (the simulator's), so its compression ratio and cloud cover are
  the simulator's, not Sentinel-2's.

Run ``python -m benchmarks.bench_scale [--repeat 2] [--size 1098]`` (``--size 366``: a quick look).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
IBERIA = (-9.3, 36.0, 3.3, 43.8)
CONTINENT = (-10.0, 36.0, 16.0, 52.0)  # 546 MGRS tiles
ONE_SUBTILE = (-0.357, 39.472, -0.355, 39.474)  # inside 30SYJ r002c002 (1098 px subtiles)
IBERIA_SUBTILES = 9919  # grid.subtiles_for_geometry(IBERIA, 1098), FIELD-NOTES
SUBTILES_PER_TILE = 100  # (10980 / 1098) ** 2
HEAVY_POD_CPUS = 4  # helm-values/pod-templates/heavy-composite.yaml requests
PODS = (10, 50, 200)

_PLAN = """
import json, sys, time
t0 = time.perf_counter()
from terracover import fanout
t1 = time.perf_counter()
bbox = tuple(json.loads(sys.argv[1]))
tiles = fanout.region_tiles(bbox)
ingest = fanout.plan_ingest([2023], tiles)
composites = fanout.plan_composites([2023], tiles, 1098, 0)
t2 = time.perf_counter()
print(json.dumps({"tiles": len(tiles), "ingest_tasks": len(ingest), "composite_tasks": len(composites),
                  "import_s": t1 - t0, "plan_s": t2 - t1}))
"""


def planning() -> dict[str, Any]:
    """Both plans for Iberia and 546 tiles, each in a fresh interpreter (what a plan task pays)."""
    out: dict[str, Any] = {}
    for name, bbox in (("Iberia", IBERIA), ("546 tiles", CONTINENT)):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _PLAN, json.dumps(bbox)], capture_output=True, text=True,
                              check=True, timeout=600, cwd=ROOT)  # fmt: skip
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        res["process_s"] = time.perf_counter() - t0
        out[name] = res
    return out


def format_planning(r: dict[str, Any]) -> str:
    lines = ["Planning (fresh interpreter per region; max_map_length 1,024)",
             "| region | tiles | ingest tasks | composite tasks | plan s | with imports s |",
             "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, v in r.items():
        lines.append(f"| {name} | {v['tiles']} | {v['ingest_tasks']} | {v['composite_tasks']} | {v['plan_s']:.2f} "
                     f"| {v['process_s']:.1f} |")  # fmt: skip
    return "\n".join(lines)


def _rchar() -> int:
    """Bytes this process has read through read()-like calls (files and sockets): /proc/self/io."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def _reset_peak_rss() -> None:
    """Start a new peak-RSS measurement: writing 5 to clear_refs resets the process's VmHWM (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def _peak_rss() -> int:
    """Bytes of the process's peak resident set since the last :func:`_reset_peak_rss` (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _libgdal() -> ctypes.CDLL:
    """The GDAL library rasterio loaded (a wheel's bundled copy or the system's), found in this process's maps."""
    import rasterio  # noqa: F401  (loads GDAL)

    for line in Path("/proc/self/maps").read_text().splitlines():
        path = line.split()[-1]
        if "/libgdal" in path and ".so" in path:
            return ctypes.CDLL(path)
    raise RuntimeError("libgdal is not loaded")


def _network_get() -> dict[str, int]:
    """GDAL's own count of the GET requests of its network file systems and of the bytes they downloaded
    (``CPL_VSIL_NETWORK_STATS_ENABLED``): what the read path fetched from the object store, nothing else."""
    gdal = _libgdal()
    gdal.VSINetworkStatsGetAsSerializedJSON.restype = ctypes.c_void_p
    ptr = gdal.VSINetworkStatsGetAsSerializedJSON(None)
    stats = json.loads(ctypes.string_at(ptr).decode()) if ptr else {}
    gdal.VSIFree(ctypes.c_void_p(ptr))
    get = stats.get("methods", {}).get("GET", {})
    return {"requests": int(get.get("count", 0)), "bytes": int(get.get("downloaded_bytes", 0))}


def _measure(fn: Callable[[], Any], server: Any = None) -> dict[str, float]:
    """Wall, CPU, read() bytes and peak RSS of ``fn`` in this process, and what GDAL fetched over the network;
    with ``server`` (a psutil.Process), also the server's CPU-seconds."""
    _reset_peak_rss()
    os.environ["CPL_VSIL_NETWORK_STATS_ENABLED"] = "YES"
    _libgdal().VSINetworkStatsReset()  # also makes GDAL read the option again
    cpu0 = sum(server.cpu_times()[:2]) if server else 0.0
    r0, c0, t0 = _rchar(), time.process_time(), time.perf_counter()
    fn()
    out = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "read_bytes": _rchar() - r0,
           "peak_rss_bytes": _peak_rss()}  # fmt: skip
    net = _network_get()
    out["fetched_bytes"], out["fetch_requests"] = net["bytes"], net["requests"]
    if server:
        out["server_cpu_s"] = sum(server.cpu_times()[:2]) - cpu0
    return out


def _moto(port: int, log: Path) -> subprocess.Popen[bytes]:
    import httpx

    proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/moto-api/", timeout=2).status_code < 500:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"moto server not ready:\n{log.read_text()[-2000:]}")


SIMULATED_PER_SEASON = 2  # distinct simulated scenes per season; realistic_dates() spreads them over the year


def realistic_dates(items: list[Any], bbox: tuple[float, float, float, float], year: int) -> list[Any]:
    """The simulator's realistic archive for ``bbox`` (every A+B overpass under the cloud filter: ~70 a year on
    the Mediterranean coast) built from a few rendered scenes: each kept date reuses a rendered scene of its
    season. Rendering every date costs minutes on 2 cores; reading, compositing and writing cost the same
    whatever the pixels hold (only the cloud share changes the kernel's work, and it stays realistic)."""
    from terracover.features import SEASONS
    from terracover.simulate import SimulationConfig, plan_scenes

    def season_of(day: Any) -> int:
        return next(i for i, s in enumerate(SEASONS) if s.window(year)[0] <= day <= s.window(year)[1])

    by_season: dict[int, list[Any]] = {}
    for it in items:
        by_season.setdefault(season_of(it.datetime.date()), []).append(it)
    (plan,) = plan_scenes(SimulationConfig(bbox, year))
    out = []
    for n, i in enumerate(plan.kept):
        day = plan.acquisitions[i].day
        clone = by_season[season_of(day)][n % len(by_season[season_of(day)])].clone()
        clone.datetime = clone.datetime.replace(year=day.year, month=day.month, day=day.day)
        clone.id = f"{clone.id.rsplit('_', 3)[0]}_{day:%Y%m%d}_{n}_L2A"
        clone.properties["eo:cloud_cover"] = plan.cloud_cover[i]
        out.append(clone)
    return out


def subtile_year(repeat: int = 2, size: int = 1098) -> dict[str, Any]:
    """One ``size`` x ``size`` subtile-year composited from a folder and from S3, then projected (the projection
    assumes 1098 px subtiles: a smaller ``size`` is for a quick look only)."""
    import socket

    import boto3
    import psutil
    from terracover import grid
    from terracover.catalog import SCENES_COLLECTION
    from terracover.ingest import ingest_scene
    from terracover.keys import stack_key
    from terracover.pipeline import ready_catalog, terrain_for_tile
    from terracover.settings import Settings
    from terracover.simulate import SimulationConfig, simulate_archive
    from terracover.sources import open_scene_source
    from terracover.stacks import build_stack
    from terracover.store import open_store

    year = 2023
    st = grid.subtile_of_point((ONE_SUBTILE[0] + ONE_SUBTILE[2]) / 2, (ONE_SUBTILE[1] + ONE_SUBTILE[3]) / 2, size)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        common = {"home": home, "region_bbox": ONE_SUBTILE, "subtile_size": size, "batch_workers": 1}
        local = Settings(**common)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        archive = simulate_archive(SimulationConfig(ONE_SUBTILE, year, SIMULATED_PER_SEASON, label_points=10),
                                   home / "archive")  # fmt: skip
        simulate_s = time.perf_counter() - t0
        store, catalog = open_store(local), ready_catalog(local)
        source = open_scene_source(local)
        t0 = time.perf_counter()
        for item in realistic_dates(archive.scene_items, ONE_SUBTILE, year):
            ingest_scene(item, ONE_SUBTILE, size, source, store, catalog)
        ingest_s = time.perf_counter() - t0
        terrain_for_tile(st.tile.name, settings=local)
        dates = len(catalog.search(collections=[SCENES_COLLECTION]))
        scene_bytes = sum((Path(store.root) / k).stat().st_size for k in store.list("scenes/"))

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        creds = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
        saved = {k: os.environ.get(k) for k in creds}
        os.environ.update(creds)
        moto = _moto(port, home / "moto.log")
        try:
            endpoint = f"http://127.0.0.1:{port}"
            s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
            s3.create_bucket(Bucket="bench")
            for key in store.list(""):
                if key.startswith(("scenes/", "dem/")):
                    s3.upload_file(str(Path(store.root) / key), "bench", f"data/{key}")
            remote = Settings(**common, store_uri="s3://bench/data", s3_endpoint_url=endpoint)  # type: ignore[arg-type]
            s3_store = open_store(remote)
            server = psutil.Process(moto.pid)
            runs: dict[str, list[dict[str, float]]] = {"local": [], "s3": []}
            for _ in range(repeat):  # alternate, so both see the same machine load
                for name, where in (("local", store), ("s3", s3_store)):
                    build = partial(build_stack, year, st, where, catalog, overwrite=True)
                    runs[name].append(_measure(build, server if name == "s3" else None))
            written = (Path(store.root) / stack_key(year, st)).stat().st_size
        finally:
            moto.terminate()
            moto.wait(30)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    best = {k: min(v, key=lambda r: r["wall_s"]) for k, v in runs.items()}
    return {
        "size": size,
        "server": "moto (Python, on loopback, sharing this machine's cores)",
        "dates": dates,
        "simulate_s": simulate_s,
        "ingest_s": ingest_s,
        "scene_bytes": scene_bytes,
        "written_bytes": written,
        "runs": runs,
        "best": best,
        "s3_over_local": best["s3"]["wall_s"] / best["local"]["wall_s"],
        "projection": project(best["local"]["cpu_s"], best["s3"]["fetched_bytes"], written, scene_bytes),
    }


def project(cpu_s: float, read_bytes: float, written_bytes: float, scene_bytes: float) -> dict[str, Any]:
    """Scale one subtile-year to a tile-year, Iberia and 540 tiles (full tiles: an upper bound over land).
    ``read_bytes``: what one subtile-year fetched from the object store (measured on the S3 server)."""
    out = {}
    for name, subtiles in (("tile-year", SUBTILES_PER_TILE), ("Iberia", IBERIA_SUBTILES),
                           ("540 tiles", 540 * SUBTILES_PER_TILE)):  # fmt: skip
        cpu_h = cpu_s * subtiles / 3600
        out[name] = {
            "subtiles": subtiles,
            "cpu_hours": cpu_h,
            "read_bytes": read_bytes * subtiles,
            "written_bytes": written_bytes * subtiles,
            "copy_mode_extra_bytes": scene_bytes * subtiles,  # copy ingestion writes (then reads) the scenes too
            "wall_hours": {n: cpu_h / (n * HEAVY_POD_CPUS) for n in PODS},
        }
    return out


def _gb(b: float) -> str:
    return f"{b / 1e9:,.1f} GB" if b < 1e12 else f"{b / 1e12:,.2f} TB"


def _gib(run: dict[str, float]) -> str:
    """The run's peak RSS (the whole process: interpreter and imports included), GiB; "-" if not measured."""
    return f"{run['peak_rss_bytes'] / 2**30:.2f} GiB" if run.get("peak_rss_bytes") else "-"


def format_subtile_year(r: dict[str, Any]) -> str:
    lo, s3 = r["best"]["local"], r["best"]["s3"]
    size = r.get("size", 1098)
    lines = [f"One subtile-year, {size} x {size} px, {r['dates']} dates (simulated archive), all bands: composite + "
             f"indices + terrain + COG write (best of the alternated runs; S3 server: {r.get('server', 'moto')})",
             "| store | wall s | CPU s | S3 server CPU s | fetched (GETs) | process read() | bytes written "
             "| peak RSS |", "|---|---:|---:|---:|---:|---:|---:|---:|",
             f"| local folder | {lo['wall_s']:.1f} | {lo['cpu_s']:.1f} | - | - | {_gb(lo['read_bytes'])} "
             f"| {_gb(r['written_bytes'])} | {_gib(lo)} |",
             f"| S3 API | {s3['wall_s']:.1f} | {s3['cpu_s']:.1f} | {s3['server_cpu_s']:.1f} "
             f"| {_gb(s3['fetched_bytes'])} ({s3['fetch_requests']:,}) | {_gb(s3['read_bytes'])} "
             f"| {_gb(r['written_bytes'])} | {_gib(s3)} |",
             f"S3 / local wall time: {r['s3_over_local']:.2f}x (target <= 1.3x). Scene objects of the subtile-year: "
             f"{_gb(r['scene_bytes'])}. Fetched: bytes GDAL downloaded from the S3 API (its network statistics); "
             "process read(): local files and the COG writer's temporaries, never sockets.", "",
             "Projection from the local run's CPU and the S3 run's fetched bytes (CPU s x subtiles; wall on N pods "
             f"of {HEAVY_POD_CPUS} CPUs, perfect packing; 540 tiles counted whole, an upper bound over land)",
             "| scope | subtile-years | CPU-hours | read | written | copy mode adds | wall h, "
             + ", ".join(f"{n} pods" for n in PODS) + " |",
             "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, p in r["projection"].items():
        walls = " / ".join(f"{h:,.1f}" for h in p["wall_hours"].values())
        lines.append(f"| {name} | {p['subtiles']:,} | {p['cpu_hours']:,.1f} | {_gb(p['read_bytes'])} "
                     f"| {_gb(p['written_bytes'])} | {_gb(p['copy_mode_extra_bytes'])} | {walls} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--size", type=int, default=1098, help="subtile size in px (1098: the costed size)")
    p.add_argument("--only-subtile", action="store_true", help="skip the planning section")
    a = p.parse_args()
    if not a.only_subtile:
        print(format_planning(planning()))
    print(format_subtile_year(subtile_year(a.repeat, a.size)))


if __name__ == "__main__":
    main()
