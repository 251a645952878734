"""What a control room needs to see per year, gathered from the registry and the catalog: the champion,
challenger and shadow versions with their metrics and approval records, feature-stack coverage and quality,
and the published map. Read-only; rendered by the Airflow UI plugin (``plugins/terracover_airflow/view.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from terracover import registry
from terracover.catalog import COMPOSITES_COLLECTION, MAPS_COLLECTION, Catalog
from terracover.settings import Settings

METRICS = ("overall_accuracy", "kappa", "macro_f1")


@dataclass(frozen=True)
class VersionView:
    alias: str
    version: str
    metrics: dict[str, float]
    approved_by: str
    approved_at: str
    dataset_uri: str
    run_link: str


@dataclass(frozen=True)
class YearView:
    year: int
    versions: list[VersionView] = field(default_factory=list)
    stacks: int = 0
    mean_valid_fraction: float | None = None
    map_subtiles: int = 0
    map_version: str | None = None


def _versions(year: int, reg: registry.Registry) -> list[VersionView]:
    out = []
    for alias in (registry.CHAMPION, registry.CHALLENGER, registry.SHADOW):
        ref = reg.by_alias(year, alias)
        if ref is None:
            continue
        tags = reg.version_tags(ref)
        metrics = reg.run_metrics(ref)
        out.append(
            VersionView(
                alias,
                ref.version,
                {k: metrics[k] for k in METRICS if k in metrics},
                tags.get("approved_by", ""),
                tags.get("approved_at", ""),
                tags.get("dataset_uri", ""),
                reg.run_link(ref),
            )
        )
    return out


def year_view(year: int, catalog: Catalog, s: Settings) -> YearView:
    """One year's row: counts and means aggregated by the catalog per tile (a continental year has ~50,000
    stacks: they are never listed), the versions from the registry."""
    stacks = catalog.summarise(COMPOSITES_COLLECTION, year)
    maps = catalog.summarise(MAPS_COLLECTION, year)
    values = sum(t.valid_fraction_values for t in stacks)
    versions = sorted({v for t in maps for v in t.model_versions})
    return YearView(
        year,
        _versions(year, registry.open_registry(s)),
        sum(t.items for t in stacks),
        sum(t.valid_fraction_sum for t in stacks) / values if values else None,
        sum(t.items for t in maps),
        versions[-1] if versions else None,
    )


def years(catalog: Catalog, s: Settings) -> list[int]:
    """Years with stacks or a registered model."""
    found = {t.year for t in catalog.summarise(COMPOSITES_COLLECTION)}
    for m in registry.open_registry(s).client.search_registered_models(filter_string="name LIKE 'landcover-%'"):
        suffix = m.name.rsplit("-", 1)[-1]
        if suffix.isdigit():
            found.add(int(suffix))
    return sorted(found, reverse=True)
