"""Every object-store key pattern of docs/CONTRACTS.md, spelled once.

Keys are relative to the store root (``terracover.store``). A module that writes or lists objects builds the
key here, so a layout change is one edit and a reader can see the whole store layout on one screen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from terracover.grid import Subtile

LABELS_PREFIX = "labels/"  # label files: GeoJSON, CSV or Parquet, any name below it


def label_key(name: str) -> str:
    """A label file terracover writes itself (Parquet): ``labels/{name}.parquet``."""
    return f"{LABELS_PREFIX}{name}.parquet"


def scene_key(tile: str, day: str, band: str) -> str:
    """One ingested band of one scene: ``scenes/{tile}/{YYYY-MM-DD}/{band}.tif``."""
    return f"scenes/{tile}/{day}/{band}.tif"


def terrain_key(tile: str) -> str:
    """A tile's terrain (bands dem, slope, aspect): ``dem/{tile}/terrain.tif``."""
    return f"dem/{tile}/terrain.tif"


def stack_key(year: int, subtile: Subtile) -> str:
    """A subtile's feature stack: ``composites/{year}/{tile}/{subtile_id}/features.tif``."""
    return f"composites/{year}/{subtile.tile.name}/{subtile.id}/features.tif"


def true_colour_key(year: int, subtile: Subtile) -> str:
    """A stack's 8-bit true colour (RGBA, for map tiles): ``composites/{year}/{tile}/{subtile_id}/truecolour.tif``."""
    return f"composites/{year}/{subtile.tile.name}/{subtile.id}/truecolour.tif"


def composites_published_key(year: int) -> str:
    """The mark that a year's stacks are complete (written by build_composites' publish, withdrawn when its next
    run starts): ``composites/{year}/published.json``."""
    return f"composites/{int(year)}/published.json"


def datasets_prefix(year: int) -> str:
    """Where the training tables of a year live: ``datasets/{year}/``."""
    return f"datasets/{int(year)}/"


def dataset_key(year: int, sha256: str) -> str:
    """A training table, named by the sha256 of its canonical bytes: ``datasets/{year}/{sha256}.parquet``."""
    return f"{datasets_prefix(year)}{sha256}.parquet"


def labelsets_prefix(year: int) -> str:
    """Where the label sets of a year's training tables live: ``labelsets/{year}/``."""
    return f"labelsets/{int(year)}/"


def labelset_key(year: int, table_sha256: str) -> str:
    """The label set a training table was built from: ``labelsets/{year}/{table_sha256}.json``."""
    return f"{labelsets_prefix(year)}{table_sha256}.json"


def map_key(year: int, version: str, subtile: Subtile) -> str:
    """A subtile of a year's published map: ``maps/{year}/v{version}/{tile}/{subtile_id}.tif``."""
    return f"maps/{int(year)}/v{version}/{subtile.tile.name}/{subtile.id}.tif"


def map_quality_key(year: int, version: str, subtile: Subtile) -> str:
    """A published map subtile's quality layer: ``maps/{year}/v{version}/{tile}/{subtile_id}_quality.tif``."""
    return f"maps/{int(year)}/v{version}/{subtile.tile.name}/{subtile.id}_quality.tif"


def map_mosaic_key(year: int, version: str, epsg: int, quality: bool = False) -> str:
    """A year's map mosaic over one UTM zone (GDAL VRT): ``maps/{year}/v{version}/mosaic-{epsg}.vrt``, and
    ``mosaic-{epsg}_quality.vrt`` over the quality layers."""
    return f"maps/{int(year)}/v{version}/mosaic-{epsg}{'_quality' if quality else ''}.vrt"


def prediction_key(year: int, prediction_id: str) -> str:
    """A classified map: ``predictions/{year}/{prediction_id}.tif``."""
    return f"predictions/{year}/{prediction_id}.tif"


def prediction_quality_key(year: int, prediction_id: str) -> str:
    """A classified map's quality layer: ``predictions/{year}/{prediction_id}_quality.tif``.

    A file of its own (as ESA WorldCover ships InputQuality next to Map): GDAL embeds a TIFF palette only in
    1- or 2-band files, so the class colours stay in the map only if the quality bands live elsewhere."""
    return f"predictions/{year}/{prediction_id}_quality.tif"


def change_key(from_year: int, to_year: int, change_id: str) -> str:
    """A change map between two years: ``changes/{from_year}-{to_year}/{change_id}.tif``."""
    return f"changes/{int(from_year)}-{int(to_year)}/{change_id}.tif"


def decisions_prefix(year: int) -> str:
    """Where the retraining decisions of a year live: ``monitoring/decisions/{year}/``."""
    return f"monitoring/decisions/{int(year)}/"


def decision_key(year: int, decided_at: str) -> str:
    """One retraining decision; ``decided_at`` is an ISO timestamp (colons dropped: S3- and Windows-safe)."""
    return f"{decisions_prefix(year)}{decided_at.replace(':', '')}.json"
