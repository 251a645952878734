"""The simulated archive against Sentinel-2: scenes per tile-year, and what a realistic year costs to simulate.

Sentinel-2A and 2B revisit a tile every 5 days: ~73 overpasses per stack year (December to November), fewer
after a scene cloud-cover filter. The table lists, for the demo region's tiles, the simulator's overpasses and
the scenes kept by the ingestion's filter (``max_cloud_cover``) under each cloud climatology, then the wall and
CPU time of simulating the demo region's scenes: every overpass (the default) against a thin 12-date year
(``dates_per_season=3``, the archive the simulator made before it modelled the revisit).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

SENTINEL2_PER_YEAR = 365 / 5


def _timed(cfg: Any) -> dict[str, float]:
    from terracover.simulate import simulate_scenes

    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), os.times()
        items, _ = simulate_scenes(cfg, Path(tmp))
        c1 = os.times()
    return {
        "scenes": len(items),
        "wall_s": time.perf_counter() - t0,
        "cpu_s": (c1.user - c0.user) + (c1.system - c0.system),
        "load": os.getloadavg()[0],
    }


def run(
    year: int = 2023, climates: tuple[str, ...] = ("mediterranean", "temperate", "atlantic"), timing: bool = True
) -> dict[str, Any]:
    from terracover.settings import get_settings
    from terracover.simulate import SimulationConfig, plan_scenes

    s = get_settings()
    plans = {}
    for climate in climates:
        cfg = SimulationConfig(s.region_bbox, year, climate=climate, max_cloud_cover=s.max_cloud_cover)
        plans[climate] = [p.summary() | {"tile": p.tile} for p in plan_scenes(cfg)]
    out: dict[str, Any] = {"region": list(s.region_bbox), "year": year, "max_cloud_cover": s.max_cloud_cover}
    out["plans"] = plans
    if timing:
        out["timing"] = {
            "12 dates (3 per season)": _timed(
                SimulationConfig(s.region_bbox, year, dates_per_season=3, subtile_size=s.subtile_size)
            ),
            "every overpass": _timed(SimulationConfig(s.region_bbox, year, subtile_size=s.subtile_size)),
        }
    return out


def format_table(r: dict[str, Any]) -> str:
    lines = [
        f"Simulated archive vs Sentinel-2 (A+B, 5-day revisit: ~{SENTINEL2_PER_YEAR:.0f} overpasses per tile-year),"
        f" demo region {r['region']}, stack year {r['year']}, scene filter eo:cloud_cover <= {r['max_cloud_cover']:g}",
        "| climate | tile | relative orbit | overpasses/yr | kept after filter | mean scene cloud % |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for climate, plans in r["plans"].items():
        for p in plans:
            lines.append(
                f"| {climate} | {p['tile']} | {p['relative_orbit']} | {p['acquisitions']} | {p['kept']} |"
                f" {p['mean_cloud_cover']} |"
            )
    if "timing" in r:
        t = r["timing"]
        thin, full = t["12 dates (3 per season)"], t["every overpass"]
        lines += ["", "| simulating the demo region | scenes | wall s | CPU s | load |", "|---|---:|---:|---:|---:|"]
        lines += [
            f"| {k} | {v['scenes']} | {v['wall_s']:.1f} | {v['cpu_s']:.1f} | {v['load']:.1f} |" for k, v in t.items()
        ]
        lines.append(
            f"| ratio | {full['scenes'] / thin['scenes']:.1f}x | {full['wall_s'] / thin['wall_s']:.2f}x |"
            f" {full['cpu_s'] / thin['cpu_s']:.2f}x | |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_table(run()))
