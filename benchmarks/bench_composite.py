"""Seasonal median compositing: our numba kernel against ``np.nanmedian`` (the KHAOS way) and a memory copy.

Run ``python -m benchmarks.bench_composite [--size 1098] [--dates 12 24] [--masked 0.4] [--repeat 3]``.
The stack is synthetic but shaped like a real one: smooth surface reflectance with per-date noise, cloud blobs
with their shadows displaced beside them, some dates clear and some overcast, an orbit edge of nodata on a few
dates. nanmedian gets its float32 stack with NaNs ready-made (its build is not timed, which flatters it); the
kernel reads the uint16 DNs and the SCL. A copy of the kernel's input bytes is the memory-bandwidth bound.
Every result is checked to be identical to nanmedian before it is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numba
import numpy as np
from terracover.bands import (
    BANDS,
    SCL_CLOUD_HIGH,
    SCL_CLOUD_MEDIUM,
    SCL_CLOUD_SHADOW,
    SCL_NO_DATA,
    SCL_NOT_VEGETATED,
    SCL_THIN_CIRRUS,
    SCL_VEGETATION,
    SCL_WATER,
    valid_scl_lut,
)
from terracover.composite import composite, composite_bands
from terracover.gapfill import season_edges

SHADOW_SHIFT = (25, 35)  # rows, cols between a cloud and its shadow (sun elevation ~45 deg, 1 km clouds)


def smooth_field(rng: np.random.Generator, size: int, scale_px: float) -> np.ndarray:
    """Gaussian random field with correlation length ``scale_px``, standardised, float32."""
    noise = np.fft.rfft2(rng.standard_normal((size, size), dtype=np.float32))
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    field = np.fft.irfft2(noise * np.exp(-2 * (np.pi * scale_px) ** 2 * (fx**2 + fy**2)), s=(size, size))
    return ((field - field.mean()) / field.std()).astype(np.float32)


def synthetic_stack(size: int, dates: int, masked: float, bands: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(bands, dates, size, size) uint16 DNs and (dates, size, size) SCL with about ``masked`` invalid."""
    rng = np.random.default_rng(seed)
    surface = smooth_field(rng, size, 40.0)
    scl = np.where(surface < -1.2, SCL_WATER, np.where(surface < 0.3, SCL_VEGETATION, SCL_NOT_VEGETATED))
    scl = np.broadcast_to(scl.astype(np.uint8), (dates, size, size)).copy()
    # per-date cloudiness: mostly a few clear or overcast dates around the target mean
    cover = np.clip(rng.beta(1.2, 1.2 * (1 - masked) / masked, dates), 0.0, 0.97)
    for t in range(dates):
        clouds = smooth_field(rng, size, 25.0)
        thick = clouds > np.quantile(clouds, 1 - cover[t] / 1.35)  # shadows add ~35% to the masked area
        core = clouds > np.quantile(clouds, 1 - cover[t] / 2.7)
        shadow = np.roll(thick, SHADOW_SHIFT, axis=(0, 1)) & ~thick
        scl[t][shadow] = SCL_CLOUD_SHADOW
        scl[t][thick] = np.where(core[thick], SCL_CLOUD_HIGH, SCL_CLOUD_MEDIUM)
        if t % 5 == 1:
            scl[t][clouds < np.quantile(clouds, 0.05)] = SCL_THIN_CIRRUS
        if t % 4 == 3:  # orbit edge
            scl[t][:, : size // 10] = SCL_NO_DATA
    base = 1500 + 900 * surface
    values = np.empty((bands, dates, size, size), dtype=np.uint16)
    for b in range(bands):
        gain = 0.6 + 0.1 * b
        for t in range(dates):
            dn = gain * base + rng.normal(0, 60, (size, size)).astype(np.float32)
            dn[scl[t] >= SCL_CLOUD_MEDIUM] += 5000  # clouds are bright: a wrong mask would show
            values[b, t] = np.clip(dn, 1, 20000)
            values[b, t][scl[t] == SCL_NO_DATA] = 0
    return values, scl


def best_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def nanmedian_stack(values: np.ndarray, scl: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """The KHAOS input: float32 with NaN for every invalid observation."""
    stack = values.astype(np.float32)
    stack[~(lut[scl] & (values != 0))] = np.nan
    return stack


def nanmedian(stack: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels
        return np.nanmedian(stack, axis=0)


def time_nanmedian(values: np.ndarray, scl: np.ndarray, lut: np.ndarray, repeat: int) -> tuple[float, np.ndarray]:
    stack = nanmedian_stack(values, scl, lut)
    return best_time(lambda: nanmedian(stack), repeat), nanmedian(stack)


def copy_inputs(dst: tuple[np.ndarray, ...], src: tuple[np.ndarray, ...]) -> None:
    for d, s in zip(dst, src, strict=True):
        np.copyto(d, s)


def bench_case(size: int, dates: int, masked: float, repeat: int) -> dict[str, Any]:
    lut = valid_scl_lut()
    values, scl = synthetic_stack(size, dates, masked, bands=len(BANDS))
    px = size * size
    invalid = float(1 - (lut[scl] & (values[0] != 0)).mean())

    t_nan, reference = time_nanmedian(values[0], scl, lut, max(1, repeat // 2))

    single = values[0].copy()
    got = composite(single, scl, lut)
    t_one = best_time(lambda: composite(single, scl, lut), repeat)
    got_all = composite_bands(values, scl, lut)
    t_all = best_time(lambda: composite_bands(values, scl, lut), repeat)
    days = list(range(0, 5 * dates, 5))  # a 5-day revisit
    t_fill = best_time(lambda: (composite_bands(values, scl, lut), season_edges(values, scl, lut, days)), repeat)
    identical = np.array_equal(got, reference, equal_nan=True) and np.array_equal(got_all[0], got, equal_nan=True)
    last = len(BANDS) - 1
    identical &= np.array_equal(got_all[last], nanmedian(nanmedian_stack(values[last], scl, lut)), equal_nan=True)
    if not identical:
        raise AssertionError(f"kernel and np.nanmedian disagree ({dates} dates)")

    one, everything = (single, scl), (values, scl)
    copy_one, copy_all = tuple(map(np.empty_like, one)), tuple(map(np.empty_like, everything))
    t_copy_one = best_time(lambda: copy_inputs(copy_one, one), repeat)
    t_copy_all = best_time(lambda: copy_inputs(copy_all, everything), repeat)
    n_bands = len(BANDS)
    return {
        "dates": dates,
        "invalid_fraction": round(invalid, 3),
        "identical": identical,
        "mpx_s": {
            "nanmedian": px / t_nan / 1e6,
            "kernel": px / t_one / 1e6,
            "kernel_14_bands_per_band": n_bands * px / t_all / 1e6,
            "copy_bound": px / t_copy_one / 1e6,
            "copy_bound_14_bands_per_band": n_bands * px / t_copy_all / 1e6,
        },
        "speedup_vs_nanmedian": t_nan / t_one,
        "speedup_14_bands_vs_nanmedian": t_nan / (t_all / n_bands),
        "speedup_14_bands_with_gap_fill_pass_vs_nanmedian": t_nan / (t_fill / n_bands),
        "fraction_of_bound": t_copy_one / t_one,
        "fraction_of_bound_14_bands": t_copy_all / t_all,
    }


def warm_up() -> None:
    """Compile (or load from numba's cache) before anything is timed."""
    rng = np.random.default_rng(0)
    values = rng.integers(0, 10000, (2, 3, 16, 16), dtype=np.uint16)
    scl = rng.integers(0, 12, (3, 16, 16), dtype=np.uint8)
    composite_bands(values, scl, valid_scl_lut())
    season_edges(values, scl, valid_scl_lut(), [0, 5, 10])


def run(size: int = 1098, dates: Sequence[int] = (12, 24), masked: float = 0.4, repeat: int = 3) -> dict[str, Any]:
    """Benchmark every date count; the dict is what ``benchmarks/run.py``-style aggregators collect."""
    warm_up()
    return {
        "benchmark": "composite",
        "size": size,
        "masked_target": masked,
        "repeat": repeat,
        "threads": numba.get_num_threads(),
        "cpus": os.cpu_count(),
        "cases": [bench_case(size, t, masked, repeat) for t in dates],
    }


def format_table(result: dict[str, Any]) -> str:
    size, repeat = result["size"], result["repeat"]
    head = f"composite {size}x{size} px, SYNTHETIC stack, {result['threads']} threads, Mpx/s (best of {repeat})"
    names = (
        "dates",
        "invalid",
        "nanmedian",
        "kernel",
        "x",
        "of bw",
        "14-band/b",
        "x",
        "of bw",
        "bw",
        "bw14/b",
        "+fill x",
    )
    widths = (5, 7, 9, 8, 6, 6, 9, 6, 6, 7, 7, 7)
    lines = [head, " ".join(f"{n:>{w}}" for n, w in zip(names, widths, strict=True))]
    for c in result["cases"]:
        m = c["mpx_s"]
        lines.append(
            f"{c['dates']:>5} {c['invalid_fraction']:>7.0%} {m['nanmedian']:>9.2f} {m['kernel']:>8.1f}"
            f" {c['speedup_vs_nanmedian']:>5.0f}x {c['fraction_of_bound']:>6.0%}"
            f" {m['kernel_14_bands_per_band']:>9.1f} {c['speedup_14_bands_vs_nanmedian']:>5.0f}x"
            f" {c['fraction_of_bound_14_bands']:>6.0%} {m['copy_bound']:>7.0f}"
            f" {m['copy_bound_14_bands_per_band']:>7.0f}"
            f" {c['speedup_14_bands_with_gap_fill_pass_vs_nanmedian']:>6.0f}x"
        )
    lines.append("x = speed-up vs np.nanmedian; of bw = share of a plain copy of the same input bytes; all identical")
    lines.append("+fill x = the 14-band kernel plus gap filling's pass (first/last clear date), per band vs nanmedian")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=1098, help="raster edge in pixels (a subtile: 1098)")
    parser.add_argument("--dates", type=int, nargs="+", default=[12, 24], help="dates per season stack")
    parser.add_argument("--masked", type=float, default=0.4, help="target fraction of invalid observations")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (best is kept)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if not 0 < args.masked < 1:
        parser.error("--masked must be between 0 and 1")
    result = run(args.size, args.dates, args.masked, args.repeat)
    print(format_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
