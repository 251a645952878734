"""XYZ tiles from the stacks' own true-colour bands and from stored maps (rio-tiler), on synthetic stacks."""

from __future__ import annotations

import io

import morecantile
import numpy as np
import pytest
from PIL import Image
from shapely.geometry import box
from terracover.catalog import open_catalog
from terracover.settings import Settings
from terracover.store import open_store
from terracover.tiles import MIN_ZOOM, TileRequestError, stack_keys_under, true_colour_png

from tests.synthetic_stacks import stacks_over

YEAR = 2022
SIZE = 183
NAMES = ["summer_B04", "summer_B03", "summer_B02", "dem"]
CROSSING = box(-0.004, 39.951, 0.004, 39.957)  # UTM zones 30 and 31


@pytest.fixture
def stacks(settings: Settings) -> Settings:
    return stacks_over(settings, CROSSING, SIZE, YEAR, NAMES)


def _decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def test_true_colour_tile_mosaics_both_zones_and_is_transparent_outside(stacks: Settings) -> None:
    store, catalog = open_store(stacks), open_catalog(stacks)
    tile = morecantile.tms.get("WebMercatorQuad").tile(0.0, 39.954, 13)
    keys = stack_keys_under(catalog, YEAR, tile.z, tile.x, tile.y)
    assert len({k.split("/")[2] for k in keys}) == 2, keys  # both MGRS tiles
    rgba = _decode(true_colour_png(store, keys, tile.z, tile.x, tile.y))
    assert rgba.shape == (256, 256, 4)
    opaque = rgba[..., 3] == 255
    assert 0.05 < opaque.mean() < 1.0  # the stacks cover part of the tile, the rest is transparent
    # the synthetic reflectances (0..1) saturate the 0-0.3 stretch in places and vary elsewhere
    assert len(np.unique(rgba[opaque][:, 0])) > 10


def test_tiles_elsewhere_or_too_far_out_are_refused_or_empty(stacks: Settings) -> None:
    catalog = open_catalog(stacks)
    far = morecantile.tms.get("WebMercatorQuad").tile(10.0, 50.0, 15)
    assert stack_keys_under(catalog, YEAR, far.z, far.x, far.y) == []
    assert true_colour_png(open_store(stacks), [], far.z, far.x, far.y) is None
    with pytest.raises(TileRequestError, match="zoom"):
        stack_keys_under(catalog, YEAR, MIN_ZOOM - 1, 0, 0)
    with pytest.raises(TileRequestError, match="no tile"):
        stack_keys_under(catalog, YEAR, 12, 4096, 0)
    with pytest.raises(TileRequestError, match="season"):
        true_colour_png(open_store(stacks), ["x"], 15, 0, 0, season="monsoon")
