"""A classified map's files, the same for an answered prediction and for the published annual map.

Two COGs on one grid, as ESA WorldCover ships its Map and InputQuality: the map (band 1 uint8 class with its
colour table embedded, band 2 uint8 confidence in percent) and its quality layer (band 1 uint8 observation
status, band 2 uint8 clear-observation count). Two files because GDAL embeds a TIFF palette only in one- or
two-band files; a four-band file puts it in a ``.aux.xml`` side-car that an object store never publishes, and
QGIS then shows grey. 0 is nodata in every band (outside the AOI, or no class).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from terracover import classes
from terracover.cog import FAST_LEVEL, write_cog
from terracover.observation import STATUS_NAMES
from terracover.store import ObjectStore

MAP_BANDS = ("class", "confidence")
QUALITY_BANDS = ("quality", "clear_observations")


def confidence_percent(codes: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Max class probability as uint8 percent, 1..100 where classified (so 0 stays nodata), 0 elsewhere."""
    pct = np.where(codes > 0, np.clip(np.rint(np.nan_to_num(confidence) * 100), 1, 100), 0)
    return pct.astype(np.uint8)


def write_map(
    store: ObjectStore,
    key: str,
    quality_key: str,
    layers: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    transform: Affine,
    crs: CRS,
    tags: Mapping[str, str],
) -> None:
    """Store ``layers`` = (class codes, confidence 0..1 or NaN, quality status, clear count) as the two COGs.

    The quality file goes first and is deleted if the map cannot be stored, so a failed write leaves neither.
    """
    codes, confidence, quality, clear = layers
    names = {str(c.code): c.name for c in classes.CLASSES}
    with store.writer(quality_key, suffix=".tif") as path:
        write_cog(
            path,
            np.stack([quality, clear]).astype(np.uint8),
            transform,
            crs,
            nodata=0,
            descriptions=QUALITY_BANDS,
            tags=tags,
            band_tags=[
                {
                    "meaning": "how the pixel's features were obtained; 0 outside the map",
                    **{f"QUALITY_{code}": name for code, name in STATUS_NAMES.items()},
                },
                {"meaning": "clear observations over the model's seasons (0: none or unknown)"},
            ],
            level=FAST_LEVEL,
        )
    try:
        with store.writer(key, suffix=".tif") as path:
            write_cog(
                path,
                np.stack([codes.astype(np.uint8), confidence_percent(codes, confidence)]),
                transform,
                crs,
                nodata=classes.NODATA_CLASS,
                descriptions=MAP_BANDS,
                colormap=classes.colormap(),
                tags={**tags, "terracover:quality": quality_key.rsplit("/", 1)[-1]},
                band_tags=[
                    {"terracover:classes": json.dumps(names), **{f"CLASS_{k}": v for k, v in names.items()}},
                    {"units": "percent", "meaning": "maximum class probability x 100"},
                ],
                level=FAST_LEVEL,
            )
    except BaseException:
        with contextlib.suppress(Exception):  # the store's first failure is the one to report
            store.delete(quality_key)
        raise
