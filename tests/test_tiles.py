"""XYZ tiles from the stacks' own true-colour bands and from stored maps (rio-tiler), on synthetic stacks."""

from __future__ import annotations

import io
from collections.abc import Callable

import morecantile
import numpy as np
import pytest
from PIL import Image
from shapely.geometry import box
from terracover.catalog import open_catalog
from terracover.settings import Settings
from terracover.store import open_store
from terracover.tiles import MIN_ZOOM, Preview, PreviewCache, TileRequestError, stacks_under, true_colour_png

from tests.synthetic_stacks import stacks_over

YEAR = 2022
SIZE = 183
NAMES = ["summer_B04", "summer_B03", "summer_B02", "dem"]
CROSSING = box(-0.004, 39.951, 0.004, 39.957)  # UTM zones 30 and 31


@pytest.fixture
def stacks(settings: Settings) -> Settings:
    return stacks_over(settings, CROSSING, SIZE, YEAR, NAMES)


def _decode(png: bytes | None) -> np.ndarray:
    assert png is not None
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def test_true_colour_tile_mosaics_both_zones_and_is_transparent_outside(stacks: Settings) -> None:
    store, catalog = open_store(stacks), open_catalog(stacks)
    tile = morecantile.tms.get("WebMercatorQuad").tile(0.0, 39.954, 13)
    refs = stacks_under(catalog, YEAR, tile.z, tile.x, tile.y)
    assert len({r.key.split("/")[2] for r in refs}) == 2, refs  # both MGRS tiles
    rgba = _decode(true_colour_png(store, refs, tile.z, tile.x, tile.y))
    assert rgba.shape == (256, 256, 4)
    opaque = rgba[..., 3] == 255
    assert 0.05 < opaque.mean() < 1.0  # the stacks cover part of the tile, the rest is transparent
    # the synthetic reflectances (0..1) saturate the 0-0.3 stretch in places and vary elsewhere
    assert len(np.unique(rgba[opaque][:, 0])) > 10


def test_tiles_elsewhere_or_too_far_out_are_refused_or_empty(stacks: Settings) -> None:
    catalog = open_catalog(stacks)
    far = morecantile.tms.get("WebMercatorQuad").tile(10.0, 50.0, 15)
    assert stacks_under(catalog, YEAR, far.z, far.x, far.y) == []
    assert true_colour_png(open_store(stacks), [], far.z, far.x, far.y) is None
    with pytest.raises(TileRequestError, match="zoom"):
        stacks_under(catalog, YEAR, MIN_ZOOM - 1, 0, 0)
    with pytest.raises(TileRequestError, match="no tile"):
        stacks_under(catalog, YEAR, 12, 4096, 0)
    with pytest.raises(TileRequestError, match="season"):
        true_colour_png(open_store(stacks), [], 15, 0, 0, season="monsoon")


@pytest.mark.parametrize("true_colour", [False, True], ids=["from-stack-bands", "from-true-colour-file"])
def test_true_colour_tile_is_rio_tilers_tile_of_the_stack_and_read_once(settings: Settings, true_colour: bool) -> None:
    """The preview path lands every pixel where rio-tiler's own reader of the stack puts it (random reflectance
    per pixel: a tile shifted by one stack pixel fails), and a second tile over the same stack reads no stack;
    from the stack's true-colour file when it has one, else from its bands."""
    from rio_tiler.io import Reader
    from terracover import grid

    from tests.synthetic_stacks import write_stack

    s = settings.model_copy(update={"subtile_size": SIZE})
    store, catalog = open_store(s), open_catalog(s)
    st = grid.subtile_of_point(-0.01, 39.954, SIZE)
    values = np.random.default_rng(0).uniform(0, 0.3, (len(NAMES), SIZE, SIZE)).astype(np.float32)
    write_stack(store, catalog, YEAR, st, NAMES, values=values, true_colour=true_colour)
    centre = st.footprint_wgs84.centroid
    tile = morecantile.tms.get("WebMercatorQuad").tile(centre.x, centre.y, 17)
    refs = stacks_under(catalog, YEAR, tile.z, tile.x, tile.y)
    assert len(refs) == 1, refs
    cache = PreviewCache(2**26)
    builds: list[tuple[str, ...]] = []
    get = cache.get

    def counted(key: tuple[str, ...], build: Callable[[], Preview]) -> Preview:
        def counting() -> Preview:
            builds.append(key)
            return build()

        return get(key, counting)

    cache.get = counted  # type: ignore[method-assign]
    ours = _decode(true_colour_png(store, refs, tile.z, tile.x, tile.y, cache=cache))
    with store.open_raster(refs[0].key) as src, Reader(None, dataset=src) as reader:
        ref = reader.tile(tile.x, tile.y, tile.z, indexes=[1, 2, 3], nodata=np.nan)
    valid = ~np.ma.getmaskarray(ref.array).any(axis=0)
    assert valid.mean() > 0.5 and ((ours[..., 3] == 255) == valid).mean() > 0.99
    expected = (np.clip(ref.array.filled(0) / 0.3, 0, 1) ** (1 / 1.4) * 255).astype(np.uint8)
    both = valid & (ours[..., 3] == 255)
    assert (np.moveaxis(ours[..., :3], -1, 0)[:, both] == expected[:, both]).mean() > 0.99
    neighbour = morecantile.Tile(tile.x + 1, tile.y, tile.z)
    true_colour_png(store, refs, neighbour.z, neighbour.x, neighbour.y, cache=cache)
    assert len(builds) == 1, builds
    assert builds[0][0].endswith("truecolour.tif" if true_colour else "features.tif"), builds
