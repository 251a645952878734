"""Per-pixel median of valid Sentinel-2 observations: the hot loop of every feature stack.

The kernel reads the uint16 DNs and the SCL codes directly (no float stack with NaNs: 3 bytes per observation
instead of 4-8) and sorts every pixel's time series with a sorting network applied *across a row of pixels*:
each compare-exchange is a vector min/max over contiguous uint16 lanes, so there are no data-dependent
branches and one instruction sorts 16-32 pixels. Invalid observations become the sentinel 0xFFFF, which sorts
after every valid value, so one fixed network serves every pixel whatever its number of valid dates.
There is no per-pixel sort for long series: measured here, the row-vectorised network beat an in-place
per-pixel quickselect at every length tried, from 12 to 384 dates (12x down to 5x).

The result is bit-identical to ``np.nanmedian`` of the masked float stack: DNs are integers below 2**16, so
the mean of the two middle values of an even count, (a + b) / 2, is exact in float32 (and in float64).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache

import numpy as np
from numba import njit, prange
from rasterio.windows import Window

from terracover.bands import REFLECTANCE_SCALE

DEFAULT_BLOCK = 1024
"""Window edge in pixels: 14 bands x 24 dates x 1024² x 2 B ~ 700 MB of DNs at most; aligned to COG tiles."""

_SENTINEL = 0xFFFF
_ROWS_PER_TASK = 8  # rows sharing one scratch buffer inside a parallel task


@lru_cache(maxsize=64)
def batcher_network(n: int) -> np.ndarray:
    """Compare-exchange pairs (i < j) of Batcher's odd-even merge sort for ``n`` keys: read-only (P, 2) int64.

    Built for the next power of two and pruned to pairs inside ``n``: the missing keys act as +inf, so a
    comparator touching them never moves anything.
    """
    if n < 1:
        raise ValueError(f"a sorting network needs at least one key, got {n}")
    size = 1 << max(n - 1, 0).bit_length()
    pairs: list[tuple[int, int]] = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    a, b = i + j, i + j + k
                    if a // (2 * p) == b // (2 * p) and b < n:
                        pairs.append((a, b))
            k //= 2
        p *= 2
    network = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    network.flags.writeable = False  # shared by every caller through the cache
    return network


@njit(cache=True, nogil=True, inline="always")
def _middle(lo: int, hi: int) -> np.float32:
    """(lo + hi) / 2 in float32, as ``np.nanmedian`` does for an even count (lo == hi for an odd one)."""
    return (np.float32(lo) + np.float32(hi)) * np.float32(0.5)


@njit(parallel=True, cache=True, nogil=True)
def _composite_network(
    values: np.ndarray, scl: np.ndarray, lut: np.ndarray, pairs: np.ndarray, out: np.ndarray
) -> None:
    n_bands, n_dates, height, width = values.shape
    n_tasks = (height + _ROWS_PER_TASK - 1) // _ROWS_PER_TASK
    for task in prange(n_tasks):
        scl_ok = np.empty((n_dates, width), dtype=np.uint8)
        buf = np.empty((n_dates, width), dtype=np.uint16)
        count = np.empty(width, dtype=np.int64)
        for r in range(task * _ROWS_PER_TASK, min(height, (task + 1) * _ROWS_PER_TASK)):
            for t in range(n_dates):  # the SCL test once per pixel and date, shared by every band
                for c in range(width):
                    scl_ok[t, c] = lut[scl[t, r, c]]
            for b in range(n_bands):
                count[:] = 0
                for t in range(n_dates):
                    for c in range(width):
                        v = values[b, t, r, c]
                        ok = (scl_ok[t, c] != 0) & (v != 0)
                        buf[t, c] = v if ok else _SENTINEL
                        count[c] += ok
                for k in range(pairs.shape[0]):
                    lo_row = buf[pairs[k, 0]]
                    hi_row = buf[pairs[k, 1]]
                    for c in range(width):
                        x = lo_row[c]
                        y = hi_row[c]
                        lo_row[c] = min(x, y)
                        hi_row[c] = max(x, y)
                for c in range(width):
                    n = count[c]
                    out[b, r, c] = _middle(buf[(n - 1) >> 1, c], buf[n >> 1, c]) if n else np.nan


def composite_bands(values: np.ndarray, scl: np.ndarray, valid_lut: np.ndarray) -> np.ndarray:
    """Median of the valid observations of every band: (B, T, H, W) uint16 + (T, H, W) uint8 -> (B, H, W).

    Valid means ``valid_lut[scl]`` and DN != 0 (L2A nodata). Pixels without a valid date are NaN. The SCL is
    read once per pixel for all bands, which is why the bands come together.
    """
    _check_inputs(values, scl, valid_lut)
    out = np.empty((values.shape[0], *values.shape[2:]), dtype=np.float32)
    lut = np.ascontiguousarray(valid_lut, dtype=np.uint8)
    _composite_network(values, scl, lut, batcher_network(values.shape[1]), out)
    return out


def composite(values: np.ndarray, scl: np.ndarray, valid_lut: np.ndarray) -> np.ndarray:
    """Median of the valid observations of one band: (T, H, W) uint16 + (T, H, W) uint8 -> (H, W) float32."""
    if values.ndim != 3:
        raise ValueError(f"values must be (dates, rows, cols), got shape {values.shape}")
    return composite_bands(values[np.newaxis], scl, valid_lut)[0]


def _check_inputs(values: np.ndarray, scl: np.ndarray, valid_lut: np.ndarray) -> None:
    if values.dtype != np.uint16 or values.ndim != 4:
        raise ValueError(
            f"values must be uint16 DNs shaped (bands, dates, rows, cols), got {values.dtype} {values.shape}"
        )
    if scl.dtype != np.uint8 or scl.shape != values.shape[1:]:
        raise ValueError(
            f"scl must be uint8 shaped {values.shape[1:]} (dates, rows, cols), got {scl.dtype} "
            f"{scl.shape}: resample it onto the bands' grid first"
        )
    if valid_lut.shape != (256,):
        raise ValueError(f"valid_lut must have 256 entries (see bands.valid_scl_lut), got {valid_lut.shape}")
    if values.shape[1] == 0:
        raise ValueError("no dates to composite: the stack's time axis is empty")


def iter_windows(height: int, width: int, block: int = DEFAULT_BLOCK) -> Iterator[Window]:
    """Square windows of at most ``block`` x ``block`` pixels tiling a raster exactly, row-major."""
    if block < 1:
        raise ValueError(f"block must be a positive number of pixels, got {block}")
    for row in range(0, height, block):
        for col in range(0, width, block):
            yield Window(col, row, min(block, width - col), min(block, height - row))


StackReader = Callable[[Window], tuple[np.ndarray, np.ndarray]]


def composite_windows(
    read_stack: StackReader,
    height: int,
    width: int,
    valid_lut: np.ndarray,
    *,
    block: int = DEFAULT_BLOCK,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Composite a whole raster window by window, so memory holds one window's stack at a time.

    ``read_stack(window)`` returns that window's (B, T, h, w) uint16 DNs and (T, h, w) uint8 SCL. ``out`` may
    be a (B, H, W) float32 ``np.memmap`` when even the result must stay off the heap (10980² px x 14 bands).
    """
    for window in iter_windows(height, width, block):
        values, scl = read_stack(window)
        med = composite_bands(values, scl, valid_lut)
        if out is None:
            out = np.empty((med.shape[0], height, width), dtype=np.float32)
        rows, cols = window.toslices()
        out[:, rows, cols] = med
    if out is None:
        raise ValueError(f"nothing to composite: the raster is {height} x {width} pixels")
    return out


def scale_to_reflectance(dn: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """L2A digital numbers to surface reflectance, float32: (DN + offset) x 1e-4, computed in float64.

    ``offset`` is the product's BOA_ADD_OFFSET: 0 before processing baseline 04.00 and -1000 from it on (ESA
    shifted DNs up by 1000 so that dark surfaces keep their negative reflectance instead of clipping at 0).
    The result may therefore be slightly negative; it is not clipped. NaN (no valid observation) stays NaN.
    """
    return ((np.asarray(dn, dtype=np.float64) + offset) * REFLECTANCE_SCALE).astype(np.float32)
