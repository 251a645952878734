"""The stacks' true-colour files (terracover.truecolour): written and catalogued by build_stack on a simulated
archive, the same pixels as the stack's own bands, added to stacks built before them, never catalogued when
their write fails."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import morecantile
import numpy as np
import pytest
import rasterio
from PIL import Image
from shapely.geometry import box
from terracover import grid, truecolour
from terracover.catalog import COMPOSITES_COLLECTION, Catalog
from terracover.keys import stack_key, true_colour_key
from terracover.pipeline import ingest_tile_year, ready_catalog, region_tiles, terrain_for_tile
from terracover.settings import Settings, get_settings
from terracover.simulate import SimulationConfig, simulate_archive
from terracover.stacks import build_stack, stack_item_id
from terracover.store import ObjectStore, StoreWriteError, open_store
from terracover.tiles import PreviewCache, StackRef, stacks_under, true_colour_png

REGION = (-0.505, 39.952, -0.497, 39.958)  # one subtile of 30SYK at SIZE pixels
SIZE = 366
YEAR = 2022


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A simulated year ingested with its terrain (one date per season): what build_stack reads."""
    home = tmp_path_factory.mktemp("tc-truecolour")
    s = Settings(home=home, region_bbox=REGION, subtile_size=SIZE, scene_source="simulator", dem_source="simulator")
    simulate_archive(SimulationConfig(REGION, YEAR, dates_per_season=1, subtile_size=SIZE), home / "archive")
    (tile,) = region_tiles(s)
    ingest_tile_year(YEAR, tile, s)
    terrain_for_tile(tile, settings=s)
    yield s
    get_settings.cache_clear()


def _subtile() -> grid.Subtile:
    (st,) = grid.subtiles_for_geometry(box(*REGION), SIZE)
    return st


def _decode(png: bytes | None) -> np.ndarray:
    assert png is not None
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def _item_assets(catalog: Catalog, st: grid.Subtile) -> dict[str, str]:
    item = catalog.get_item(COMPOSITES_COLLECTION, stack_item_id(YEAR, st))
    assert item is not None
    return {k: str(a.extra_fields["terracover:key"]) for k, a in item.assets.items()}


def test_build_stack_writes_and_catalogues_the_stacks_true_colour(archive: Settings) -> None:
    store, catalog, st = open_store(archive), ready_catalog(archive), _subtile()
    build_stack(YEAR, st, store, catalog, overwrite=True)
    assert _item_assets(catalog, st) == {"features": stack_key(YEAR, st), "true_colour": true_colour_key(YEAR, st)}
    with store.open_raster(true_colour_key(YEAR, st)) as src:
        assert (src.count, src.dtypes[0], src.shape) == (4, "uint8", st.shape)
        assert src.overviews(1), "no internal overviews"
        assert src.colorinterp[3] == rasterio.enums.ColorInterp.alpha
        rgba = src.read()
    # the same pixels as the stack's own summer bands through the same stretch
    assert np.array_equal(rgba, truecolour.from_stack(store, stack_key(YEAR, st)))
    assert (rgba[3] == 255).mean() > 0.5 and len(np.unique(rgba[0][rgba[3] == 255])) > 10
    # a tile from the file is the tile from the stack's bands (the fallback), byte for byte
    centre = st.footprint_wgs84.centroid
    t = morecantile.tms.get("WebMercatorQuad").tile(centre.x, centre.y, 16)
    (ref,) = stacks_under(catalog, YEAR, t.z, t.x, t.y)
    assert ref.true_colour_key == true_colour_key(YEAR, st)
    old = StackRef(ref.key, ref.version)  # a stack built before the file
    from_file, from_stack = PreviewCache(2**28), PreviewCache(2**28)
    tile_from_file = true_colour_png(store, [ref], t.z, t.x, t.y, cache=from_file)
    assert tile_from_file is not None
    assert tile_from_file == true_colour_png(store, [old], t.z, t.x, t.y, cache=from_stack)
    assert "truecolour.tif" in next(iter(from_file._items))[0]
    assert "features.tif" in next(iter(from_stack._items))[0]


def test_a_stack_built_before_the_file_gets_it_on_the_next_unchanged_run(archive: Settings) -> None:
    store, catalog, st = open_store(archive), ready_catalog(archive), _subtile()
    build_stack(YEAR, st, store, catalog)  # built once with it (or skipped)
    colour_key = true_colour_key(YEAR, st)
    written = store.get_bytes(colour_key)
    stack_bytes = store.get_bytes(stack_key(YEAR, st))
    item = catalog.get_item(COMPOSITES_COLLECTION, stack_item_id(YEAR, st))
    assert item is not None
    del item.assets[truecolour.ASSET]  # as a stack item written before the file existed
    catalog.upsert_items([item])
    store.delete(colour_key)
    result = build_stack(YEAR, st, store, catalog)
    assert result.skipped, "the stack was rebuilt"
    assert store.get_bytes(stack_key(YEAR, st)) == stack_bytes
    assert _item_assets(catalog, st)["true_colour"] == colour_key
    assert store.get_bytes(colour_key) == written


def test_a_failed_true_colour_write_catalogues_nothing_and_a_retry_is_identical(
    archive: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, catalog, st = open_store(archive), ready_catalog(archive), _subtile()
    build_stack(YEAR, st, store, catalog)
    colour_key = true_colour_key(YEAR, st)
    written = store.get_bytes(colour_key)
    catalog.delete_item(COMPOSITES_COLLECTION, stack_item_id(YEAR, st))
    store.delete(colour_key)
    put_file = type(store).put_file

    def failing(self: ObjectStore, key: str, path: Path) -> None:
        if key == colour_key:
            raise OSError("the store refused the upload")
        put_file(self, key, path)

    monkeypatch.setattr(type(store), "put_file", failing)
    with pytest.raises(StoreWriteError):
        build_stack(YEAR, st, store, catalog, overwrite=True)
    assert catalog.get_item(COMPOSITES_COLLECTION, stack_item_id(YEAR, st)) is None, "an item names a missing file"
    assert not store.exists(colour_key)
    monkeypatch.undo()
    assert not build_stack(YEAR, st, store, catalog).skipped  # no item: the stack is built again
    assert store.get_bytes(colour_key) == written
    assert set(_item_assets(catalog, st)) == {"features", "true_colour"}
