"""The land-cover legend, declared once: training, raster colour maps, the API and the docs all read it."""

from __future__ import annotations

from dataclasses import dataclass

NODATA_CLASS = 0


@dataclass(frozen=True)
class LandCoverClass:
    code: int
    name: str
    colour: str  # "#rrggbb"

    @property
    def rgb(self) -> tuple[int, int, int]:
        h = self.colour.lstrip("#")
        return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


CLASSES: tuple[LandCoverClass, ...] = (
    LandCoverClass(1, "builtUp", "#fa0000"),
    LandCoverClass(2, "herbaceousVegetation", "#ffff4c"),
    LandCoverClass(3, "shrubland", "#ffbb22"),
    LandCoverClass(4, "water", "#0032c8"),
    LandCoverClass(5, "wetland", "#0096a0"),
    LandCoverClass(6, "cropland", "#f096ff"),
    LandCoverClass(7, "closedForest", "#007800"),
    LandCoverClass(8, "openForest", "#648c00"),
    LandCoverClass(9, "bareSoil", "#b4b4b4"),
)

CLASS_BY_CODE: dict[int, LandCoverClass] = {c.code: c for c in CLASSES}
CLASS_CODES: tuple[int, ...] = tuple(c.code for c in CLASSES)


def colormap() -> dict[int, tuple[int, int, int, int]]:
    """GDAL colour table for the class band (0 = nodata, transparent)."""
    cmap: dict[int, tuple[int, int, int, int]] = {NODATA_CLASS: (0, 0, 0, 0)}
    for c in CLASSES:
        cmap[c.code] = (*c.rgb, 255)
    return cmap


def class_name(code: int) -> str:
    """Legend name of a class code (``class_<code>`` for codes outside the legend)."""
    c = CLASS_BY_CODE.get(int(code))
    return c.name if c else f"class_{int(code)}"
