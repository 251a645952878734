"""Writing Cloud-Optimized GeoTIFFs the same way everywhere (scenes, feature stacks, predictions)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.errors
from affine import Affine
from rasterio.crs import CRS

# zstd + predictor costs ~3x the write time of uncompressed but a fraction of the bytes (docs/architecture.md
# section 5); the stacks are written once and read many times, so smaller objects win.
_PREDICTOR = {np.dtype("float32"): 3, np.dtype("float64"): 3}


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
) -> Path:
    """Write a (bands, rows, cols) or (rows, cols) array as a COG at ``path``.

    A local path: callers publish it to the object store atomically (``ObjectStore.writer``).
    """
    arr = data[np.newaxis] if data.ndim == 2 else data
    count, height, width = arr.shape
    crs_obj = CRS.from_user_input(crs)
    profile: dict[str, Any] = {
        "driver": "COG",
        "width": width,
        "height": height,
        "count": count,
        "dtype": arr.dtype.name,
        "crs": crs_obj,
        "transform": transform,
        "nodata": nodata,
        "compress": "ZSTD",
        "level": 9,
        "predictor": _PREDICTOR.get(arr.dtype, 2),
        "blocksize": blocksize,
        "overviews": "AUTO" if overviews else "NONE",
        "num_threads": "ALL_CPUS",
        "BIGTIFF": "IF_SAFER",
    }
    # The COG driver writes overviews and layout in one go; descriptions and colour maps need a dataset
    # handle, so write through a MEM dataset that the COG driver copies.
    with rasterio.MemoryFile() as mem:
        mem_profile = {k: profile[k] for k in ("width", "height", "count", "dtype", "crs", "transform", "nodata")}
        with mem.open(driver="GTiff", **mem_profile) as tmp:
            tmp.write(arr)
            for i, desc in enumerate(descriptions or [], start=1):
                tmp.set_band_description(i, desc)
            if colormap is not None:
                tmp.write_colormap(1, dict(colormap))
            if tags:
                tmp.update_tags(**tags)
            for i, bt in enumerate(band_tags or [], start=1):
                tmp.update_tags(i, **bt)
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(tmp.read())
                for i in range(1, count + 1):
                    if tmp.descriptions[i - 1]:
                        dst.set_band_description(i, tmp.descriptions[i - 1])
                    dst.update_tags(i, **tmp.tags(i))
                dst.update_tags(**tmp.tags())
                if colormap is not None:
                    dst.write_colormap(1, dict(colormap))
    _check_complete(path, count)
    return path


def _check_complete(path: Path, count: int) -> None:
    """Read the COG back: GDAL reports some write failures (a full disk while the COG driver copies its
    layout into place) only as log lines, leaving a truncated file that must never be published."""
    try:
        with rasterio.open(path) as src:
            if src.count != count:
                raise OSError(f"{count} bands written, {src.count} readable")
            src.read()
            for level in range(len(src.overviews(1))):
                with rasterio.open(path, overview_level=level) as ovr:
                    ovr.read()
    except (OSError, rasterio.errors.RasterioError) as exc:
        raise OSError(f"the COG written to {path} is incomplete ({exc}): is the disk full?") from exc
