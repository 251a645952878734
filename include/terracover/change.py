"""Land-cover change between two years, and how much of it the models, not the land, made.

The AOI is classified three times on one output grid (:class:`terracover.predict.OutputGrid` depends on the
AOI only): ``from_year``'s champion on ``from_year``'s stacks (A), ``to_year``'s champion on ``to_year``'s
stacks (B), and ``from_year``'s champion on ``to_year``'s stacks (C); B and C come from one read of the
``to_year`` stacks, and the maps are compared in memory (each stack read once, each map written once). A vs
B is the apparent change; where A differs from B but equals C, the same model sees no change, so the
difference came from swapping models: that share of the apparent change is reported as
``model_change_share``. What remains (A != C) is what one model sees change between the two years' imagery.

The change COG holds ``from * 16 + to`` (0 where either year is unclassified) with a colour map (unchanged
pixels grey, changed pixels in the colour of the class they became) and, as band 2, the smaller of the two
years' confidences in percent.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pystac
from shapely.geometry.base import BaseGeometry

from terracover import classes
from terracover.catalog import (
    MODELS_COLLECTION,
    PREDICTIONS_COLLECTION,
    Catalog,
    cog_asset,
    footprint_item,
    publish_item,
)
from terracover.cog import write_cog
from terracover.errors import BadRequestError
from terracover.keys import change_key
from terracover.mapfile import confidence_percent
from terracover.predict import predict_aoi, predict_aoi_models
from terracover.provenance import item_href, year_interval
from terracover.store import ObjectStore

if TYPE_CHECKING:
    from terracover.predict import Prediction
    from terracover.registry import LoadedModel
    from terracover.settings import Settings

BASE = 16  # change code = from * BASE + to: class codes stay readable in hexadecimal (0x67 = 6 -> 7)
CHANGES_COLLECTION = "terracover-changes"
UNCHANGED_RGBA = (225, 225, 225, 255)


class SameYearError(BadRequestError):
    """``from_year`` equals ``to_year``."""


def change_codes(from_codes: np.ndarray, to_codes: np.ndarray) -> np.ndarray:
    """``from * 16 + to`` as uint8 where both years are classified, else 0 (codes 1..15 fit)."""
    both = (from_codes > 0) & (to_codes > 0)
    out = np.zeros(from_codes.shape, dtype=np.uint8)
    out[both] = from_codes[both].astype(np.uint16) * BASE + to_codes[both]
    return out


def transition_counts(from_codes: np.ndarray, to_codes: np.ndarray) -> np.ndarray:
    """(16, 16) pixel counts, rows the from-class, columns the to-class, over pixels classified in both."""
    both = (from_codes > 0) & (to_codes > 0)
    flat = from_codes[both].astype(np.int64) * BASE + to_codes[both]
    return np.bincount(flat, minlength=BASE * BASE).reshape(BASE, BASE)


def colormap() -> dict[int, tuple[int, int, int, int]]:
    """Unchanged pixels light grey, changed ones in the colour of their new class, 0 transparent."""
    cmap: dict[int, tuple[int, int, int, int]] = {0: (0, 0, 0, 0)}
    for a in classes.CLASSES:
        for b in classes.CLASSES:
            cmap[a.code * BASE + b.code] = UNCHANGED_RGBA if a.code == b.code else (*b.rgb, 255)
    return cmap


@dataclass(frozen=True)
class ChangeSummary:
    """Numbers of one comparison; hectares use the predictions' own pixel area."""

    transition_ha: dict[str, dict[str, float]]  # from-class name -> to-class name -> ha (non-zero cells)
    compared_ha: float  # classified in both years
    changed_ha: float
    changed_fraction: float
    model_change_share: float | None  # of the apparent change, the part one model does not see (None: no change)
    same_model_changed_fraction: float | None  # from-year model on both years' stacks
    confident_share: float | None = None  # of those pixels, the share it classifies by majority in both years
    confident_changed_fraction: float | None = None  # same-model change among them (None: no such pixel)

    def as_dict(self) -> dict[str, Any]:
        return {
            "transition_ha": self.transition_ha,
            "compared_ha": self.compared_ha,
            "changed_ha": self.changed_ha,
            "changed_fraction": self.changed_fraction,
            "model_change_share": self.model_change_share,
            "same_model_changed_fraction": self.same_model_changed_fraction,
            "confident_share": self.confident_share,
            "confident_changed_fraction": self.confident_changed_fraction,
        }


MAJORITY = 0.5  # a class holding more than half the probability: no other class can overtake it alone


def summarize(
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    pixel_ha: float,
    conf_a: np.ndarray | None = None,
    conf_c: np.ndarray | None = None,
) -> ChangeSummary:
    """A = from-model on from-stacks, B = to-model on to-stacks, C = from-model on to-stacks (same grid);
    ``conf_a``/``conf_c`` their maximum class probabilities (0..1).

    With the confidences, the same-model change is also given where that model holds a majority class in
    both years (probability > 0.5): flips between two years' imagery of unchanged land happen at pixels the
    model is unsure of (near class boundaries, mixed pixels), real change mostly between classes it is sure
    of. The share of pixels in that stratum says how much of the area the stricter figure speaks for."""
    if not (a.shape == b.shape == c.shape):
        raise ValueError(f"the three maps must share one grid (got {a.shape}, {b.shape}, {c.shape})")
    counts = transition_counts(a, b)
    names = {k.code: k.name for k in classes.CLASSES}
    transition = {
        names.get(i, f"class_{i}"): {
            names.get(j, f"class_{j}"): round(float(counts[i, j]) * pixel_ha, 4) for j in range(BASE) if counts[i, j]
        }
        for i in range(BASE)
        if counts[i].any()
    }
    compared = int(counts.sum())
    changed = compared - int(np.trace(counts))
    all3 = (a > 0) & (b > 0) & (c > 0)
    apparent = all3 & (a != b)
    n_apparent = int(apparent.sum())
    share = float((apparent & (a == c)).sum() / n_apparent) if n_apparent else None
    n_all3 = int(all3.sum())
    same_model = float((all3 & (a != c)).sum() / n_all3) if n_all3 else None
    confident_share = confident_changed = None
    if conf_a is not None and conf_c is not None and n_all3:
        sure = all3 & (np.nan_to_num(conf_a) > MAJORITY) & (np.nan_to_num(conf_c) > MAJORITY)
        n_sure = int(sure.sum())
        confident_share = round(n_sure / n_all3, 6)
        confident_changed = round(float((sure & (a != c)).sum() / n_sure), 6) if n_sure else None
    return ChangeSummary(
        transition_ha=transition,
        compared_ha=round(compared * pixel_ha, 4),
        changed_ha=round(changed * pixel_ha, 4),
        changed_fraction=round(changed / compared, 6) if compared else 0.0,
        model_change_share=None if share is None else round(share, 6),
        same_model_changed_fraction=None if same_model is None else round(same_model, 6),
        confident_share=confident_share,
        confident_changed_fraction=confident_changed,
    )


@dataclass(frozen=True)
class Change:
    change_id: str
    from_year: int
    to_year: int
    key: str
    summary: ChangeSummary
    predictions: dict[str, Prediction]  # "from", "to", "cross" (from-year model on to-year stacks)
    models: dict[str, LoadedModel]  # "from", "to"


def new_change_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"


def detect_change(
    aoi: BaseGeometry,
    from_year: int,
    to_year: int,
    from_model: LoadedModel,
    to_model: LoadedModel,
    store: ObjectStore,
    catalog: Catalog,
    settings: Settings,
) -> Change:
    """Classify a validated AOI three times (see module doc), write the change COG and summarise."""
    if from_year == to_year:
        raise SameYearError(f"from_year and to_year are both {from_year}: give two different years")
    before = predict_aoi(aoi, from_year, from_model, store, catalog, settings, keep_rows=0)
    # one read of the to-year stacks for both models (the cross map is the from-year model's)
    after, cross = predict_aoi_models(aoi, to_year, [to_model, from_model], store, catalog, settings, keep_rows=0)
    preds = {"from": before, "to": after, "cross": cross}
    a, b, c = before.codes, after.codes, cross.codes
    conf_a, conf_b = confidence_percent(a, before.confidence), confidence_percent(b, after.confidence)
    p = before
    pixel_ha = sum(p.class_areas_ha.values()) / p.pixels  # the prediction's own (scale-corrected) pixel area
    summary = summarize(a, b, c, pixel_ha, before.confidence, cross.confidence)
    codes = change_codes(a, b)
    min_conf = np.where(codes > 0, np.minimum(conf_a, conf_b), 0).astype(np.uint8)
    cid = new_change_id()
    key = change_key(from_year, to_year, cid)
    names = {str(k.code): k.name for k in classes.CLASSES}
    with store.writer(key, suffix=".tif") as path:
        write_cog(
            path,
            np.stack([codes, min_conf]),
            p.transform,
            p.crs,
            nodata=0,
            descriptions=["change", "min_confidence"],
            colormap=colormap(),
            tags={
                "terracover:change_id": cid,
                "terracover:from_year": str(from_year),
                "terracover:to_year": str(to_year),
                "terracover:from_model": f"{from_model.name}/{from_model.version}",
                "terracover:to_model": f"{to_model.name}/{to_model.version}",
            },
            band_tags=[
                {
                    "meaning": "from_class * 16 + to_class; 0 = unclassified in either year",
                    "classes": json.dumps(names),
                },
                {"units": "percent", "meaning": "smaller of the two years' maximum class probability x 100"},
            ],
        )
    return Change(cid, from_year, to_year, key, summary, preds, {"from": from_model, "to": to_model})


def change_item(ch: Change, store: ObjectStore, serving_git_sha: str) -> pystac.Item:
    """The change's STAC item: both models and the three predictions it was made from."""
    p = ch.predictions["from"]
    item = footprint_item(
        ch.change_id,
        p.aoi,
        CHANGES_COLLECTION,
        {
            "terracover:from_year": ch.from_year,
            "terracover:to_year": ch.to_year,
            "terracover:models": {
                role: {
                    "name": m.name,
                    "version": m.version,
                    "run_id": m.run_id,
                    "dataset_sha256": m.dataset_sha256,
                    "training_git_sha": m.git_sha,
                }
                for role, m in ch.models.items()
            },
            "terracover:predictions": {role: q.prediction_id for role, q in ch.predictions.items()},
            "terracover:serving_git_sha": serving_git_sha,
            **{f"terracover:{k}": v for k, v in ch.summary.as_dict().items()},
            "proj:epsg": p.crs.to_epsg(),
            "proj:shape": list(p.shape),
            "proj:transform": list(p.transform)[:6],
            # the change spans both years (a search for either finds it); when it was asked is ``created``
            "start_datetime": year_interval(min(ch.from_year, ch.to_year))[0],
            "end_datetime": year_interval(max(ch.from_year, ch.to_year))[1],
            "created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        },
    )
    item.add_asset(
        "change",
        cog_asset(
            store,
            ch.key,
            title="from*16+to class codes (band 1), smaller confidence of the two years in percent (band 2)",
        ),
    )
    for role, m in ch.models.items():
        item.add_link(
            pystac.Link("derived_from", item_href(MODELS_COLLECTION, f"{m.name}-v{m.version}"), title=f"{role} model")
        )
    for role, q in ch.predictions.items():
        item.add_link(pystac.Link("derived_from", item_href(PREDICTIONS_COLLECTION, q.prediction_id), title=role))
    return item


def record_change(item: pystac.Item, catalog: Catalog) -> dict[str, Any]:
    return publish_item(catalog, item, "Land-cover change between two years' maps")
