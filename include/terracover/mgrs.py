"""MGRS tile names and the tile's size in pixels: pure string and integer rules.

The one place that says what a tile name and a subtile size are. It imports nothing heavy, so settings can
validate with it while DAG files parse; :mod:`terracover.grid` builds the geometry on top of it.
"""

from __future__ import annotations

import re

TILE_PX = 10980  # a Sentinel-2 MGRS tile at 10 m
COLUMN_SETS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")  # 100 km column letters, by UTM zone modulo 3

_TILE_RE = re.compile(r"^(\d{1,2})([C-HJ-NP-X])([A-HJ-NP-Z])([A-HJ-NP-V])$")


def parse_tile(name: str) -> tuple[int, str, str, str]:
    """``T30SYJ``/``30syj``/``9RKH`` -> (zone, latitude band, column letter, row letter); ValueError otherwise."""
    t = name.strip().upper().removeprefix("T")
    m = _TILE_RE.match(t)
    if not m or not 1 <= int(m.group(1)) <= 60:
        raise ValueError(f"expected an MGRS tile like 30SYJ (zone 1-60, band C-X, two square letters), got {name!r}")
    zone, band, col, row = int(m.group(1)), m.group(2), m.group(3), m.group(4)
    if col not in COLUMN_SETS[(zone - 1) % 3]:
        raise ValueError(f"{name!r}: column letter {col} does not exist in UTM zone {zone}")
    return zone, band, col, row


def normalise_tile(name: str) -> str:
    """The canonical spelling of a tile name: ``T30SYJ``/``30syj`` -> ``30SYJ``, ``9RKH`` -> ``09RKH``."""
    zone, band, col, row = parse_tile(name)
    return f"{zone:02d}{band}{col}{row}"


def check_subtile_size(size: int) -> int:
    """A subtile edge (pixels) must divide the tile, so subtiles partition it exactly."""
    if size <= 0 or TILE_PX % size:
        raise ValueError(f"subtile size must divide {TILE_PX} (e.g. 1098, 549, 366, 183), got {size}")
    return size
