"""The L2A offset per source item, from real and documented item shapes: Earth Search v1 (the real 29RKH item,
baseline 02.14, flag false; post-2022 items with the flag true and false), Earth Search sentinel-2-c1-l2a
(raster:bands scale/offset), Sentinel Hub (harmonizeValues) and raw ESA products (MTD_MSIL2A.xml); unknown or
contradictory metadata is an error; the dark-target check flags data that contradict the metadata."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
from terracover.bands import SCL_NOT_VEGETATED, SCL_VEGETATION, SCL_WATER
from terracover.ingest import scene_offsets
from terracover.radiometry import (
    DARK_TARGET_BANDS,
    REFLECTANCE_BANDS,
    OffsetError,
    boa_add_offsets,
    check_dark_targets,
    dn_offsets,
    parse_baseline,
)
from terracover.sources.base import SceneQuery, SceneSource

ITEM_JSON = "rio_tiler_pds_s2l2a_29RKH/S2A_29RKH_20200219_0_L2A/S2A_29RKH_20200219_0_L2A.json"

# MTD_MSIL2A.xml excerpt, as in every product since baseline 04.00 (Sentinel-2 Products Specification PSD 14.9)
MTD_XML = """<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
 <n1:General_Info><Product_Image_Characteristics>
  <QUANTIFICATION_VALUES_LIST>
   <BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>
   <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>
  </QUANTIFICATION_VALUES_LIST>
  <BOA_ADD_OFFSET_VALUES_LIST>{offsets}</BOA_ADD_OFFSET_VALUES_LIST>
 </Product_Image_Characteristics></n1:General_Info>
</n1:Level-2A_User_Product>"""


def mtd(offset: int = -1000) -> str:
    return MTD_XML.format(
        offsets="".join(f'<BOA_ADD_OFFSET band_id="{i}">{offset}</BOA_ADD_OFFSET>' for i in range(13))
    )


@pytest.fixture(scope="module")
def real_item(shared_data: Path) -> dict[str, Any]:
    return dict(json.loads((shared_data / ITEM_JSON).read_text()))


def post_2022(real: dict[str, Any], applied: bool | None, raster_offset: float | None = -0.1) -> pystac.Item:
    """The real item re-dated to 2023 with baseline 05.09, as Earth Search v1 publishes such items: the flag, and
    raster:bands offset -0.1 on reflectance assets whatever the flag says (Element84/earth-search#66)."""
    d = copy.deepcopy(real)
    d["id"] = "S2A_29RKH_20230219_0_L2A"
    p = d["properties"]
    p["datetime"] = "2023-02-19T11:34:25.405000Z"
    p["s2:processing_baseline"] = "05.09"
    p["s2:product_uri"] = "S2A_MSIL2A_20230219T112111_N0509_R037_T29RKH_20230219T150000.SAFE"
    if applied is None:
        p.pop("earthsearch:boa_offset_applied")
    else:
        p["earthsearch:boa_offset_applied"] = applied
    for key, asset in d["assets"].items():
        for rb in asset.get("raster:bands", []):
            if rb.get("scale") == 0.0001:
                if raster_offset is None:
                    rb.pop("offset", None)
                else:
                    rb["offset"] = raster_offset
        assert key
    d["links"] = []
    return pystac.Item.from_dict(d)


def test_the_real_2020_earth_search_item_has_no_offset(real_item: dict[str, Any]) -> None:
    item = pystac.Item.from_dict(real_item)
    assert item.properties["s2:processing_baseline"] == "02.14"
    assert item.properties["earthsearch:boa_offset_applied"] is False
    decision = dn_offsets(item)
    assert decision.dn_offset == dict.fromkeys(REFLECTANCE_BANDS, 0)
    assert "boa_offset_applied=false" in decision.evidence and "02.14" in decision.evidence


def test_post_2022_earth_search_items_follow_their_flag(real_item: dict[str, Any]) -> None:
    assert set(dn_offsets(post_2022(real_item, applied=True)).dn_offset.values()) == {0}
    assert set(dn_offsets(post_2022(real_item, applied=False)).dn_offset.values()) == {1000}


def test_c1_l2a_items_declare_the_offset_in_raster_bands(real_item: dict[str, Any]) -> None:
    """Earth Search sentinel-2-c1-l2a: no flag, the original DNs, raster:bands scale 0.0001 offset -0.1."""
    decision = dn_offsets(post_2022(real_item, applied=None))
    assert decision.dn_offset == dict.fromkeys(REFLECTANCE_BANDS, 1000)
    assert "raster:bands" in decision.evidence
    zero = dn_offsets(post_2022(real_item, applied=None, raster_offset=0.0))
    assert set(zero.dn_offset.values()) == {0}


def test_sentinel_hub_harmonised_values_have_no_offset(real_item: dict[str, Any]) -> None:
    item = post_2022(real_item, applied=None, raster_offset=None)
    item.properties["sentinelhub:harmonize_values"] = True
    assert set(dn_offsets(item).dn_offset.values()) == {0}
    item.properties["sentinelhub:harmonize_values"] = False
    assert set(dn_offsets(item).dn_offset.values()) == {1000}


class _Files(SceneSource):
    name = "files"

    def search(self, query: SceneQuery) -> list[pystac.Item]:
        return []


def test_raw_esa_items_read_boa_add_offset_from_the_product_metadata(real_item: dict[str, Any], tmp_path: Path) -> None:
    item = post_2022(real_item, applied=None, raster_offset=None)
    with pytest.raises(OffsetError, match="unknown"):
        dn_offsets(item)
    (tmp_path / "MTD_MSIL2A.xml").write_text(mtd(-1000))
    item.add_asset("product_metadata", pystac.Asset(href=str(tmp_path / "MTD_MSIL2A.xml"), roles=["metadata"]))
    decision = scene_offsets(item, _Files())
    assert decision.dn_offset == dict.fromkeys(REFLECTANCE_BANDS, 1000) and "BOA_ADD_OFFSET" in decision.evidence
    assert boa_add_offsets(mtd(0)) == dict.fromkeys(REFLECTANCE_BANDS, 0)
    with pytest.raises(OffsetError, match="QUANTIFICATION"):
        boa_add_offsets(mtd().replace(">10000<", ">4000<"))


def test_unknown_or_contradictory_metadata_is_an_error(real_item: dict[str, Any]) -> None:
    for baseline in ("garbage", None):
        item = post_2022(real_item, applied=False)
        item.properties["s2:processing_baseline"] = baseline
        item.properties["s2:product_uri"] = "unknown"
        item.id = "x"
        with pytest.raises(OffsetError, match="baseline"):
            dn_offsets(item)
    item = post_2022(real_item, applied=None)
    with pytest.raises(OffsetError, match="disagree"):
        dn_offsets(item, product_metadata=mtd(0))
    old = pystac.Item.from_dict({**real_item, "properties": {**real_item["properties"]}})
    del old.properties["earthsearch:boa_offset_applied"]
    for asset in old.assets.values():
        for rb in asset.extra_fields.get("raster:bands", []):
            if rb.get("scale") == 0.0001:
                rb["offset"] = -0.1
    with pytest.raises(OffsetError, match="predates"):
        dn_offsets(old)
    flagged = post_2022(real_item, applied=True)
    flagged.properties["earthsearch:boa_offset_applied"] = "yes"
    with pytest.raises(OffsetError, match="not true/false"):
        dn_offsets(flagged)


def test_baselines_parse_in_every_spelling() -> None:
    assert parse_baseline("04.00") == 4.0 and parse_baseline("N0509") == pytest.approx(5.09)
    assert parse_baseline("02.14") == pytest.approx(2.14) and parse_baseline(5.11) == 5.11
    assert (
        parse_baseline("N05") is None
        and parse_baseline("abc") is None
        and parse_baseline("") is None
        and parse_baseline(None) is None
    )


def _scene(rng: np.random.Generator, offset: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Vegetation (dark in the visible), water (dark in NIR/SWIR) and bare soil, L2A-like, plus ``offset``."""
    n = 3000
    scl = rng.choice([SCL_VEGETATION, SCL_WATER, SCL_NOT_VEGETATED], n, p=[0.6, 0.1, 0.3]).astype(np.uint8)
    typical = {  # (vegetation, water, soil) reflectance
        "B02": (0.03, 0.05, 0.10), "B03": (0.05, 0.05, 0.13), "B04": (0.03, 0.03, 0.17),
        "B08": (0.32, 0.02, 0.25), "B11": (0.17, 0.01, 0.30), "B12": (0.08, 0.005, 0.25),
    }  # fmt: skip
    dns = {}
    for band in DARK_TARGET_BANDS:
        mean = np.select([scl == SCL_VEGETATION, scl == SCL_WATER], typical[band][:2], typical[band][2])
        refl = mean * rng.lognormal(0, 0.2, n)
        dns[band] = np.clip(np.round(refl * 10000) + offset, 1, 65535).astype(np.uint16)
    return dns, scl


def test_dark_targets_flag_a_scene_whose_metadata_contradict_its_data() -> None:
    rng = np.random.default_rng(0)
    harmonised, scl = _scene(rng, 0)
    with_offset, _ = _scene(np.random.default_rng(0), 1000)
    none, thousand = dict.fromkeys(DARK_TARGET_BANDS, 0), dict.fromkeys(DARK_TARGET_BANDS, 1000)
    assert check_dark_targets(harmonised, scl, none).status == "consistent"
    assert check_dark_targets(with_offset, scl, thousand).status == "consistent"
    wrong_flag = check_dark_targets(harmonised, scl, thousand)  # flag says "not applied", data are harmonised
    assert wrong_flag.contradicts and wrong_flag.status == "offset removed twice"
    assert wrong_flag.median_reflectance is not None and wrong_flag.median_reflectance < -0.05
    left_in = check_dark_targets(with_offset, scl, none)
    assert left_in.contradicts and left_in.status == "offset still in DNs"
    desert = np.full_like(scl, SCL_NOT_VEGETATED)
    assert check_dark_targets(harmonised, desert, thousand).status == "inconclusive"


def test_the_real_desert_scene_is_inconclusive_not_contradictory(shared_data: Path) -> None:
    """29RKH (96 % bare, no vegetation or water): no dark target, so no verdict, whatever the offset."""
    import rasterio
    from rasterio.enums import Resampling

    folder = (shared_data / ITEM_JSON).parent
    with rasterio.open(folder / "SCL.tif") as src:
        scl = src.read(1)
    dns = {}
    for band in DARK_TARGET_BANDS:
        with rasterio.open(folder / f"{band}.tif") as src:
            dns[band] = src.read(1, out_shape=scl.shape, resampling=Resampling.nearest)
    check = check_dark_targets(dns, scl, dict.fromkeys(DARK_TARGET_BANDS, 0))
    assert check.status == "inconclusive" and not check.contradicts
