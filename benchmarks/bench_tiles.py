"""True-colour XYZ tiles per tile, against the baseline measured in the same run: rio-tiler reading the stack's
three bands for every tile (what the route did before previews). A stack written as build_composites writes it
(every feature band plus a quality band, float32, pixel-interleaved, zstd, overviews), synthetic content.

Cases per zoom: ``baseline`` (rio-tiler per tile), ``cold`` (the first tile: builds the stack's preview) and
``warm`` (a tile over a stack whose preview is built: the catalogue search and the reprojection). A map view
asks for ~12 tiles at once, and panning reuses the stacks, so ``warm`` is what a person panning sees after the
first view of an area.

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
from terracover import grid
from terracover.catalog import COMPOSITES_COLLECTION, cog_asset, collection, footprint_item, open_catalog
from terracover.cog import write_cog
from terracover.features import all_features, select_bands
from terracover.keys import stack_key
from terracover.settings import Settings
from terracover.stacks import stack_item_id
from terracover.store import ObjectStore, open_store
from terracover.tiles import TRUE_COLOUR_BANDS, PreviewCache, stacks_under, true_colour_png

YEAR = 2023
POINT = (-0.03, 39.95)


def _write_stack(settings: Settings, size: int) -> grid.Subtile:
    store, catalog = open_store(settings), open_catalog(settings)
    st = grid.subtile_of_point(*POINT, size)
    names = [*all_features(), "qa_observed"]
    values = np.random.default_rng(0).uniform(0, 0.4, (len(names), *st.shape)).astype(np.float32)
    key = stack_key(YEAR, st)
    with store.writer(key, suffix=".tif") as path:
        write_cog(path, values, st.transform, st.crs, nodata=float("nan"), descriptions=names)
    catalog.add_collection(collection(COMPOSITES_COLLECTION, "benchmark stacks"))
    item = footprint_item(
        stack_item_id(YEAR, st),
        st.footprint_wgs84,
        COMPOSITES_COLLECTION,
        {"start_datetime": f"{YEAR}-01-01T00:00:00Z", "end_datetime": f"{YEAR}-12-31T23:59:59Z",
         "terracover:year": YEAR, "terracover:tile": st.tile.name, "terracover:subtile": st.id},
    )  # fmt: skip
    item.add_asset("features", cog_asset(store, key))
    catalog.upsert_items([item])
    return st


def _rio_tiler_tile(store: ObjectStore, key: str, tile: morecantile.Tile) -> None:
    from rio_tiler.io import Reader

    with store.open_raster(key) as src, Reader(None, dataset=src) as reader:
        idx = select_bands(list(src.descriptions), [f"summer_{b}" for b in TRUE_COLOUR_BANDS])
        reader.tile(tile.x, tile.y, tile.z, indexes=idx, nodata=np.nan)


def run(size: int = 1098, zooms: tuple[int, ...] = (12, 13, 14, 16), repeat: int = 3) -> dict[str, Any]:
    tms = morecantile.tms.get("WebMercatorQuad")
    out: dict[str, Any] = {"size": size, "zooms": {}}
    with tempfile.TemporaryDirectory() as tmp:
        s = Settings(home=Path(tmp), subtile_size=size)
        st = _write_stack(s, size)
        out["bands"] = len(all_features()) + 1
        store, catalog = open_store(s), open_catalog(s)
        centre = st.footprint_wgs84.centroid
        for z in zooms:
            t = tms.tile(centre.x, centre.y, z)
            refs = stacks_under(catalog, YEAR, t.z, t.x, t.y)
            base = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                _rio_tiler_tile(store, refs[0].key, t)
                base.append(time.perf_counter() - t0)
            cold, warm = [], []
            for _ in range(repeat):
                cache = PreviewCache(2**30)
                t0 = time.perf_counter()
                true_colour_png(store, refs, t.z, t.x, t.y, cache=cache)
                cold.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                true_colour_png(store, stacks_under(catalog, YEAR, t.z, t.x, t.y), t.z, t.x, t.y, cache=cache)
                warm.append(time.perf_counter() - t0)
            out["zooms"][z] = {k: statistics.median(v) for k, v in (("baseline", base), ("cold", cold), ("warm", warm))}
    return out


def format_table(r: dict[str, Any]) -> str:
    lines = [f"True-colour tile of one {r['size']} px stack ({r['bands']} float32 bands, pixel-interleaved, "
             "overviews as build_composites writes them); median seconds; ratio = baseline / case",
             "| zoom | baseline (rio-tiler per tile) s | cold (builds the preview) s | ratio | warm s | ratio |",
             "|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for z, v in r["zooms"].items():
        b, cold, warm = v["baseline"], v["cold"], v["warm"]
        lines.append(f"| {z} | {b:.3f} | {cold:.3f} | {b / cold:.1f}x | {warm:.4f} | {b / warm:.0f}x |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", type=int, default=1098)
    print(format_table(run(p.parse_args().size)))


if __name__ == "__main__":
    main()
