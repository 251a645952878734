"""Every prediction as a STAC item of ``terracover-predictions``: which model version, MLflow run, training data,
code and feature stacks produced it, so any map a user holds can be traced back and reproduced."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pystac

from terracover import classes
from terracover.catalog import (
    COMPOSITES_COLLECTION,
    MODELS_COLLECTION,
    PREDICTIONS_COLLECTION,
    Catalog,
    cog_asset,
    footprint_item,
    publish_item,
)
from terracover.store import ObjectStore

if TYPE_CHECKING:
    from terracover.predict import Prediction
    from terracover.registry import LoadedModel


def item_href(collection_id: str, item_id: str) -> str:
    """A link to another catalog item, relative to the STAC API root: stac-fastapi resolves stored relative hrefs
    against its base URL, so this becomes ``{api}/collections/{collection}/items/{id}``."""
    return f"collections/{collection_id}/items/{item_id}"


def year_interval(year: int) -> tuple[str, str]:
    """The calendar year a map describes, as STAC ``start_datetime``/``end_datetime``."""
    return f"{year}-01-01T00:00:00Z", f"{year}-12-31T23:59:59Z"


def prediction_item(
    p: Prediction, model: LoadedModel, store: ObjectStore, serving_git_sha: str, run_link: str | None = None
) -> pystac.Item:
    """The item of one answered prediction (asset: the classified COG; links: model, run, stacks)."""
    item = footprint_item(
        p.prediction_id,
        p.aoi,
        PREDICTIONS_COLLECTION,
        {
            # a map describes its year (searches by year find it); when it was asked is ``created``
            "start_datetime": year_interval(p.year)[0],
            "end_datetime": year_interval(p.year)[1],
            "created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "terracover:year": p.year,
            "terracover:model": {"name": model.name, "version": model.version, "run_id": model.run_id},
            "terracover:dataset_sha256": model.dataset_sha256,
            "terracover:training_git_sha": model.git_sha,
            "terracover:serving_git_sha": serving_git_sha,
            "terracover:composite_items": p.composite_items,
            "terracover:avg_confidence": round(p.avg_confidence, 6),
            "terracover:class_areas_ha": p.class_areas_ha,
            "terracover:unclassified_ha": p.unclassified_ha,
            "terracover:classified_fraction": p.classified_fraction,
            "terracover:quality_fractions": p.quality_fractions,
            "terracover:pixels": p.pixels,
            "proj:epsg": p.crs.to_epsg(),
            "proj:shape": list(p.shape),
            "proj:transform": list(p.transform)[:6],
        },
    )
    legend = [{"value": c.code, "name": c.name, "color_hint": c.colour.lstrip("#")} for c in classes.CLASSES]
    item.add_asset(
        "classification",
        cog_asset(
            store,
            p.key,
            title="class (band 1, uint8 codes) and confidence (band 2, percent)",
            extra={"classification:classes": legend},
        ),
    )
    item.add_asset(
        "quality",
        cog_asset(
            store,
            p.quality_key,
            title="observation status (band 1: 1 observed .. 4 unclassified) and clear observations (band 2)",
        ),
    )
    item.add_link(
        pystac.Link(
            "derived_from",
            item_href(MODELS_COLLECTION, f"{model.name}-v{model.version}"),
            title="model (STAC MLM)",
        )
    )
    for cid in p.composite_items:
        item.add_link(pystac.Link("derived_from", item_href(COMPOSITES_COLLECTION, cid), title="feature stack"))
    if run_link:
        item.add_link(pystac.Link("via", run_link, media_type="text/html", title="MLflow run"))
    return item


def record(item: pystac.Item, catalog: Catalog) -> dict[str, Any]:
    """Upsert the item (creating the collection on first use); returns its JSON for the answer."""
    return publish_item(catalog, item, "Classified maps answered by the serving API")
