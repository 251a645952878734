"""Small feature stacks with known values, written and catalogued the way build_composites does, for unit tests
of sampling and prediction that must not wait for the data plane."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from shapely.geometry.base import BaseGeometry
from terracover import grid, truecolour
from terracover.catalog import COMPOSITES_COLLECTION, Catalog, cog_asset, collection, footprint_item, open_catalog
from terracover.cog import write_cog
from terracover.keys import stack_key, true_colour_key
from terracover.settings import Settings
from terracover.stacks import stack_item_id
from terracover.store import ObjectStore, open_store


def pixel_values(st: grid.Subtile, names: Sequence[str]) -> np.ndarray:
    """(F, H, W) float32 values that are a pure function of each pixel's UTM centre (continuous across subtiles
    of one zone), so tests can predict what any window must contain."""
    h, w = st.shape
    x0, y0 = st.transform.c, st.transform.f
    xs = x0 + (np.arange(w) + 0.5) * grid.RES_M
    ys = y0 - (np.arange(h) + 0.5) * grid.RES_M
    xx, yy = np.meshgrid(xs, ys)
    out = np.empty((len(names), h, w), dtype=np.float32)
    for i in range(len(names)):
        out[i] = (np.sin(xx / (300.0 + 70 * i)) + np.cos(yy / (450.0 + 50 * i))) * 0.25 + 0.5
    return out


def write_stack(
    store: ObjectStore,
    catalog: Catalog,
    year: int,
    st: grid.Subtile,
    names: Sequence[str],
    nan_rows: slice | None = None,
    values: np.ndarray | None = None,
    true_colour: bool = False,
) -> np.ndarray:
    """Write and catalogue one stack; returns its values (NaN where ``nan_rows`` says). ``values`` replaces
    the synthetic pixel values (e.g. to add ``qa_*`` bands named in ``names``); ``true_colour`` also writes
    and catalogues its true-colour file as build_stack does (without it: a stack built before that file)."""
    values = pixel_values(st, names) if values is None else values
    if nan_rows is not None:
        values[:, nan_rows, :] = np.nan
    key = stack_key(year, st)
    with store.writer(key, suffix=".tif") as path:
        write_cog(path, values, st.transform, st.crs, nodata=float("nan"), descriptions=list(names), overviews=False)
    if COMPOSITES_COLLECTION not in catalog.collections():
        catalog.add_collection(collection(COMPOSITES_COLLECTION, "test stacks"))
    item = footprint_item(
        stack_item_id(year, st),
        st.footprint_wgs84,
        COMPOSITES_COLLECTION,
        {
            "start_datetime": f"{year}-01-01T00:00:00Z",
            "end_datetime": f"{year}-12-31T23:59:59Z",
            "terracover:year": year,
            "terracover:tile": st.tile.name,
            "terracover:subtile": st.id,
            "terracover:features": [n for n in names if not n.startswith("qa_")],
        },
    )
    item.add_asset("features", cog_asset(store, key))
    if true_colour:
        colour_key = true_colour_key(year, st)
        colour = truecolour.to_rgba(values[[list(names).index(n) for n in truecolour.band_names(truecolour.SEASON)]])
        truecolour.write_true_colour(store, colour_key, colour, st.transform, st.crs, {})
        item.add_asset(truecolour.ASSET, truecolour.true_colour_asset(store, colour_key))
    catalog.upsert_items([item])
    return values


def stacks_over(settings: Settings, geometry: BaseGeometry, size: int, year: int, names: Sequence[str]) -> Settings:
    """``settings`` with ``subtile_size`` = ``size`` and a synthetic stack for every subtile under ``geometry``."""
    s = settings.model_copy(update={"subtile_size": size})
    store, catalog = open_store(s), open_catalog(s)
    for st in grid.subtiles_for_geometry(geometry, size):
        write_stack(store, catalog, year, st, names)
    return s
