"""Hypothesis strategies for GeoJSON areas of interest: valid, subtly invalid and hostile.

Used by the unit fuzzing of ``validate_aoi``, the fuzzing of the real service and the reliability benchmark.
Large bodies (thousands of features, 100k+ vertices) are built with numpy from a drawn seed, so generating
them costs milliseconds and Hypothesis still records and shrinks the seed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import strategies as st

Json = Any

HOSTILE_NUMBERS = [math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, -0.0, 1e-12, 2**63, -(2**63), 180.0000001]
TYPES = ["Polygon", "MultiPolygon", "Point", "LineString", "MultiPoint", "MultiLineString", "GeometryCollection"]
UNKNOWN_TYPES = ["Topology", "polygon", "Circle", "Box", "", "Feature ", None, 5, [], {}, "FeatureCollection\x00"]


class Large(dict[str, Any]):
    """A big generated GeoJSON object that prints as a one-line summary (Hypothesis prints failing examples,
    and a 5,000-deep or 100k-vertex repr helps nobody)."""

    def __init__(self, summary: str, obj: dict[str, Any]) -> None:
        super().__init__(obj)
        self.summary = summary

    def __repr__(self) -> str:
        return f"<{self.summary}>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))


def lon(lo: float = -180, hi: float = 180) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def lat(lo: float = -80, hi: float = 84) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def ring_from(center: tuple[float, float], radius: float, n: int, jitter_seed: int) -> list[list[float]]:
    """A closed, simple (star-shaped) ring of ``n`` vertices around ``center``."""
    rng = np.random.default_rng(jitter_seed)
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = radius * rng.uniform(0.5, 1.0, n)
    xs = center[0] + r * np.cos(angles)
    ys = center[1] + r * np.sin(angles)
    ring = np.column_stack([xs, ys]).tolist()
    return [*ring, ring[0]]


@st.composite
def small_polygon(
    draw: st.DrawFn, bbox: tuple[float, float, float, float] = (-180, -80, 180, 84), max_size: float = 0.008
) -> Json:
    """A valid Polygon (a box or a star-shaped ring) inside ``bbox``, at most ``2 * max_size`` degrees across."""
    w, s, e, n = bbox
    size = draw(st.floats(1e-5, min(max_size, (e - w) / 2.5, (n - s) / 2.5)))
    x, y = draw(lon(w + size, e - size)), draw(lat(s + size, n - size))
    if draw(st.booleans()):
        x0, x1, y0, y1 = x - size, x + size, y - size, y + size
        return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}
    ring = ring_from((x, y), size, draw(st.integers(3, 40)), draw(st.integers(0, 2**32 - 1)))
    return {"type": "Polygon", "coordinates": [ring]}


def wrapped(geometry: st.SearchStrategy[Json]) -> st.SearchStrategy[Json]:
    """The geometry as is, as a Feature or as a one-feature FeatureCollection."""
    return st.one_of(
        geometry,
        geometry.map(lambda g: {"type": "Feature", "geometry": g, "properties": {}}),
        geometry.map(
            lambda g: {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": g, "properties": {}}]}
        ),
    )


def valid_aois(
    bbox: tuple[float, float, float, float] = (-180, -80, 180, 84), max_size: float = 0.008
) -> st.SearchStrategy[Json]:
    """A Polygon, or a MultiPolygon of 2-4 disjoint parts (each in its own column of ``bbox``), wrapped."""
    w, s, e, n = bbox
    polygon = small_polygon(bbox, max_size)

    @st.composite
    def multi(draw: st.DrawFn) -> Json:
        k = draw(st.integers(2, 4))
        step = (e - w) / k
        parts = [draw(small_polygon((w + i * step, s, w + (i + 1) * step - step / 10, n), max_size)) for i in range(k)]
        return {"type": "MultiPolygon", "coordinates": [p["coordinates"] for p in parts]}

    return wrapped(st.one_of(polygon, multi()))


@st.composite
def subtly_invalid(draw: st.DrawFn, bbox: tuple[float, float, float, float] = (-180, -80, 180, 84)) -> Json:  # noqa: PLR0911
    """A valid polygon with one thing wrong, as clients get it wrong."""
    ring = draw(small_polygon(bbox))["coordinates"][0]
    mutation = draw(st.sampled_from(range(14)))
    match mutation:
        case 0:  # unclosed ring
            return {"type": "Polygon", "coordinates": [ring[:-1]]}
        case 1:  # too few positions
            return {"type": "Polygon", "coordinates": [ring[:2]]}
        case 2:  # lat, lon swapped
            return {"type": "Polygon", "coordinates": [[[b, a] for a, b in ring]]}
        case 3:  # bow-tie
            (x0, y0), (x1, y1) = ring[0], ring[len(ring) // 2]
            return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y1], [x1, y0], [x0, y1], [x0, y0]]]}
        case 4:  # one nesting level too few / too many
            return {"type": "Polygon", "coordinates": draw(st.sampled_from([ring, [[ring]], ring[0]]))}
        case 5:  # numbers as strings
            return {"type": "Polygon", "coordinates": [[[str(a), str(b)] for a, b in ring]]}
        case 6:  # positions of 1 or 4+ numbers
            return {
                "type": "Polygon",
                "coordinates": [[[a] if i % 2 else [a, b, 0, 0] for i, (a, b) in enumerate(ring)]],
            }
        case 7:  # a hole outside its shell
            hole = [[a + 1, b + 1] for a, b in ring]
            return {"type": "Polygon", "coordinates": [ring, hole]}
        case 8:  # all points equal (zero area)
            return {"type": "Polygon", "coordinates": [[ring[0]] * 5]}
        case 9:  # collinear
            (x0, y0) = ring[0]
            return {"type": "Polygon", "coordinates": [[[x0, y0], [x0 + 1e-3, y0], [x0 + 2e-3, y0], [x0, y0]]]}
        case 10:  # missing or null coordinates / geometry
            return draw(
                st.sampled_from(
                    [
                        {"type": "Polygon"},
                        {"type": "Polygon", "coordinates": None},
                        {"type": "Feature", "geometry": None},
                        {"type": "Feature"},
                        {"type": "FeatureCollection", "features": []},
                        {"type": "FeatureCollection"},
                        {"type": "GeometryCollection", "geometries": []},
                    ]
                )
            )
        case 11:  # wrong nesting of containers
            g = {"type": "Polygon", "coordinates": [ring]}
            return draw(
                st.sampled_from(
                    [
                        {"type": "Feature", "geometry": {"type": "Feature", "geometry": g}},
                        {"type": "FeatureCollection", "features": [g]},
                        {"type": "FeatureCollection", "features": {"0": g}},
                        {"type": "Feature", "geometry": {"type": "FeatureCollection", "features": [g]}},
                        {"type": "GeometryCollection", "geometries": [{"type": "Feature", "geometry": g}]},
                        {"type": "GeometryCollection", "geometries": g},
                    ]
                )
            )
        case 12:  # other geometry types
            kind = draw(st.sampled_from(["Point", "LineString", "MultiPoint", "MultiLineString"]))
            coords = {"Point": ring[0], "LineString": ring, "MultiPoint": ring, "MultiLineString": [ring]}[kind]
            return {"type": kind, "coordinates": coords}
        case _:  # projected metres
            return {"type": "Polygon", "coordinates": [[[a * 1e5, b * 1e5] for a, b in ring]]}


@st.composite
def hostile(draw: st.DrawFn) -> Json:  # noqa: PLR0911
    """Bodies that attack: non-finite and extreme numbers, unknown types, antimeridian and polar shapes,
    overlapping parts, deep nesting, thousands of features, 100k+ vertices."""
    base = draw(small_polygon())
    ring = base["coordinates"][0]
    kind = draw(st.sampled_from(range(11)))
    match kind:
        case 0:  # a hostile number somewhere
            i, j = draw(st.integers(0, len(ring) - 1)), draw(st.integers(0, 1))
            bad = [list(p) for p in ring]
            bad[i][j] = draw(st.sampled_from(HOSTILE_NUMBERS))
            return {"type": "Polygon", "coordinates": [bad]}
        case 1:
            return {"type": draw(st.sampled_from(UNKNOWN_TYPES)), "coordinates": [ring], "arcs": [[0, 1]]}
        case 2:  # across the antimeridian
            y, h = draw(lat(-70, 70)), draw(st.floats(1e-3, 0.5))
            x = draw(st.floats(179.0, 179.999))
            return draw(
                st.sampled_from(
                    [
                        {"type": "Polygon", "coordinates": [[[x, y], [-x, y], [-x, y + h], [x, y + h], [x, y]]]},
                        {
                            "type": "MultiPolygon",
                            "coordinates": [
                                [[[x, y], [180, y], [180, y + h], [x, y + h], [x, y]]],
                                [[[-180, y], [-x, y], [-x, y + h], [-180, y + h], [-180, y]]],
                            ],
                        },
                    ]
                )
            )
        case 3:  # polar
            y = draw(st.sampled_from([84.5, 89.99, 90.0, -80.5, -89.9, -90.0]))
            return {"type": "Polygon", "coordinates": [[[-10, y], [10, y], [10, y - 0.1], [-10, y - 0.1], [-10, y]]]}
        case 4:  # overlapping parts of a MultiPolygon
            return {"type": "MultiPolygon", "coordinates": [[ring], [ring]]}
        case 5:  # thousands of features
            n = draw(st.sampled_from([1001, 3000]))
            feat = {"type": "Feature", "geometry": base, "properties": {}}
            return Large(f"FeatureCollection of {n} features", {"type": "FeatureCollection", "features": [feat] * n})
        case 6:  # 100k+ vertices in one ring
            n = draw(st.sampled_from([100_001, 150_000]))
            coords = [ring_from(tuple(ring[0]), 0.01, n, draw(st.integers(0, 99)))]
            return Large(f"Polygon of {n + 1} vertices", {"type": "Polygon", "coordinates": coords})
        case 7:  # deep nesting
            depth = draw(st.sampled_from([50, 300, 800]))  # json.dumps itself recurses: ~1,000 levels at most
            nested: Json = ring[0]
            for _ in range(depth):
                nested = [nested]
            return Large(f"Polygon with coordinates nested {depth} deep", {"type": "Polygon", "coordinates": nested})
        case 8:  # huge extents within range (a thin strip around the world)
            y = draw(lat(-60, 60))
            return {
                "type": "Polygon",
                "coordinates": [[[-179, y], [179, y], [179, y + 1e-6], [-179, y + 1e-6], [-179, y]]],
            }
        case 9:  # self-intersecting or degenerate rings with many vertices
            n = draw(st.integers(5, 500))
            rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
            pts = (np.asarray(ring[0]) + rng.uniform(-0.01, 0.01, (n, 2))).tolist()
            return {"type": "Polygon", "coordinates": [[*pts, pts[0]]]}
        case _:  # junk that is JSON but not GeoJSON
            return draw(json_values())


def json_values() -> st.SearchStrategy[Json]:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=20),
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
        ),
        max_leaves=20,
    )


def aois(covered: tuple[float, float, float, float] | None = None) -> st.SearchStrategy[Json]:
    """Every kind of AOI; with ``covered`` (a bbox the service has stacks for) a share (~1 in 12) of small
    valid AOIs inside it, so the prediction path itself is fuzzed, not only validation."""
    kinds = [valid_aois(), subtly_invalid(), subtly_invalid(), hostile(), hostile(), hostile()]
    if covered is None:
        return st.one_of(*kinds)
    return st.one_of(*kinds, *kinds[1:], valid_aois(covered, max_size=0.002), subtly_invalid(covered))


@st.composite
def predict_bodies(draw: st.DrawFn, year: int, covered: tuple[float, float, float, float] | None = None) -> Json:
    """A /predict request body: mostly well-formed around a fuzzed AOI, sometimes the envelope is wrong too."""
    aoi = draw(aois(covered))
    body: dict[str, Json] = {"aoi": aoi}
    if draw(st.integers(0, 9)) < 8:
        body["year"] = year
    elif draw(st.booleans()):
        body["year"] = draw(st.one_of(st.integers(), st.text(max_size=6), st.none(), st.floats()))
    fmt = draw(st.sampled_from([None, None, None, "cog", "geojson", "GeoJSON", "", 5]))
    if fmt is not None:
        body["format"] = fmt
    if draw(st.integers(0, 39)) == 0:
        return draw(st.sampled_from([aoi, [body], "predict", None]))
    return body
