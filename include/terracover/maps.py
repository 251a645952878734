"""The annual land-cover map as a product: every feature stack of a year classified by that year's champion,
catalogued in ``terracover-maps``, plus a mosaic per UTM zone (GDAL VRT) that QGIS opens as one layer. A
region's map exists without anyone calling the prediction service.

Each subtile is the same pair of files as an answered prediction (:mod:`terracover.mapfile`): the map (class
with its colour table, confidence) and its quality layer (observation status, clear observations), classified
by the same window classifier, so the product and the API never disagree about a pixel.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import pystac
from pyproj import Transformer
from shapely.geometry import box, mapping

from terracover import classes, grid, registry
from terracover.catalog import COMPOSITES_COLLECTION, MAPS_COLLECTION, Catalog
from terracover.features import select_bands
from terracover.keys import map_key, map_mosaic_key, map_quality_key, stack_key
from terracover.mapfile import MAP_BANDS, QUALITY_BANDS, write_map
from terracover.observation import qa_bands_for
from terracover.pipeline import ready_catalog
from terracover.predict import classify_window
from terracover.registry import LoadedModel
from terracover.settings import Settings, get_settings
from terracover.store import ObjectStore, open_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MapTile:
    item_id: str
    key: str
    epsg: int
    classified_fraction: float


def map_subtile(year: int, st: grid.Subtile, model: LoadedModel, store: ObjectStore, catalog: Catalog) -> MapTile:
    """Classify one subtile's whole stack with ``model`` and publish its two COGs and STAC item (idempotent)."""
    key, quality_key = map_key(year, model.version, st), map_quality_key(year, model.version, st)
    with store.open_raster(stack_key(year, st)) as src:
        names = list(src.descriptions)
        qa_names = [q for q in qa_bands_for(model.features) if q in names]
        values = np.asarray(src.read(select_bands(names, [*model.features, *qa_names]), out_dtype=np.float32))
    n_model = len(model.features)
    w = classify_window(values[:n_model], values[n_model:] if qa_names else None, None, n_model, model)
    tags = {"terracover:year": str(year), "terracover:model": f"{model.name}/{model.version}"}
    write_map(store, key, quality_key, (w.codes, w.confidence, w.quality, w.clear), st.transform, st.crs, tags)
    fraction = float((w.codes > 0).mean())
    item = _item(year, st, model, (store.uri(key), store.uri(quality_key)), fraction)
    catalog.upsert_items([item])
    return MapTile(item.id, key, int(st.crs.to_epsg() or 0), fraction)


def _item(year: int, st: grid.Subtile, model: LoadedModel, hrefs: tuple[str, str], fraction: float) -> pystac.Item:
    to_wgs84 = Transformer.from_crs(st.crs, 4326, always_xy=True).transform
    footprint = grid.transform_xy(to_wgs84, box(*st.bounds).segmentize(500))
    item = pystac.Item(
        id=f"{year}-{st.tile.name}-{st.id}",
        geometry=mapping(footprint),
        bbox=list(footprint.bounds),
        datetime=None,
        properties={
            "start_datetime": f"{year}-01-01T00:00:00Z",
            "end_datetime": f"{year}-12-31T23:59:59Z",
            "terracover:year": year,
            "terracover:tile": st.tile.name,
            "terracover:subtile": st.id,
            "terracover:model": model.name,
            "terracover:model_version": model.version,
            "terracover:classified_fraction": round(fraction, 4),
            "terracover:classes": {str(c.code): c.name for c in classes.CLASSES},
            "proj:epsg": st.crs.to_epsg(),
            "proj:shape": list(st.shape),
            "proj:transform": list(st.transform)[:6],
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        collection=MAPS_COLLECTION,
    )
    for name, href, bands in (("map", hrefs[0], MAP_BANDS), ("quality", hrefs[1], QUALITY_BANDS)):
        item.add_asset(
            name, pystac.Asset(href=href, media_type=pystac.MediaType.COG, roles=["data"], title="/".join(bands))
        )
    return item


def stacks_of_year(year: int, catalog: Catalog, subtile_size: int) -> list[grid.Subtile]:
    """Every subtile of ``year`` with a feature stack in the catalog."""
    items = catalog.search(collections=[COMPOSITES_COLLECTION], properties={"terracover:year": year})
    return [
        grid.subtile(str(i.properties["terracover:tile"]), str(i.properties["terracover:subtile"]), subtile_size)
        for i in items
    ]


def mosaic_vrt(tiles: list[tuple[grid.Subtile, str]], bands: Sequence[str], palette: bool) -> str:
    """A GDAL VRT of subtile COGs sharing one CRS and pixel size (their own lattice, so no resampling); with
    ``palette``, band 1 carries the class colour table, so QGIS shows the classes in their colours."""
    first = tiles[0][0]
    res = first.transform.a
    left = min(st.bounds[0] for st, _ in tiles)
    top = max(st.bounds[3] for st, _ in tiles)
    right = max(st.bounds[2] for st, _ in tiles)
    bottom = min(st.bounds[1] for st, _ in tiles)
    width, height = round((right - left) / res), round((top - bottom) / res)
    xml_bands = []
    for b, name in enumerate(bands, start=1):
        sources = []
        for st, href in tiles:
            x, y = round((st.bounds[0] - left) / res), round((top - st.bounds[3]) / res)
            h, w = st.shape
            sources.append(
                f'<SimpleSource><SourceFilename relativeToVRT="0">{escape(href)}</SourceFilename>'
                f"<SourceBand>{b}</SourceBand>"
                f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
                f'<DstRect xOff="{x}" yOff="{y}" xSize="{w}" ySize="{h}"/></SimpleSource>'
            )
        colours = _colour_table() if palette and b == 1 else ""
        xml_bands.append(
            f'<VRTRasterBand dataType="Byte" band="{b}"><Description>{name}</Description>'
            f"<NoDataValue>0</NoDataValue>{colours}{''.join(sources)}</VRTRasterBand>"
        )
    return (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">'
        f"<SRS>{escape(first.crs.to_wkt())}</SRS>"
        f"<GeoTransform>{left}, {res}, 0, {top}, 0, {-res}</GeoTransform>{''.join(xml_bands)}</VRTDataset>"
    )


def _colour_table() -> str:
    cmap = classes.colormap()
    entries = (cmap.get(code, (0, 0, 0, 0)) for code in range(max(cmap) + 1))
    rows = "".join(f'<Entry c1="{r}" c2="{g}" c3="{b}" c4="{a}"/>' for r, g, b, a in entries)
    return f"<ColorInterp>Palette</ColorInterp><ColorTable>{rows}</ColorTable>"


def publish_mosaics(year: int, version: str, tiles: list[MapTile], store: ObjectStore, subtile_size: int) -> list[str]:
    """Per UTM zone, a VRT over the year's maps and one over their quality layers (GDAL paths, so QGIS reads
    the COGs where they are). Returns the map mosaics' keys."""
    by_zone: dict[int, list[grid.Subtile]] = {}
    for t in tiles:
        _, tile, sub = t.item_id.split("-", 2)
        by_zone.setdefault(t.epsg, []).append(grid.subtile(tile, sub, subtile_size))
    keys = []
    for epsg, members in sorted(by_zone.items()):
        key = map_mosaic_key(year, version, epsg)
        maps = [(st, store.gdal_path(map_key(year, version, st))) for st in members]
        qualities = [(st, store.gdal_path(map_quality_key(year, version, st))) for st in members]
        store.put_bytes(key, mosaic_vrt(maps, MAP_BANDS, palette=True).encode(), content_type="application/xml")
        quality_vrt = mosaic_vrt(qualities, QUALITY_BANDS, palette=False).encode()
        store.put_bytes(map_mosaic_key(year, version, epsg, quality=True), quality_vrt, content_type="application/xml")
        keys.append(key)
    return keys


def summary(tiles: list[MapTile], mosaics: list[str]) -> dict[str, object]:
    return {"subtiles": len(tiles), "mosaics": mosaics, "tiles": [asdict(t) for t in tiles]}


# --- the steps publish_map's tasks call (JSON in, JSON out; store, catalog and registry from settings) ---


def plan_map(year: int, settings: Settings | None = None) -> list[dict[str, Any]]:
    """One entry per feature stack of ``year``: the fan-out of publish_map (empty: no stacks)."""
    s = settings or get_settings()
    return [{"tile": st.tile.name, "subtile": st.id} for st in stacks_of_year(year, ready_catalog(s), s.subtile_size)]


def map_one_subtile(
    year: int, version: str, tile: str, subtile: str, settings: Settings | None = None
) -> dict[str, Any]:
    """Classify one stack with version ``version`` of the year's model and publish its map COG and item."""
    s = settings or get_settings()
    reg = registry.open_registry(s)
    model = reg.load_version(reg.ref(registry.model_name(year), version))
    st = grid.subtile(tile, subtile, s.subtile_size)
    return asdict(map_subtile(year, st, model, open_store(s), ready_catalog(s)))


def publish_map_mosaics(
    year: int, version: str, tiles: list[dict[str, Any]], settings: Settings | None = None
) -> dict[str, Any]:
    """The year's mosaics (one VRT per UTM zone) over the published subtile maps."""
    s = settings or get_settings()
    store = open_store(s)
    done = [MapTile(**t) for t in tiles]
    mosaics = publish_mosaics(year, version, done, store, s.subtile_size)
    return {"year": year, "version": version, **summary(done, [store.uri(k) for k in mosaics])}
