"""An area of interest and a year in, a classified map out: the prediction path behind the serving API.

The AOI is split by ownership (:func:`terracover.grid.subtiles_for_geometry`), so every output pixel is read from
exactly one subtile's feature stack: mosaics are seamless across tile and UTM-zone borders and never count a
pixel twice. Ownership is a preference, not a requirement: where the owner's stack was never built, the pixel
is taken from any other stack of that year whose footprint covers it (MGRS tiles overlap by ~10 km), so every
pixel some built stack covers is served (:func:`coverage`, :func:`served_footprint`). Only the window of each
stack under the AOI and only the model's feature bands are read. The output grid is the AOI's local UTM zone
on the 10 m lattice, which is the stacks' own lattice whenever they share that zone: those pixels are copied,
not resampled; only stacks of a neighbouring zone are reprojected (nearest neighbour, so classes stay classes).

Every prediction carries a quality layer next to class and confidence (like ESA WorldCover's input quality):
per pixel observed / gap-filled / classified with missing features / unclassified
(:mod:`terracover.observation`), and the count of clear observations behind it.
"""

from __future__ import annotations

import math
import reprlib
import time
import uuid
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from affine import Affine
from pyproj import Geod, Proj, Transformer
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.features import geometry_mask, shapes
from rasterio.warp import reproject
from rasterio.windows import Window
from shapely import force_2d
from shapely.geometry import MultiPolygon, Polygon, box, mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union
from shapely.validation import explain_validity

from terracover import classes, grid, observation
from terracover.catalog import COMPOSITES_COLLECTION, Catalog
from terracover.errors import AoiTooLargeError, BadRequestError, NoCoverageError
from terracover.fastpath import compile_proba
from terracover.features import select_bands
from terracover.keys import prediction_key, prediction_quality_key
from terracover.mapfile import write_map
from terracover.missing import UNCLASSIFIED, accepts_missing, classifiable_rows
from terracover.observation import FILLED, NOT_CLASSIFIED, OBSERVED, PARTIAL, STATUS_NAMES
from terracover.settings import Settings
from terracover.stacks import stack_item_id
from terracover.store import ObjectStore

if TYPE_CHECKING:
    from terracover.registry import LoadedModel

RES_M = grid.RES_M
PIXEL_HA = RES_M * RES_M / 10_000
# rows per predict_proba call: ~2x faster than one huge call (docs/architecture.md section 5), bounded memory
PROBA_BLOCK = 250_000
_GEOD = Geod(ellps="WGS84")

Format = Literal["cog", "geojson"]


# --- the AOI ---------------------------------------------------------------------------------------------


GEOMETRY_TYPES = ("Polygon", "MultiPolygon", "Point", "MultiPoint", "LineString", "MultiLineString")
_DEPTH = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2, "Polygon": 2, "MultiPolygon": 3}


MAX_LON_SPAN = 6.0  # one UTM zone's width: an answer is one raster in the AOI's zone


class AoiLimitError(AoiTooLargeError):
    """An AOI over a size limit that protects the service (vertices, features, bounding box)."""


def validate_aoi(obj: Any, max_km2: float | None = None, *, settings: Settings) -> Polygon | MultiPolygon:
    """A GeoJSON Geometry, Feature or FeatureCollection as one valid (Multi)Polygon in WGS84 lon/lat.

    Raises :class:`BadRequestError` naming what to fix: wrong type or nesting, non-finite or out-of-range
    coordinates, self-intersections, AOIs crossing the antimeridian (one request per side, see README), empty
    areas; and :class:`AoiTooLargeError` over a limit (geodesic area against ``max_km2``, default
    ``settings.max_aoi_km2``; vertex, feature and bounding-box caps from ``settings``). The raw JSON is walked
    and counted before any geometry is built, so a hostile body costs at most the limits' worth of work.
    """
    s = settings
    limit = s.max_aoi_km2 if max_km2 is None else max_km2
    geom = _as_geometry(obj, _Budget(s.max_aoi_vertices, s.max_aoi_features), "the AOI")
    if geom.is_empty:
        raise BadRequestError("the AOI is empty: give a Polygon or MultiPolygon with at least three distinct corners")
    if not isinstance(geom, Polygon | MultiPolygon):
        raise BadRequestError(f"the AOI is a {geom.geom_type}: only Polygon and MultiPolygon areas can be classified")
    minx, miny, maxx, maxy = geom.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise BadRequestError(
            f"AOI coordinates {geom.bounds} are outside lon [-180, 180] / lat [-90, 90]: send WGS84 longitude,"
            " latitude (in that order, as GeoJSON requires), not projected coordinates"
        )
    if miny < -80 or maxy > 84:
        raise BadRequestError(f"the AOI reaches latitude {miny if miny < -80 else maxy}: Sentinel-2 tiles span -80..84")
    if _crosses_antimeridian(geom) or maxx - minx > 180:
        raise BadRequestError(
            "the AOI crosses the antimeridian (longitude ±180°): send one request per side, each a Polygon whose"
            " longitudes stay within [-180, 180] on its own side (e.g. 179.9..180 and -180..-179.9), and add the"
            " answers' class areas"
        )
    if maxx - minx > MAX_LON_SPAN:
        raise AoiLimitError(
            f"the AOI spans {maxx - minx:.2f}° of longitude, more than the {MAX_LON_SPAN:.0f}° one map can hold (the"
            " answer is one raster in one UTM zone): send parts that far apart as separate requests"
        )
    if not geom.is_valid:
        raise BadRequestError(
            f"the AOI geometry is invalid ({explain_validity(geom)}): make the rings simple (no edge may cross"
            " another, e.g. a bow-tie) and closed; QGIS 'Fix geometries' or shapely make_valid() repair it"
        )
    area_m2, _ = _GEOD.geometry_area_perimeter(geom)
    km2 = abs(area_m2) / 1e6
    if km2 == 0:
        raise BadRequestError("the AOI has zero area: give a Polygon with at least three distinct corners")
    if km2 > limit:
        raise AoiTooLargeError(
            f"the AOI covers {km2:,.1f} km², more than the {limit:,.0f} km² limit: split it into parts"
        )
    bbox_km2 = abs(_GEOD.geometry_area_perimeter(box(minx, miny, maxx, maxy))[0]) / 1e6
    if bbox_km2 > s.max_aoi_bbox_km2:
        raise AoiLimitError(
            f"the AOI's bounding box covers {bbox_km2:,.0f} km², more than the {s.max_aoi_bbox_km2:,.0f} km²"
            " limit (TERRACOVER_MAX_AOI_BBOX_KM2; the answer is a raster over that box): send the far-apart"
            " or long thin parts as separate requests"
        )
    return geom


@dataclass
class _Budget:
    """The vertex and feature limits, and what one request's GeoJSON has used of them so far."""

    max_vertices: int
    max_features: int
    vertices: int = 0
    features: int = 0

    def take_features(self, n: int) -> None:
        self.features += n
        if self.features > self.max_features:
            raise AoiLimitError(
                f"the AOI has more features or geometries than the {self.max_features:,} allowed"
                " (TERRACOVER_MAX_AOI_FEATURES): merge them into one MultiPolygon or send several requests"
            )

    def take_vertices(self, n: int) -> None:
        self.vertices += n
        if self.vertices > self.max_vertices:
            raise AoiLimitError(
                f"the AOI has more than the {self.max_vertices:,} vertices allowed (TERRACOVER_MAX_AOI_VERTICES):"
                " simplify it (shapely simplify(), QGIS 'Simplify') to about 10 m tolerance, or split it into"
                " several requests"
            )


def _as_geometry(obj: Any, budget: _Budget, where: str) -> BaseGeometry:
    if not isinstance(obj, Mapping) or "type" not in obj:
        raise BadRequestError(
            f"{where} must be a GeoJSON object (Geometry, Feature or FeatureCollection) with a 'type'"
        )
    kind = obj["type"]
    if kind == "FeatureCollection":
        feats = obj.get("features")
        if not isinstance(feats, list) or not feats:
            raise BadRequestError("the FeatureCollection has no features: add at least one Polygon feature")
        budget.take_features(len(feats))
        parts = []
        for i, f in enumerate(feats):
            if not isinstance(f, Mapping) or f.get("type") != "Feature":
                raise BadRequestError(
                    f"features[{i}] of the FeatureCollection is not a Feature: each member must be"
                    ' {"type": "Feature", "geometry": {...}, "properties": {...}}'
                )
            parts.append(_as_geometry(f, budget, f"features[{i}]"))
        return unary_union(parts) if len(parts) > 1 else parts[0]
    if kind == "Feature":
        geometry = obj.get("geometry")
        if not geometry:
            raise BadRequestError(f"{where} (a Feature) has no geometry: give each feature a Polygon geometry")
        if not isinstance(geometry, Mapping) or geometry.get("type") not in (*GEOMETRY_TYPES, "GeometryCollection"):
            raise BadRequestError(
                f"the geometry of {where} is not a GeoJSON geometry: a Feature holds a Polygon or MultiPolygon"
                " (Features and FeatureCollections cannot be nested inside it)"
            )
        return _as_geometry(geometry, budget, f"the geometry of {where}")
    if kind == "GeometryCollection":
        members = obj.get("geometries")
        if not isinstance(members, list):
            raise BadRequestError(f'{where} is a GeometryCollection without a "geometries" list')
        budget.take_features(len(members))
        return unary_union([_as_geometry(m, budget, f"geometries[{i}] of {where}") for i, m in enumerate(members)])
    if kind not in GEOMETRY_TYPES:
        raise BadRequestError(
            f"{where} has GeoJSON type {reprlib.repr(kind)}, which is not one of Feature, FeatureCollection or the"
            " RFC 7946 geometries: send a Polygon or MultiPolygon (convert TopoJSON, KML, WKT first, e.g. with"
            " GDAL's ogr2ogr -f GeoJSON)"
        )
    _check_coordinates(obj.get("coordinates"), _DEPTH[kind], budget, f"{where} ({kind})")
    try:
        return force_2d(shape(obj))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise BadRequestError(
            f"{where} is not a readable GeoJSON geometry ({type(exc).__name__}: {exc}): a Polygon needs"
            ' "coordinates": [[[lon, lat], ...]] with closed rings of at least four positions'
        ) from exc


def _check_coordinates(coords: Any, depth: int, budget: _Budget, where: str) -> None:
    """Arrays nested ``depth`` deep around positions of 2-3 finite numbers, counted against the vertex budget."""
    shape_hint = "[lon, lat]" if depth == 0 else "[" * depth + "[lon, lat], ..." + "]" * depth
    stack: list[tuple[Any, int]] = [(coords, depth)]
    while stack:
        node, level = stack.pop()
        if not isinstance(node, list | tuple):
            raise BadRequestError(f'the "coordinates" of {where} must be nested arrays like {shape_hint}')
        if level > 0:
            stack.extend((child, level - 1) for child in node)
            continue
        budget.take_vertices(1)
        if not 2 <= len(node) <= 3 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in node):
            raise BadRequestError(
                f"a position of {where} is {reprlib.repr(node)}: each position is [lon, lat] (or [lon, lat, height])"
                " in numbers"
            )
        if not all(math.isfinite(v) for v in node):
            raise BadRequestError(
                f"a position of {where} is {node}: coordinates must be finite numbers (no NaN or Infinity);"
                " drop or fix the vertices your client could not compute"
            )


def _crosses_antimeridian(geom: Polygon | MultiPolygon) -> bool:
    """True when an edge jumps more than 180° of longitude: drawn across ±180°, not around the globe."""
    polys = geom.geoms if isinstance(geom, MultiPolygon) else [geom]
    for poly in polys:
        for ring in (poly.exterior, *poly.interiors):
            lon = np.asarray(ring.coords)[:, 0]
            if len(lon) > 1 and np.abs(np.diff(lon)).max() > 180:
                return True
    return False


# --- the output grid -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputGrid:
    """The AOI's local UTM zone at 10 m, snapped outward to the 10 m lattice (the stacks' own lattice)."""

    crs: CRS
    transform: Affine
    shape: tuple[int, int]

    @classmethod
    def for_aoi(cls, aoi_wgs84: BaseGeometry) -> OutputGrid:
        c = aoi_wgs84.centroid
        crs = CRS.from_epsg(grid.utm_epsg_for(c.x, c.y))
        aoi = _project(aoi_wgs84, crs)
        minx, miny, maxx, maxy = aoi.bounds
        x0, y1 = math.floor(minx / RES_M) * RES_M, math.ceil(maxy / RES_M) * RES_M
        width = max(1, math.ceil((maxx - x0) / RES_M))
        height = max(1, math.ceil((y1 - miny) / RES_M))
        return cls(crs, Affine(RES_M, 0, x0, 0, -RES_M, y1), (height, width))

    def window_of(self, bounds: tuple[float, float, float, float]) -> Window | None:
        """The pixels whose extent meets ``bounds``, clipped to the grid (None when outside)."""
        return _window(self.transform, self.shape, bounds)


def _window(transform: Affine, shape: tuple[int, int], bounds: tuple[float, float, float, float]) -> Window | None:
    inv = ~transform
    c0, r0 = inv @ (bounds[0], bounds[3])
    c1, r1 = inv @ (bounds[2], bounds[1])
    col0, row0 = max(0, math.floor(min(c0, c1))), max(0, math.floor(min(r0, r1)))
    col1, row1 = min(shape[1], math.ceil(max(c0, c1))), min(shape[0], math.ceil(max(r0, r1)))
    if col1 <= col0 or row1 <= row0:
        return None
    return Window(col0, row0, col1 - col0, row1 - row0)


def _project(geom_wgs84: BaseGeometry, crs: CRS) -> BaseGeometry:
    # Densify first: an AOI edge is a straight line in lon/lat, a curve in UTM.
    to_crs = Transformer.from_crs(4326, crs, always_xy=True).transform
    return grid.transform_xy(to_crs, geom_wgs84.segmentize(0.001))


def _slices(win: Window) -> tuple[slice, slice]:
    r, c = int(win.row_off), int(win.col_off)
    return slice(r, r + int(win.height)), slice(c, c + int(win.width))


# --- classification --------------------------------------------------------------------------------------


_COMPILED: weakref.WeakKeyDictionary[Any, Callable[[np.ndarray], np.ndarray] | None] = weakref.WeakKeyDictionary()


def _proba_fn(est: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The estimator's fastest exact ``predict_proba`` (see :mod:`terracover.fastpath`), compiled once."""
    if est not in _COMPILED:
        _COMPILED[est] = compile_proba(est)
    return _COMPILED[est] or est.predict_proba


def classify(model: LoadedModel, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class codes (uint8) and max class probability (float32) of each row of ``X`` (the model's features).

    Rows the model cannot see (:func:`terracover.missing.classifiable_rows`: a NaN or infinite feature, unless
    the model declared it accepts missing values) come back unclassified, code 0 and confidence NaN, and the
    other rows of the same call are classified: one bad row never fails or skews the batch.
    """
    est = model.estimator
    codes = np.asarray(est.classes_).astype(np.uint8)
    proba_fn = _proba_fn(est)
    out_cls = np.full(len(X), UNCLASSIFIED, dtype=np.uint8)
    out_conf = np.full(len(X), np.nan, dtype=np.float32)
    ok = classifiable_rows(est, X)
    rows = np.flatnonzero(ok)
    with warnings.catch_warnings():
        # Estimators fitted on DataFrames warn on plain arrays; the column order is the model's feature list.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        for start in range(0, len(rows), PROBA_BLOCK):
            idx = rows[start : start + PROBA_BLOCK]
            block = X[idx[0] : idx[-1] + 1] if len(idx) == idx[-1] - idx[0] + 1 else X[idx]
            proba = proba_fn(block)
            best = proba.argmax(axis=1)
            out_cls[idx] = codes[best]
            out_conf[idx] = proba[np.arange(len(best)), best]
    return out_cls, out_conf


@dataclass
class _Mosaic:
    grid: OutputGrid
    codes: np.ndarray  # (H, W) uint8, 0 = no class
    confidence: np.ndarray  # (H, W) float32, NaN = no class
    in_aoi: np.ndarray  # (H, W) bool
    quality: np.ndarray  # (H, W) uint8: observation.OBSERVED..NOT_CLASSIFIED, 0 outside the AOI
    clear: np.ndarray  # (H, W) uint8 clear observations behind the pixel (0 when unknown)
    all_touched: bool = False  # True for AOIs so thin that no pixel centre falls inside them
    keep_rows: int | None = None  # feature rows kept per subtile for drift/shadow (None: all)
    rows: list[np.ndarray] = field(default_factory=list)  # per subtile (n, F) float32 feature rows classified
    row_codes: list[np.ndarray] = field(default_factory=list)


def _read_part(
    st: grid.Subtile, key: str, win: Window, names: Sequence[str], qa_names: Sequence[str], store: ObjectStore
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """(F, h, w) feature values, the (S, h, w) ``qa_*`` bands of ``qa_names`` the stack has (None if none) and
    their names."""
    with store.open_raster(key) as src:
        bands = list(src.descriptions)
        have = [q for q in qa_names if q in bands]
        data = np.asarray(src.read(select_bands(bands, [*names, *have]), window=win, out_dtype=np.float32))
    return data[: len(names)], (data[len(names) :] if have else None), have


@dataclass(frozen=True)
class WindowClasses:
    """A window classified: (h, w) class codes, confidences, observation status and clear-observation counts,
    plus the (n, F) feature rows it classified and their codes (for drift and shadow scoring)."""

    codes: np.ndarray
    confidence: np.ndarray
    quality: np.ndarray
    clear: np.ndarray
    rows: np.ndarray
    row_codes: np.ndarray


def classify_window(
    values: np.ndarray, qa: np.ndarray | None, mask: np.ndarray | None, n_model: int, model: LoadedModel
) -> WindowClasses:
    """Classify a (F, h, w) window's pixels (those in ``mask``, or all); the quality is the observation
    status (NOT_CLASSIFIED where no class), the same for an answered AOI and a published map."""
    finite = np.isfinite(values[:n_model])
    complete = finite.all(axis=0)
    quality = observation.status_of(complete, qa, axis=0)
    if accepts_missing(model.estimator):
        seasonal = observation.seasonal(model.features)  # terrain alone is no observation
        use = finite[seasonal].any(axis=0) if seasonal.any() else complete
    else:
        use = complete.copy()
    if mask is not None:
        use &= mask
    X = np.ascontiguousarray(values[:, use].T)  # (n, F) float32: just these pixels
    cls, conf = classify(model, X[:, :n_model])
    codes = np.zeros(use.shape, dtype=np.uint8)
    confidence = np.full(use.shape, np.nan, dtype=np.float32)
    codes[use], confidence[use] = cls, conf
    quality[codes == 0] = NOT_CLASSIFIED
    clear = observation.clear_count(qa, axis=0)
    return WindowClasses(codes, confidence, quality, np.zeros(use.shape, np.uint8) if clear is None else clear, X, cls)


def _classify_part(
    values: np.ndarray,
    qa: np.ndarray | None,
    mask: np.ndarray | None,
    n_model: int,
    model: LoadedModel,
    mosaic: _Mosaic,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`classify_window`, keeping a sample of the classified rows in ``mosaic`` for drift and shadow."""
    w = classify_window(values, qa, mask, n_model, model)
    X, cls = w.rows, w.row_codes
    if mosaic.keep_rows is not None and len(X) > mosaic.keep_rows:
        pick = np.sort(np.random.default_rng(len(X)).choice(len(X), mosaic.keep_rows, replace=False))
        X, cls = X[pick], cls[pick]
    mosaic.rows.append(X)
    mosaic.row_codes.append(cls)
    return w.codes, w.confidence, w.quality, w.clear


@dataclass(frozen=True)
class _Classifier:
    """One model classifying a shared read: the positions of its rows' columns (its features first, then the
    extra features) among the bands read, and of its ``qa_*`` bands among the quality bands read."""

    model: LoadedModel
    mosaic: _Mosaic
    columns: list[int]
    qa_names: list[str]


def _add_part(source: StackPart, names: Sequence[str], classifiers: Sequence[_Classifier], store: ObjectStore) -> None:
    """Read one stack's part of the AOI once (the union of ``names``' bands and every model's ``qa_*`` bands)
    and classify it with each model into its own mosaic."""
    st, key, part = source.subtile, source.key, source.area
    if part.is_empty or part.area == 0:
        return
    qa_names = list(dict.fromkeys(q for c in classifiers for q in c.qa_names))
    g = classifiers[0].mosaic.grid
    all_touched = classifiers[0].mosaic.all_touched
    part_out = _project(part, g.crs)
    if g.crs == st.crs:
        # Same lattice: the source window IS the output window, shifted by whole pixels.
        wins = _aligned_windows(st, g, part_out.bounds)
        if wins is None:
            return
        src_win, out_win = wins
        mask = _inside(part_out, out_win, g, all_touched)
        values, qa, have = _read_part(st, key, src_win, names, qa_names, store)
        for c in classifiers:
            model_qa = _model_qa(qa, have, c.qa_names)
            w = _classify_part(_columns(values, c), model_qa, mask, len(c.model.features), c.model, c.mosaic)
            _merge(c.mosaic, out_win, mask, w)
        return
    # A neighbouring zone: classify its own pixels (padded so nearest-neighbour has a source for every
    # output pixel the part covers), then reproject classes and confidences onto the output grid.
    out_win = g.window_of(part_out.bounds)
    part_src = _project(part, st.crs)
    pad = 2 * RES_M
    b = part_src.bounds
    src_win = _window(st.transform, st.shape, (b[0] - pad, b[1] - pad, b[2] + pad, b[3] + pad))
    if out_win is None or src_win is None:
        return
    mask = _inside(part_out, out_win, g, all_touched)
    values, qa, have = _read_part(st, key, src_win, names, qa_names, store)
    src_transform = st.transform @ Affine.translation(src_win.col_off, src_win.row_off)
    dst_transform = g.transform @ Affine.translation(out_win.col_off, out_win.row_off)
    shape = (int(out_win.height), int(out_win.width))
    for c in classifiers:
        model_qa = _model_qa(qa, have, c.qa_names)
        src_layers = _classify_part(_columns(values, c), model_qa, None, len(c.model.features), c.model, c.mosaic)
        codes = np.zeros(shape, dtype=np.uint8)
        conf = np.full(shape, np.nan, dtype=np.float32)
        quality = np.full(shape, NOT_CLASSIFIED, dtype=np.uint8)
        clear = np.zeros(shape, dtype=np.uint8)
        for src, dst, nodata in zip(src_layers, (codes, conf, quality, clear), (0, np.nan, None, None), strict=True):
            reproject(
                src,
                dst,
                src_transform=src_transform,
                src_crs=st.crs,
                dst_transform=dst_transform,
                dst_crs=g.crs,
                resampling=Resampling.nearest,
                src_nodata=nodata,
                dst_nodata=nodata,
            )
        _merge(c.mosaic, out_win, mask, (codes, conf, quality, clear))


def _columns(values: np.ndarray, c: _Classifier) -> np.ndarray:
    """One model's (F, h, w) columns of a shared read (no copy when they are all of it, in order)."""
    return values if c.columns == list(range(len(values))) else values[c.columns]


def _model_qa(qa: np.ndarray | None, have: Sequence[str], wanted: Sequence[str]) -> np.ndarray | None:
    """The ``qa_*`` bands of one model (in its order) among those read, None when the stack has none of them."""
    rows = [have.index(q) for q in wanted if q in have]
    return None if qa is None or not rows else qa[rows]


def _merge(
    mosaic: _Mosaic,
    out_win: Window,
    mask: np.ndarray,
    layers: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Put one part's classes, confidences, quality and clear counts (on ``out_win``) into the mosaic."""
    codes, conf, quality, clear = layers
    rs, cs = _slices(out_win)
    mosaic.in_aoi[rs, cs] |= mask
    take = mask & (codes > 0)
    mosaic.codes[rs, cs][take] = codes[take]
    mosaic.confidence[rs, cs][take] = conf[take]
    # Parts only meet at their borders: a pixel another part classified keeps that part's quality.
    free = mask & (take | (mosaic.codes[rs, cs] == 0))
    mosaic.quality[rs, cs][free] = np.where(take, quality, NOT_CLASSIFIED)[free]
    mosaic.clear[rs, cs][free] = clear[free]


def _aligned_windows(
    st: grid.Subtile, g: OutputGrid, bounds: tuple[float, float, float, float]
) -> tuple[Window, Window] | None:
    """The same pixels as a window of the subtile and of the output grid (one lattice, whole-pixel shift)."""
    out_win = g.window_of(bounds)
    if out_win is None:
        return None
    x0, y0 = g.transform @ (out_win.col_off, out_win.row_off)
    c, r = ~st.transform @ (x0, y0)
    col0, row0 = round(c), round(r)
    c0, r0 = max(col0, 0), max(row0, 0)
    c1 = min(col0 + int(out_win.width), st.shape[1])
    r1 = min(row0 + int(out_win.height), st.shape[0])
    if c1 <= c0 or r1 <= r0:
        return None
    src = Window(c0, r0, c1 - c0, r1 - r0)
    out = Window(out_win.col_off + c0 - col0, out_win.row_off + r0 - row0, c1 - c0, r1 - r0)
    return src, out


def _inside(geom: BaseGeometry, win: Window, g: OutputGrid, all_touched: bool) -> np.ndarray:
    """Pixels of the output window whose centre lies in ``geom`` (or that it touches at all)."""
    shape = (int(win.height), int(win.width))
    transform = g.transform @ Affine.translation(win.col_off, win.row_off)
    return geometry_mask([geom], out_shape=shape, transform=transform, invert=True, all_touched=all_touched)


# --- the prediction --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """One answered prediction; ``rows``/``row_codes`` keep the classified feature vectors for drift and
    shadow scoring (columns = ``feature_names``, the model's features first); ``codes``/``confidence`` the
    classified grid as written, so a caller comparing maps does not read the COG back."""

    prediction_id: str
    year: int
    key: str  # the map: class and confidence
    quality_key: str  # its quality layer: observation status and clear-observation count
    aoi: BaseGeometry
    crs: CRS
    transform: Affine
    shape: tuple[int, int]
    avg_confidence: float
    class_areas_ha: dict[str, float]
    unclassified_ha: float
    pixels: int
    classified_fraction: float  # of the AOI's pixels
    quality_fractions: dict[str, float]  # observed, gap_filled, missing_features, unclassified (sum 1)
    composite_items: list[str]
    feature_names: list[str]
    rows: np.ndarray
    row_codes: np.ndarray
    seconds: float
    codes: np.ndarray  # (H, W) uint8 on the grid of ``transform``: what the map's band 1 holds (0 = no class)
    confidence: np.ndarray  # (H, W) float32 maximum class probability, NaN where no class
    geojson: dict[str, Any] | None = None
    quality_geojson: dict[str, Any] | None = None

    @property
    def gap_filled_fraction(self) -> float:
        """Share of the AOI's pixels classified from features with at least one gap-filled season."""
        return self.quality_fractions.get("gap_filled", 0.0)


def new_prediction_id() -> str:
    """Sortable by time, unique without coordination between replicas."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class StackPart:
    """One feature stack and the part of the AOI (WGS84) whose pixels it serves."""

    subtile: grid.Subtile
    key: str
    item_id: str
    area: BaseGeometry


def _stack_key(item: Any) -> str:
    return str(item.assets["features"].extra_fields["terracover:key"])


def coverage(aoi_wgs84: BaseGeometry, year: int, catalog: Catalog, settings: Settings) -> list[StackPart]:
    """The stacks serving the AOI and the part each serves, or :class:`NoCoverageError` listing what is missing.

    Each subtile's owned part comes from its own stack when that was built. The owned parts of subtiles
    without a stack are taken from any other stack of the year whose footprint covers them (stacks of the
    AOI's UTM zone first: their pixels are copied, not resampled); only what no stack covers is an error.
    """
    subs = grid.subtiles_for_geometry(aoi_wgs84, settings.subtile_size)
    ids = [stack_item_id(year, st) for st in subs]
    found = {i.id: i for i in catalog.search(collections=[COMPOSITES_COLLECTION], ids=ids)} if ids else {}
    parts = [
        StackPart(st, _stack_key(found[i]), i, aoi_wgs84.intersection(st.owned_wgs84))
        for st, i in zip(subs, ids, strict=True)
        if i in found
    ]
    orphans = [st for st, i in zip(subs, ids, strict=True) if i not in found]
    if not orphans:
        return parts
    gap = unary_union([aoi_wgs84.intersection(st.owned_wgs84) for st in orphans])
    zone = grid.utm_epsg_for(aoi_wgs84.centroid.x, aoi_wgs84.centroid.y)
    others = catalog.search(
        collections=[COMPOSITES_COLLECTION], bbox=gap.bounds, properties={"terracover:year": int(year)}
    )
    tiles = {str(i.properties["terracover:tile"]): grid.tile(str(i.properties["terracover:tile"])) for i in others}
    for item in sorted(others, key=lambda i: (tiles[str(i.properties["terracover:tile"])].epsg != zone, i.id)):
        footprint = shape(item.geometry) if item.geometry else None
        if footprint is None or not footprint.intersects(gap):
            continue
        st = grid.subtile(str(item.properties["terracover:tile"]), str(item.properties["terracover:subtile"]),
                          settings.subtile_size)  # fmt: skip
        parts.append(StackPart(st, _stack_key(item), item.id, gap.intersection(footprint)))
        gap = gap.difference(footprint)
        if _negligible(gap):
            return parts
    if _negligible(gap):
        return parts
    missing = [f"{st.tile.name}/{st.id}" for st in orphans if st.owned_wgs84.intersects(gap)]
    raise NoCoverageError(
        f"no {year} feature stack covers part of this AOI: the subtiles {', '.join(missing[:20])}"
        f"{', ...' if len(missing) > 20 else ''} have none and no neighbouring stack reaches there"
        f" ({len(missing)} of the {len(subs)} subtiles it needs): run build_composites for {year} over this area,"
        f" or draw the AOI inside the served footprint (GET /coverage?year={year})",
        missing,
    )


def _negligible(gap: BaseGeometry) -> bool:
    """Nothing left, or only slivers thinner than ~1 cm from edges that differ in the last digits."""
    return bool(gap.is_empty or gap.buffer(-1e-7).is_empty)


def served_footprint(year: int, catalog: Catalog) -> BaseGeometry | None:
    """The union of the year's stack footprints (WGS84): exactly the area :func:`predict_aoi` serves."""
    items = catalog.search(collections=[COMPOSITES_COLLECTION], properties={"terracover:year": int(year)})
    shapes_ = [shape(i.geometry) for i in items if i.geometry]
    return unary_union(shapes_) if shapes_ else None


def predict_aoi(
    aoi: BaseGeometry,
    year: int,
    model: LoadedModel,
    store: ObjectStore,
    catalog: Catalog,
    settings: Settings,
    *,
    fmt: Format = "cog",
    extra_features: Sequence[str] = (),
    prediction_id: str | None = None,
    keep_rows: int | None = None,
) -> Prediction:
    """Classify a validated AOI (see :func:`validate_aoi`) with ``model`` and store the COG.

    ``extra_features`` are read alongside the model's (one pass over the stacks) and kept in ``rows``, so a
    shadow model with other features can score the same pixels without reading again; ``keep_rows`` bounds
    how many rows each subtile keeps there (a random sample), so memory does not grow with the AOI.
    """
    (p,) = predict_aoi_models(
        aoi, year, [model], store, catalog, settings,
        fmt=fmt, extra_features=extra_features, prediction_ids=[prediction_id], keep_rows=keep_rows,
    )  # fmt: skip
    return p


def predict_aoi_models(
    aoi: BaseGeometry,
    year: int,
    models: Sequence[LoadedModel],
    store: ObjectStore,
    catalog: Catalog,
    settings: Settings,
    *,
    fmt: Format = "cog",
    extra_features: Sequence[str] = (),
    prediction_ids: Sequence[str | None] | None = None,
    keep_rows: int | None = None,
) -> list[Prediction]:
    """:func:`predict_aoi` with several models over one read of the year's stacks: each stack window is read
    once (the union of the models' bands) and classified by every model, one prediction (and COG) per model.
    A change between years classifies one year with two models (:mod:`terracover.change`)."""
    t0 = time.perf_counter()
    parts = coverage(aoi, year, catalog, settings)
    extras = list(dict.fromkeys(extra_features))
    names = list(dict.fromkeys([*(f for m in models for f in m.features), *extras]))
    g = OutputGrid.for_aoi(aoi)
    for all_touched in (False, True):
        # Pixels whose centre is in the AOI; an AOI too thin to hold any centre takes every pixel it touches.
        classifiers = [
            _Classifier(
                m,
                _Mosaic(
                    g,
                    np.zeros(g.shape, dtype=np.uint8),
                    np.full(g.shape, np.nan, dtype=np.float32),
                    np.zeros(g.shape, dtype=bool),
                    np.zeros(g.shape, dtype=np.uint8),
                    np.zeros(g.shape, dtype=np.uint8),
                    all_touched,
                    keep_rows,
                ),
                [names.index(f) for f in [*m.features, *(f for f in extras if f not in m.features)]],
                observation.qa_bands_for(m.features),
            )
            for m in models
        ]
        for part in parts:
            _add_part(part, names, classifiers, store)
        if classifiers[0].mosaic.in_aoi.any():
            break
    for c in classifiers:  # before any map is written: a request answers all its maps or none
        if not (c.mosaic.codes > 0).any():
            raise NoCoverageError(
                f"the {year} feature stacks under this AOI hold no clear observation for the model's features"
                f" ({', '.join(f'{p.subtile.tile.name}/{p.subtile.id}' for p in parts)} are all no-data there):"
                " pick another area or year, or rebuild the composites with more scenes",
                [f"{p.subtile.tile.name}/{p.subtile.id}" for p in parts],
            )
    ids = list(prediction_ids or [None] * len(models))
    return [
        _prediction(aoi, year, c, parts, [names[i] for i in c.columns], store, fmt, pid, t0)
        for c, pid in zip(classifiers, ids, strict=True)
    ]


def _prediction(
    aoi: BaseGeometry,
    year: int,
    c: _Classifier,
    parts: Sequence[StackPart],
    names: list[str],
    store: ObjectStore,
    fmt: Format,
    prediction_id: str | None,
    t0: float,
) -> Prediction:
    """One model's classified mosaic summarised, and its COGs written."""
    mosaic, model, g = c.mosaic, c.model, c.mosaic.grid
    classified = mosaic.codes > 0
    pid = prediction_id or new_prediction_id()
    key, quality_key = prediction_key(year, pid), prediction_quality_key(year, pid)
    scale = _areal_scale(aoi, g.crs)
    conf = mosaic.confidence[classified]
    areas = _class_areas(mosaic.codes[classified], scale)
    unclassified = float((mosaic.in_aoi & ~classified).sum()) * PIXEL_HA / scale
    mosaic.quality[mosaic.in_aoi & ~classified] = NOT_CLASSIFIED
    n_aoi = max(int(mosaic.in_aoi.sum()), 1)
    counts = np.bincount(mosaic.quality[mosaic.in_aoi], minlength=NOT_CLASSIFIED + 1)
    _write(key, quality_key, mosaic, model, year, pid, store)
    rows = np.concatenate(mosaic.rows) if mosaic.rows else np.empty((0, len(names)), np.float32)
    row_codes = np.concatenate(mosaic.row_codes) if mosaic.row_codes else np.empty(0, np.uint8)
    return Prediction(
        prediction_id=pid,
        year=year,
        key=key,
        quality_key=quality_key,
        aoi=aoi,
        crs=g.crs,
        transform=g.transform,
        shape=g.shape,
        avg_confidence=float(conf.mean(dtype=np.float64)),
        class_areas_ha=areas,
        unclassified_ha=round(unclassified, 4),
        pixels=int(classified.sum()),
        classified_fraction=round(int(classified.sum()) / n_aoi, 6),
        quality_fractions={name: round(int(counts[code]) / n_aoi, 6) for code, name in STATUS_NAMES.items()},
        composite_items=list(dict.fromkeys(p.item_id for p in parts)),
        feature_names=names,
        rows=rows,
        row_codes=row_codes,
        seconds=time.perf_counter() - t0,
        codes=mosaic.codes,
        confidence=mosaic.confidence,
        geojson=class_polygons(mosaic.codes, g) if fmt == "geojson" else None,
        quality_geojson=quality_polygons(mosaic.quality, g) if fmt == "geojson" else None,
    )


def _areal_scale(aoi: BaseGeometry, crs: CRS) -> float:
    """UTM's area distortion at the AOI (0.9992..1.0016 across a zone): grid m² / true m²."""
    c = aoi.centroid
    return float(Proj(crs).get_factors(c.x, c.y).areal_scale)


def _class_areas(codes: np.ndarray, scale: float) -> dict[str, float]:
    counts = np.bincount(codes, minlength=256)
    return {
        classes.CLASS_BY_CODE[int(c)].name if int(c) in classes.CLASS_BY_CODE else f"class_{int(c)}": round(
            float(counts[c]) * PIXEL_HA / scale, 4
        )
        for c in np.flatnonzero(counts)
    }


def _write(
    key: str, quality_key: str, mosaic: _Mosaic, model: LoadedModel, year: int, pid: str, store: ObjectStore
) -> None:
    tags = {
        "terracover:prediction_id": pid,
        "terracover:year": str(year),
        "terracover:model": f"{model.name}/{model.version}",
        "terracover:run_id": model.run_id,
    }
    layers = (mosaic.codes, mosaic.confidence, mosaic.quality, mosaic.clear)
    write_map(store, key, quality_key, layers, mosaic.grid.transform, mosaic.grid.crs, tags)


def _polygons_by_value(band: np.ndarray, g: OutputGrid) -> dict[int, BaseGeometry]:
    """WGS84 MultiPolygon of each non-zero value of a uint8 band."""
    to_wgs84 = Transformer.from_crs(g.crs, 4326, always_xy=True).transform
    by_value: dict[int, list[Polygon]] = {}
    for geom, value in shapes(band, mask=band > 0, transform=g.transform, connectivity=4):
        by_value.setdefault(int(value), []).append(shape(geom))
    return {v: grid.transform_xy(to_wgs84, MultiPolygon(p)) for v, p in sorted(by_value.items())}


QUALITY_COLOURS = {OBSERVED: "#1a9641", FILLED: "#fdae61", PARTIAL: "#d7191c", NOT_CLASSIFIED: "#404040"}


def quality_polygons(quality: np.ndarray, g: OutputGrid) -> dict[str, Any]:
    """The quality band as a WGS84 FeatureCollection: one feature per observation status present."""
    feats = [
        {
            "type": "Feature",
            "geometry": mapping(polys),
            "properties": {"quality": code, "name": STATUS_NAMES[code], "colour": QUALITY_COLOURS[code]},
        }
        for code, polys in _polygons_by_value(quality, g).items()
    ]
    return {"type": "FeatureCollection", "features": feats}


def class_polygons(codes: np.ndarray, g: OutputGrid) -> dict[str, Any]:
    """The class band as a WGS84 FeatureCollection: one MultiPolygon feature per class present."""
    feats = []
    for code, polys in _polygons_by_value(codes, g).items():
        c = classes.CLASS_BY_CODE.get(code)
        feats.append(
            {
                "type": "Feature",
                "geometry": mapping(polys),
                "properties": {
                    "class_code": code,
                    "class_name": c.name if c else f"class_{code}",
                    "colour": c.colour if c else "#000000",
                },
            }
        )
    return {"type": "FeatureCollection", "features": feats}
