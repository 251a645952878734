"""From a source's digital numbers to surface reflectance: the L2A offset per source item, checked on the data.

Sentinel-2 L2A products of processing baseline >= 04.00 (all imagery since 25 January 2022) store
``DN = 10000 x reflectance + 1000``: ESA's ``BOA_ADD_OFFSET`` is -1000 so that dark surfaces keep negative
reflectance (Sentinel-2 Products Specification, PSD 14.9; sentiwiki "S2 Processing: radiometric offset").
Every distributor then decides whether to remove it, and says so in its own way:

- Earth Search v1 ``sentinel-2-l2a``: ``earthsearch:boa_offset_applied`` (true = DNs already harmonised to
  ``10000 x reflectance``). Its assets' ``raster:bands`` carry ``offset: -0.1`` whatever the flag says
  (Element84/earth-search#66), so the flag decides there.
- Earth Search ``sentinel-2-c1-l2a`` and the Copernicus Data Space STAC: the original DNs, described per asset by
  ``raster:bands`` ``scale`` 0.0001 and ``offset`` -0.1 (reflectance = DN x scale + offset).
- Sentinel Hub's Process API harmonises by default (``harmonizeValues``: true); our source requests it
  explicitly and stamps the items it returns with ``sentinelhub:harmonize_values``.
- Raw ESA products: ``BOA_ADD_OFFSET`` per band in ``MTD_MSIL2A.xml``.

:func:`dn_offsets` reads that evidence and returns, per band, the DN of zero reflectance (0 or 1000):
``reflectance = (DN - dn_offset) / 10000``. An unknown case or two pieces of evidence that disagree is a
:class:`OffsetError`, never a silent 0 or 1000. Metadata can still be wrong (Earth Search's trackers list 2022
and 2025 items whose flag says "not applied" while the data have it applied: Element84/earth-search#66 and #71,
cirrus-geo/cirrus-earth-search#33), so :func:`check_dark_targets` tests each scene's DNs against the declared
offset on pixels whose reflectance is known to be low.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pystac

from terracover.bands import BANDS, REFLECTANCE_SCALE, SCL_VEGETATION, SCL_WATER, band_for_asset

REFLECTANCE_BANDS: tuple[str, ...] = tuple(b.name for b in BANDS if b.is_reflectance)
ESA_DN_OFFSET = 1000
"""-BOA_ADD_OFFSET of every band since processing baseline 04.00 (DN of zero reflectance)."""
FIRST_BASELINE_WITH_OFFSET = 4.0
# ESA's band_id in the product metadata -> band name (B10 is not in L2A products we ingest)
_ESA_BAND_ID = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")

# Properties ingestion copies into the store-side item so the offset can be re-derived and audited there.
EVIDENCE_PREFIXES: tuple[str, ...] = ("earthsearch:", "sentinelhub:", "processing:", "s2:")
DN_OFFSET_PROPERTY = "terracover:dn_offset"  # {band: DN of zero reflectance}
EVIDENCE_PROPERTY = "terracover:dn_offset_evidence"  # why: which metadata decided
DARK_TARGET_PROPERTY = "terracover:dark_target"  # the per-scene check (DarkTargetCheck as a dict)


class OffsetError(ValueError):
    """The offset of a scene is unknown, or its metadata (or its data) contradict each other."""


@dataclass(frozen=True)
class OffsetDecision:
    dn_offset: dict[str, int]  # per reflectance band: the DN of zero reflectance
    evidence: str  # which metadata decided, for the catalog and for error messages

    def properties(self) -> dict[str, Any]:
        return {DN_OFFSET_PROPERTY: dict(self.dn_offset), EVIDENCE_PROPERTY: self.evidence}


def parse_baseline(value: object) -> float | None:
    """``"04.00"``, ``"N0400"``, ``"05.09"``, ``"N0509"``, ``4.0`` -> 4.0/5.09; None when absent or unreadable."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    m = re.fullmatch(r"N?(\d{2})\.?(\d{2})", text)
    if m:
        return int(m.group(1)) + int(m.group(2)) / 100
    try:
        return float(text)
    except ValueError:
        return None


def item_baseline(item: pystac.Item) -> float | None:
    """The processing baseline from the item's properties, else from the ESA product name (``_N0400_``)."""
    props = item.properties
    for key in ("s2:processing_baseline", "processing:version", "processingBaseline"):
        baseline = parse_baseline(props.get(key))
        if baseline is not None:
            return baseline
    for text in (props.get("s2:product_uri"), props.get("s2:granule_id"), item.id):
        m = re.search(r"_N(\d{4})(?:_|\.|$)", str(text or ""))
        if m:
            return parse_baseline("N" + m.group(1))
    return None


def boa_add_offsets(metadata_xml: str) -> dict[str, int]:
    """``BOA_ADD_OFFSET`` per band from an L2A product's ``MTD_MSIL2A.xml``, as DN offsets (-BOA_ADD_OFFSET).

    Also checks that the quantification value is 10000 (our reflectance scale): anything else is an error.
    """
    try:
        root = ET.fromstring(metadata_xml)
    except ET.ParseError as exc:
        raise OffsetError(f"product metadata is not XML: {exc}") from exc
    quant = [e.text for e in root.iter() if e.tag.endswith("BOA_QUANTIFICATION_VALUE")]
    if quant and any(float(q or "nan") != 1 / REFLECTANCE_SCALE for q in quant):
        raise OffsetError(f"product metadata BOA_QUANTIFICATION_VALUE {quant} is not 10000")
    out: dict[str, int] = {}
    for e in root.iter():
        if e.tag.endswith("BOA_ADD_OFFSET") and "band_id" in e.attrib:
            band = _ESA_BAND_ID[int(e.attrib["band_id"])]
            if band in REFLECTANCE_BANDS:
                out[band] = -round(float(e.text or "nan"))
    return out


def raster_band_offsets(item: pystac.Item) -> dict[str, int]:
    """DN offsets the assets' ``raster:bands`` declare (reflectance = DN x scale + offset), per band found."""
    out: dict[str, int] = {}
    for key, asset in item.assets.items():
        band = band_for_asset(key)
        if band is None or band.name not in REFLECTANCE_BANDS:
            continue
        rb = asset.extra_fields.get("raster:bands") or [{}]
        scale, offset = rb[0].get("scale"), rb[0].get("offset")
        if scale is None or offset is None:
            continue
        if not np.isclose(float(scale), REFLECTANCE_SCALE):
            raise OffsetError(
                f"item {item.id}: asset {key} declares raster:bands scale {scale}; terracover reads L2A DNs at"
                f" scale {REFLECTANCE_SCALE} only"
            )
        dn = -float(offset) / float(scale)
        if abs(dn - round(dn)) > 1e-6:
            raise OffsetError(f"item {item.id}: asset {key} raster:bands offset {offset} is not a whole DN")
        out[band.name] = round(dn)
    return out


def _uniform(value: int) -> dict[str, int]:
    return dict.fromkeys(REFLECTANCE_BANDS, value)


def _product_offset(item: pystac.Item, baseline: float | None, what: str) -> OffsetDecision:
    """The offset an unmodified ESA product of this baseline carries."""
    if baseline is None:
        raise OffsetError(
            f"item {item.id}: {what}, but its processing baseline is missing or unreadable"
            f" (s2:processing_baseline={item.properties.get('s2:processing_baseline')!r}); the DN offset"
            " (0 before 04.00, 1000 from 04.00) cannot be decided"
        )
    if baseline < FIRST_BASELINE_WITH_OFFSET:
        return OffsetDecision(_uniform(0), f"{what}; baseline {baseline:05.2f} < 04.00 has no BOA_ADD_OFFSET")
    return OffsetDecision(_uniform(ESA_DN_OFFSET), f"{what}; baseline {baseline:05.2f} >= 04.00: DN offset 1000")


def _provider_flag(item: pystac.Item, baseline: float | None) -> OffsetDecision | None:
    """The decision of a distributor's explicit flag (Sentinel Hub harmonisation, Earth Search), if any."""
    props = item.properties
    if "sentinelhub:harmonize_values" in props:
        if props["sentinelhub:harmonize_values"]:
            return OffsetDecision(_uniform(0), "Sentinel Hub harmonizeValues=true: DNs are 10000 x reflectance")
        return _product_offset(item, baseline, "Sentinel Hub harmonizeValues=false (original DNs)")
    if "earthsearch:boa_offset_applied" in props:
        flag = props["earthsearch:boa_offset_applied"]
        if not isinstance(flag, bool):
            raise OffsetError(f"item {item.id}: earthsearch:boa_offset_applied is {flag!r}, not true/false")
        if flag:
            return OffsetDecision(_uniform(0), "earthsearch:boa_offset_applied=true: offset already removed")
        return _product_offset(item, baseline, "earthsearch:boa_offset_applied=false")
    return None


def dn_offsets(item: pystac.Item, product_metadata: str | None = None) -> OffsetDecision:
    """Per band, the DN of zero reflectance in the files this item points at, and why.

    ``item`` is the source's item (or our store-side copy, which carries the same evidence). Raw ESA items need
    ``product_metadata`` (the text of ``MTD_MSIL2A.xml``) when nothing else in the item decides.
    Raises :class:`OffsetError` when the evidence is missing or contradictory.
    """
    props = item.properties
    if DN_OFFSET_PROPERTY in props:  # already decided at ingestion
        return OffsetDecision(
            {b: int(v) for b, v in props[DN_OFFSET_PROPERTY].items()}, str(props.get(EVIDENCE_PROPERTY, ""))
        )
    baseline = item_baseline(item)
    flagged = _provider_flag(item, baseline)
    if flagged is not None:
        return flagged
    declared = raster_band_offsets(item)
    from_xml = boa_add_offsets(product_metadata) if product_metadata else {}
    if declared and from_xml:
        differ = {
            b: (declared[b], from_xml[b]) for b in declared.keys() & from_xml.keys() if declared[b] != from_xml[b]
        }
        if differ:
            raise OffsetError(
                f"item {item.id}: raster:bands and the product metadata disagree on the DN offset"
                f" (band: (raster:bands, BOA_ADD_OFFSET)) {differ}"
            )
    for evidence, found in (("raster:bands scale/offset", declared), ("product metadata BOA_ADD_OFFSET", from_xml)):
        if not found:
            continue
        missing = [b for b in REFLECTANCE_BANDS if b not in found]
        if missing and len(set(found.values())) != 1:
            raise OffsetError(f"item {item.id}: {evidence} covers {sorted(found)} but not {missing}")
        offsets = {b: found.get(b, next(iter(found.values()))) for b in REFLECTANCE_BANDS}
        if baseline is not None and baseline < FIRST_BASELINE_WITH_OFFSET and any(offsets.values()):
            raise OffsetError(
                f"item {item.id}: {evidence} declares a DN offset {sorted(set(offsets.values()))} but baseline"
                f" {baseline:05.2f} predates BOA_ADD_OFFSET"
            )
        return OffsetDecision(offsets, evidence)
    if baseline is not None and baseline < FIRST_BASELINE_WITH_OFFSET:
        return _product_offset(item, baseline, "no offset metadata")
    raise OffsetError(
        f"item {item.id}: the L2A offset is unknown: baseline {props.get('s2:processing_baseline')!r}, and no"
        " earthsearch:boa_offset_applied, sentinelhub:harmonize_values, raster:bands scale/offset or product"
        " metadata (MTD_MSIL2A.xml BOA_ADD_OFFSET) says whether the DNs carry it"
    )


def evidence_properties(item: pystac.Item) -> dict[str, Any]:
    """The source item's properties that decide its offset, to copy into the store-side item."""
    return {k: v for k, v in item.properties.items() if k.startswith(EVIDENCE_PREFIXES)}


# --- the per-scene check of the data against the declared offset -------------------------------------------

DARK_TARGET_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08", "B11", "B12")
DARK_TARGET_SCL: tuple[int, ...] = (SCL_VEGETATION, SCL_WATER)
DARK_TARGET_RANGE = (-0.04, 0.085)
"""Plausible median, over vegetation and water pixels, of each pixel's darkest reflectance among
DARK_TARGET_BANDS: vegetation is dark in blue/red (0.01-0.05), water in NIR/SWIR (0.00-0.02). A wrong offset
moves it by 0.1: about +0.12 when the offset is still in the DNs, about -0.08 when it is removed twice."""
MIN_DARK_TARGETS = 200  # fewer vegetation/water pixels (deserts, snow, cloud): the check is inconclusive


@dataclass(frozen=True)
class DarkTargetCheck:
    status: str  # "consistent" | "inconclusive" | "offset still in DNs" | "offset removed twice"
    median_reflectance: float | None  # the statistic (None when inconclusive)
    n_targets: int

    @property
    def contradicts(self) -> bool:
        return self.status not in ("consistent", "inconclusive")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_dark_targets(dns: Mapping[str, np.ndarray], scl: np.ndarray, dn_offset: Mapping[str, int]) -> DarkTargetCheck:
    """Test one scene's DNs (of DARK_TARGET_BANDS, on the SCL's grid) against the declared DN offsets."""
    targets = np.isin(scl, DARK_TARGET_SCL)
    refl = []
    for band in DARK_TARGET_BANDS:
        dn = np.asarray(dns[band])
        targets &= dn > 0
        refl.append((dn.astype(np.float32) - np.float32(dn_offset[band])) * np.float32(REFLECTANCE_SCALE))
    n = int(targets.sum())
    if n < MIN_DARK_TARGETS:
        return DarkTargetCheck("inconclusive", None, n)
    darkest = np.min(np.stack(refl)[:, targets], axis=0)
    median = round(float(np.median(darkest)), 4)
    lo, hi = DARK_TARGET_RANGE
    if median > hi:
        return DarkTargetCheck("offset still in DNs", median, n)
    if median < lo:
        return DarkTargetCheck("offset removed twice", median, n)
    return DarkTargetCheck("consistent", median, n)


def contradiction_message(item_id: str, decision: OffsetDecision, check: DarkTargetCheck) -> str:
    """Why a scene is refused: what the metadata said, what the data show, and what that means."""
    lo, hi = DARK_TARGET_RANGE
    hint = (
        "its DNs look like they still carry the +1000 L2A offset that the metadata say is gone"
        if check.status == "offset still in DNs"
        else "its DNs look already harmonised (offset removed) although the metadata say the offset is in them"
    )
    return (
        f"scene {item_id}: metadata and data disagree on the L2A offset. Declared: {decision.evidence}. Data: the"
        f" median darkest reflectance of {check.n_targets} vegetation/water pixels is {check.median_reflectance}"
        f" with that offset, outside the plausible {lo}..{hi}: {hint}. Known Earth Search defect"
        " (Element84/earth-search#66, #71); the scene is not ingested."
    )
