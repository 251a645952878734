"""A feature stack's true colour as a small 8-bit RGBA COG beside it, the imagery the map tiles read.

The stacks interleave their ~100 float32 bands by pixel (what a prediction reads), so the three visible bands
of any window cost decompressing every band of it: 1.2-3 s for the first map tile over a 1098 px stack.
``build_stack`` therefore also writes ``{season}_B04/B03/B02`` of :data:`SEASON`, stretched from reflectance
0-0.3 onto 0-255 with a mild gamma, as ``composites/{year}/{tile}/{subtile}/truecolour.tif`` (4 bands
red, green, blue, alpha: 0 where a band is missing; zstd, 256 px tiles, nearest-neighbour overviews; ~5 MB
instead of ~0.5 GB) and catalogues it as the stack item's :data:`ASSET` asset. The stretch is one function
(:func:`to_rgba`) for this file and for tiles read from a stack without it, so both give the same pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pystac
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp

from terracover.catalog import cog_asset
from terracover.cog import cog_writer
from terracover.features import select_bands
from terracover.store import ObjectStore

TRUE_COLOUR_BANDS = ("B04", "B03", "B02")  # red, green, blue
SEASON = "summer"  # the season written beside each stack (and the tiles' default)
REFLECTANCE_STRETCH = (0.0, 0.3)  # surface reflectance mapped onto 0..255 (then a mild gamma)
GAMMA = 1.4
ASSET = "true_colour"  # the stack item's asset naming the file
TILE_PX = 256  # a 1098 px stack gets overviews 2x, 4x (and 8x)


def band_names(season: str) -> list[str]:
    """The stack bands of a season's true colour, red first."""
    return [f"{season}_{b}" for b in TRUE_COLOUR_BANDS]


def to_rgba(data: np.ndarray) -> np.ndarray:
    """(3, rows, cols) reflectance -> (4, rows, cols) uint8: stretched 0-0.3 onto 0-255 with gamma 1.4, alpha
    255 where all three bands are finite, else 0."""
    lo, hi = REFLECTANCE_STRETCH
    valid = np.isfinite(data).all(axis=0)
    scaled = np.clip((np.nan_to_num(data, nan=0.0) - lo) / (hi - lo), 0, 1) ** (1 / GAMMA)
    return np.concatenate([(scaled * 255).astype(np.uint8), np.where(valid, 255, 0).astype(np.uint8)[None]])


def from_stack(store: ObjectStore, stack_key: str) -> np.ndarray:
    """The RGBA of a stack already written (for stacks built before the file existed): one full read."""
    with store.open_raster(stack_key) as src:
        return to_rgba(src.read(select_bands(list(src.descriptions), band_names(SEASON))))


def write_true_colour(
    store: ObjectStore, key: str, rgba: np.ndarray, transform: Affine, crs: CRS, tags: Mapping[str, str]
) -> None:
    """Publish ``rgba`` as the COG at ``key`` (atomically: the store's writer publishes only a complete file)."""
    _, height, width = rgba.shape
    with (
        store.writer(key, suffix=".tif") as path,
        cog_writer(
            path, 4, height, width, "uint8", transform, crs, None,
            descriptions=["red", "green", "blue", "alpha"], tags={**tags, "terracover:season": SEASON},
            blocksize=TILE_PX, threads=1, overview_resampling="NEAREST",
        ) as dst,
    ):  # fmt: skip
        dst.colorinterp = (ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha)
        dst.write(rgba)


def true_colour_asset(store: ObjectStore, key: str) -> pystac.Asset:
    asset = cog_asset(
        store, key, title=f"{SEASON} true colour (B04/B03/B02, reflectance 0-0.3 -> 0-255), 8-bit RGBA",
        extra={"terracover:season": SEASON},
    )  # fmt: skip
    asset.roles = ["visual"]
    return asset


def has_true_colour(item: pystac.Item, store: ObjectStore) -> bool:
    """Whether the item catalogues its true colour and the file is there."""
    asset = item.assets.get(ASSET)
    return asset is not None and store.exists(str(asset.extra_fields["terracover:key"]))


def can_write(names: Sequence[str]) -> bool:
    """Whether a stack of these bands holds the true colour of :data:`SEASON`."""
    return all(n in names for n in band_names(SEASON))
