"""True-colour XYZ tiles: the first tile over a stack and the next ones, before and after the stacks' true-colour
files, against the baseline measured in the same run. A stack written as build_composites writes it (every
feature band plus a quality band, float32, pixel-interleaved, 128 px tiles, zstd, overviews) and its 8-bit
true-colour file (``terracover.truecolour``), synthetic content.

Cases per zoom, each timed on the same stack in the same run:
- ``rio-tiler``: rio-tiler reading the stack's three bands for every tile (the route before previews);
- ``baseline``: the stack-bands path (``StackRef`` without a true-colour file: what the route did before the
  files, and still does for stacks built before them): ``first`` builds the stack's preview from its
  reflectance bands, ``warm`` is a tile over a stack whose preview is built (the catalogue search and the
  reprojection);
- ``file``: the same through the stack's true-colour file (what build_composites writes now).
Ratios are baseline / file (and rio-tiler / file). A map view asks for ~12 tiles at once and panning reuses
the stacks, so ``warm`` is what a person panning sees after the first view of an area, ``first`` what the
first view waits for.

``python -m benchmarks.bench_tiles [--size 1098]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import morecantile
import numpy as np
from terracover import grid, truecolour
from terracover.catalog import COMPOSITES_COLLECTION, cog_asset, collection, footprint_item, open_catalog
from terracover.cog import write_cog
from terracover.features import all_features, select_bands
from terracover.keys import stack_key, true_colour_key
from terracover.settings import Settings
from terracover.stacks import STACK_TILE_PX, stack_item_id
from terracover.store import LocalStore, ObjectStore, open_store
from terracover.tiles import PreviewCache, StackRef, stacks_under, true_colour_png

YEAR = 2023
POINT = (-0.03, 39.95)


def _write_stack(settings: Settings, size: int) -> grid.Subtile:
    store, catalog = open_store(settings), open_catalog(settings)
    st = grid.subtile_of_point(*POINT, size)
    names = [*all_features(), "qa_observed"]
    values = np.random.default_rng(0).uniform(0, 0.4, (len(names), *st.shape)).astype(np.float32)
    key, colour_key = stack_key(YEAR, st), true_colour_key(YEAR, st)
    with store.writer(key, suffix=".tif") as path:
        write_cog(path, values, st.transform, st.crs, nodata=float("nan"), descriptions=names, blocksize=STACK_TILE_PX)
    colour = truecolour.to_rgba(values[[names.index(n) for n in truecolour.band_names(truecolour.SEASON)]])
    truecolour.write_true_colour(store, colour_key, colour, st.transform, st.crs, {})
    catalog.add_collection(collection(COMPOSITES_COLLECTION, "benchmark stacks"))
    item = footprint_item(
        stack_item_id(YEAR, st),
        st.footprint_wgs84,
        COMPOSITES_COLLECTION,
        {"start_datetime": f"{YEAR}-01-01T00:00:00Z", "end_datetime": f"{YEAR}-12-31T23:59:59Z",
         "terracover:year": YEAR, "terracover:tile": st.tile.name, "terracover:subtile": st.id},
    )  # fmt: skip
    item.add_asset("features", cog_asset(store, key))
    item.add_asset(truecolour.ASSET, truecolour.true_colour_asset(store, colour_key))
    catalog.upsert_items([item])
    return st


def _rio_tiler_tile(store: ObjectStore, key: str, tile: morecantile.Tile) -> None:
    from rio_tiler.io import Reader

    with store.open_raster(key) as src, Reader(None, dataset=src) as reader:
        idx = select_bands(list(src.descriptions), truecolour.band_names(truecolour.SEASON))
        reader.tile(tile.x, tile.y, tile.z, indexes=idx, nodata=np.nan)


def _first_and_warm(
    store: ObjectStore, refs: list[StackRef], search: Any, t: morecantile.Tile, repeat: int
) -> tuple[list[float], list[float]]:
    """Seconds of the first tile over a fresh cache and of the next one (searching the catalogue again)."""
    first, warm = [], []
    for _ in range(repeat):
        cache = PreviewCache(2**30)
        t0 = time.perf_counter()
        true_colour_png(store, refs, t.z, t.x, t.y, cache=cache)
        first.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        true_colour_png(store, search(), t.z, t.x, t.y, cache=cache)
        warm.append(time.perf_counter() - t0)
    return first, warm


def run(size: int = 1098, zooms: tuple[int, ...] = (12, 13, 14, 16), repeat: int = 3) -> dict[str, Any]:
    tms = morecantile.tms.get("WebMercatorQuad")
    out: dict[str, Any] = {"size": size, "zooms": {}}
    with tempfile.TemporaryDirectory() as tmp:
        s = Settings(home=Path(tmp), subtile_size=size)
        st = _write_stack(s, size)
        out["bands"] = len(all_features()) + 1
        store, catalog = open_store(s), open_catalog(s)
        with store.open_raster(stack_key(YEAR, st)) as src:
            out["stack_overviews"] = src.overviews(1)
        with store.open_raster(true_colour_key(YEAR, st)) as src:
            out["file_overviews"] = src.overviews(1)
        assert isinstance(store, LocalStore)
        out["stack_mb"] = round(store.path(stack_key(YEAR, st)).stat().st_size / 2**20, 1)
        out["file_mb"] = round(store.path(true_colour_key(YEAR, st)).stat().st_size / 2**20, 2)
        centre = st.footprint_wgs84.centroid
        for z in zooms:
            t = tms.tile(centre.x, centre.y, z)
            refs = stacks_under(catalog, YEAR, t.z, t.x, t.y)
            assert refs and refs[0].true_colour_key is not None, refs

            def old(z: int = t.z, x: int = t.x, y: int = t.y) -> list[StackRef]:
                return [StackRef(r.key, r.version) for r in stacks_under(catalog, YEAR, z, x, y)]

            def new(z: int = t.z, x: int = t.x, y: int = t.y) -> list[StackRef]:
                return stacks_under(catalog, YEAR, z, x, y)

            rio = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                _rio_tiler_tile(store, refs[0].key, t)
                rio.append(time.perf_counter() - t0)
            base_first, base_warm = _first_and_warm(store, old(), old, t, repeat)
            file_first, file_warm = _first_and_warm(store, new(), new, t, repeat)
            cases = {"rio_tiler": rio, "base_first": base_first, "base_warm": base_warm}
            cases |= {"file_first": file_first, "file_warm": file_warm}
            out["zooms"][z] = {k: statistics.median(v) for k, v in cases.items()}
    return out


def format_table(r: dict[str, Any]) -> str:
    lines = [f"True-colour tile of one {r['size']} px stack ({r['bands']} float32 bands, {r['stack_mb']} MB, "
             f"pixel-interleaved, overviews {r['stack_overviews']}) and its true-colour file "
             f"({r['file_mb']} MB, overviews {r['file_overviews']}); median seconds of 3; "
             "baseline = the stack-bands preview (before the files); ratio = baseline / file",
             "| zoom | rio-tiler per tile s | first: baseline s | first: file s | ratio | rio-tiler / file "
             "| warm: baseline s | warm: file s | ratio |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for z, v in r["zooms"].items():
        bf, ff, bw, fw = v["base_first"], v["file_first"], v["base_warm"], v["file_warm"]
        lines.append(
            f"| {z} | {v['rio_tiler']:.3f} | {bf:.3f} | {ff:.4f} | {bf / ff:.0f}x | {v['rio_tiler'] / ff:.0f}x "
            f"| {bw:.4f} | {fw:.4f} | {bw / fw:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", type=int, default=1098)
    print(format_table(run(p.parse_args().size)))


if __name__ == "__main__":
    main()
