"""Writing Cloud-Optimized GeoTIFFs the same way everywhere (scenes, feature stacks, predictions).

A COG can only be made by copying a finished raster (GDAL's COG driver has no random-access writer), so the
raster is first assembled in a tiled, uncompressed GeoTIFF on disk next to the destination, then copied. That
temporary is what keeps memory flat: a 1098 px feature stack (~100 float32 bands, 0.5 GB) is written block by
block as it is computed (:func:`cog_writer`) and never held whole, where an in-memory assembly cost four copies
of it at once (the array, an in-memory GeoTIFF, its read-back and the driver's own temporary). An array that is
already whole in memory and small (:func:`write_cog`, up to :data:`IN_MEMORY_BYTES`) is copied from one
in-memory (MEM) raster instead: the same bytes, without writing, checking and re-reading the temporary.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
import rasterio.errors
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.io import MemoryFile

if TYPE_CHECKING:
    from rasterio.io import DatasetWriter

# zstd + predictor costs ~3x the write time of uncompressed but a fraction of the bytes (docs/architecture.md
# section 5); the stacks are written once and read many times, so smaller objects win.
_PREDICTOR = {np.dtype("float32"): 3, np.dtype("float64"): 3}
# GDAL's block cache while writing and reading back: dirty blocks of the temporary are flushed to disk past
# this, so a write's memory does not grow with the raster (GDAL's default is 5 % of the host's RAM, not the
# pod's; a read-back outside it cached the whole stack, +0.8 GB). The COG copy reads the band-interleaved
# temporary one strip of all bands at a time (a 107-band 1098 px stack with 128 px tiles: 60 MB a strip), so a
# cache of about one strip re-reads it: measured on such a stack (idle 2-core machine, same bytes written),
# 64 MB read the temporary 11.6 GB in 17.0 s wall, 256 MB 4.0 GB in 13.7 s (0.79x wall, 0.84x CPU, +96 MiB).
WRITE_CACHE_BYTES = 256 * 2**20
# write_cog assembles arrays up to this size in memory (one more copy of at most this much) instead of on disk.
IN_MEMORY_BYTES = 64 * 2**20
# zstd's level: 9 for what is written once and read often. Level 1 writes ~5x faster for ~7 % more bytes on
# noisy uint16 reflectance (a 2196 x 1098 px scene band: 17 ms and 3.32 MB against 90 ms and 3.09 MB; without
# the predictor 13 ms and 3.50 MB).
ZSTD_LEVEL = 9
# The level for rasters written while a client waits (a prediction's map): a 1000 x 1000 two-band uint8 map
# compresses in ~20 ms at level 1 against ~80 ms at level 9, for ~6 % more bytes (decoding costs the same).
FAST_LEVEL = 1


@contextlib.contextmanager
def cog_writer(
    path: Path,
    count: int,
    height: int,
    width: int,
    dtype: str | np.dtype[Any],
    transform: Affine,
    crs: CRS | str | int,
    nodata: float | None,
    descriptions: Sequence[str] | None = None,
    tags: Mapping[str, str] | None = None,
    blocksize: int = 512,
    overviews: bool = True,
    threads: int | str = "ALL_CPUS",
    overview_resampling: str | None = None,
    level: int = ZSTD_LEVEL,
    in_memory: bool = False,
    predictor: bool = True,
) -> Iterator[DatasetWriter]:
    """Yield a dataset to fill by window (``dst.write(block, window=...)``); when the block completes, it is
    copied to a COG at ``path`` (a local path: callers publish it to the object store atomically,
    ``ObjectStore.writer``) and read back. Memory stays at GDAL's write cache whatever the raster's size, plus
    what the COG driver's overview and compression ``threads`` hold: each works on a strip of all bands (for a
    107-band 1098 px stack, ~1 GB with one thread and ~1.6 GB with ``ALL_CPUS``, measured). The bytes written
    do not depend on ``threads``. ``overview_resampling`` overrides the COG driver's default (cubic, nearest
    for a paletted band). ``in_memory`` assembles the raster in memory instead (small rasters only).
    ``predictor``: TIFF's floating-point predictor for floats, horizontal differencing otherwise; or none."""
    dt = np.dtype(dtype)
    parts = path.with_name(f"{path.name}.parts.tif")  # same folder: the writer's temporary directory
    cog_options: dict[str, Any] = {
        "compress": "ZSTD",
        "level": level,
        "predictor": _PREDICTOR.get(dt, 2) if predictor else "NO",  # the COG driver's word for none
        "blocksize": blocksize,
        "overviews": "AUTO" if overviews else "NONE",
        "num_threads": str(threads),
        "BIGTIFF": "IF_SAFER",
    }
    if overview_resampling is not None:
        cog_options["overview_resampling"] = overview_resampling
    profile: dict[str, Any] = {
        "width": width,
        "height": height,
        "count": count,
        "dtype": dt.name,
        "crs": CRS.from_user_input(crs),
        "transform": transform,
        "nodata": nodata,
    }
    try:
        with rasterio.Env(GDAL_CACHEMAX=WRITE_CACHE_BYTES):
            if in_memory:
                with MemoryFile() as mem, mem.open(driver="MEM", **profile) as dst:
                    _describe(dst, descriptions, tags)
                    yield dst
                    rasterio.shutil.copy(dst, path, driver="COG", **cog_options)
                _check_layout(path, count, "COG")
            else:
                with rasterio.open(
                    parts,
                    "w",
                    driver="GTiff",
                    **profile,
                    tiled=True,
                    blockxsize=blocksize,
                    blockysize=blocksize,
                    interleave="band",
                    BIGTIFF="IF_NEEDED",
                ) as dst:
                    _describe(dst, descriptions, tags)
                    yield dst
                _check_layout(parts, count, "temporary")
                rasterio.shutil.copy(parts, path, driver="COG", **cog_options)
                parts.unlink()
                _check_complete(path, count)
    finally:
        parts.unlink(missing_ok=True)


def _describe(dst: DatasetWriter, descriptions: Sequence[str] | None, tags: Mapping[str, str] | None) -> None:
    for i, desc in enumerate(descriptions or [], start=1):
        dst.set_band_description(i, desc)
    if tags:
        dst.update_tags(**tags)


def write_cog(
    path: Path,
    data: np.ndarray,
    transform: Affine,
    crs: CRS | str | int,
    nodata: float | None,
    descriptions: Sequence[str] | None = None,
    colormap: Mapping[int, tuple[int, int, int, int]] | None = None,
    tags: Mapping[str, str] | None = None,
    band_tags: Sequence[Mapping[str, str]] | None = None,
    blocksize: int = 512,
    overviews: bool = True,
    threads: int | str = "ALL_CPUS",
    level: int = ZSTD_LEVEL,
    predictor: bool = True,
) -> Path:
    """Write a (bands, rows, cols) or (rows, cols) array as a COG at ``path`` (see :func:`cog_writer`); arrays
    up to :data:`IN_MEMORY_BYTES` are assembled in memory, larger ones on disk."""
    arr = data[np.newaxis] if data.ndim == 2 else data
    count, height, width = arr.shape
    small = arr.nbytes <= IN_MEMORY_BYTES
    with cog_writer(
        path, count, height, width, arr.dtype, transform, crs, nodata, descriptions, tags, blocksize, overviews,
        threads, level=level, in_memory=small, predictor=predictor,
    ) as dst:  # fmt: skip
        dst.write(arr)
        for i, bt in enumerate(band_tags or [], start=1):
            dst.update_tags(i, **bt)
        if colormap is not None:
            dst.write_colormap(1, dict(colormap))
    return path


def _check_layout(path: Path, count: int, what: str) -> None:
    """Every tile of every band of ``path`` lies inside the file, read from the TIFF's tile index without
    decoding a pixel. On the temporary: GDAL flushes its cache to the file on eviction and at close and only
    logs a failed flush (a full disk); a missing tile then reads back as nodata, and the COG copied from it would
    be complete but wrong. On a COG copied from memory it stands for the read-back (:func:`_check_complete`),
    which cost as much as the write: a COG puts the full-resolution tiles last, so a copy cut short anywhere
    leaves some of them past the end of the file."""
    try:
        size = path.stat().st_size
        with rasterio.open(path) as src:
            if src.count != count:
                raise OSError(f"{count} bands written, {src.count} readable")
            for band in range(1, count + 1):
                for (row, col), _ in src.block_windows(band):
                    offset = src.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=band)
                    length = src.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=band)
                    if not offset or not length or int(offset) + int(length) > size:
                        raise OSError(f"band {band} tile ({row}, {col}) was not written")
    except (OSError, rasterio.errors.RasterioError) as exc:
        raise OSError(f"the {what} written to {path} is incomplete ({exc}): is the disk full?") from exc


def _check_complete(path: Path, count: int) -> None:
    """Read the COG back, one tile of all bands at a time (the tiles interleave the bands: reading band by band
    would decompress every tile once per band): GDAL reports some write failures (a full disk while the COG
    driver copies its layout into place) only as log lines, leaving a truncated file that must never be
    published."""
    try:
        with rasterio.open(path) as src:
            if src.count != count:
                raise OSError(f"{count} bands written, {src.count} readable")
            for _, window in src.block_windows(1):
                src.read(window=window)
            for level in range(len(src.overviews(1))):
                with rasterio.open(path, overview_level=level) as ovr:
                    for _, window in ovr.block_windows(1):
                        ovr.read(window=window)
    except (OSError, rasterio.errors.RasterioError) as exc:
        raise OSError(f"the COG written to {path} is incomplete ({exc}): is the disk full?") from exc
