"""Classify the whole configured region through the running service and say how complete the map is.

``python -m terracover.region_report 2023`` (what ``make demo`` runs after serving starts): one ``POST /predict``
over ``region_bbox``, then the class areas (mapped, and error-adjusted with 95 % intervals), and the share of the
region's pixels classified, split into observed, gap-filled and classified with missing features. Exit status 1
when the service refuses.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import httpx

from terracover.settings import get_settings

TARGET = 0.995  # the share of a region's pixels a complete map classifies


def region_prediction(year: int, url: str, bbox: tuple[float, float, float, float]) -> dict[str, Any]:
    w, s, e, n = bbox
    aoi = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
    r = httpx.post(f"{url}/predict", json={"aoi": aoi, "year": year}, timeout=600)
    answer: dict[str, Any] = r.json()
    if r.status_code != 200:
        raise RuntimeError(f"POST /predict {year} -> {r.status_code}: {answer}")
    return answer


def estimates_lines(block: dict[str, Any] | None, indent: str = "     ") -> list[str]:
    """An ``area_estimates`` block as a table: mapped vs estimated hectares ± 95 % CI, user's and producer's
    accuracy ± 95 % CI, then the overall accuracy and the reference sample with its caveat."""
    if not block:
        return [f"{indent}(no area estimates: the model's run logged no reference sample)"]

    def acc(value: float | None, ci: float | None) -> str:
        return "   n/a    " if value is None else f"{value:.2f} ±{ci or 0:.2f}"

    sample = block["accuracy_sample"]
    rows = sorted(block["classes"].items(), key=lambda kv: -kv[1]["mapped_ha"])
    return [
        f"{indent}{'class':<22} {'mapped ha':>10} {'estimated ha ± 95% CI':>24}  {'users':>10}  {'producers':>10}",
        *(
            f"{indent}{name:<22} {c['mapped_ha']:>10.2f} {c['estimated_ha']:>12.2f} ±{c['ci95_ha']:>10.2f}"
            f"  {acc(c['users_accuracy'], c['users_accuracy_ci95']):>10}"
            f"  {acc(c['producers_accuracy'], c['producers_accuracy_ci95']):>10}"
            for name, c in rows
        ),
        f"{indent}overall accuracy {block['overall_accuracy']:.3f} ±{block['overall_accuracy_ci95']:.3f}"
        f" ({block['method']})",
        f"{indent}reference sample: {sample['name']}, {sample['size']} points"
        f" ({', '.join(f'{k} {v}' for k, v in sample['size_per_class'].items())})",
        f"{indent}caveat: {sample['caveat']}",
    ]


def report(a: dict[str, Any]) -> str:
    """The answer as the demo prints it."""
    q = a.get("quality_fractions", {})
    lines = [
        f"   POST /predict {a['year']}: {a['elapsed_ms']:.0f} ms, model {a['model']['name']} v{a['model']['version']},"
        f" mean confidence {a['avg_confidence']:.3f}",
        *(f"     {name:<22} {ha:>9.2f} ha" for name, ha in sorted(a["class_areas_ha"].items(), key=lambda kv: -kv[1])),
        f"     {'(not classified)':<22} {a['unclassified_ha']:>9.2f} ha",
        "   error-adjusted areas (stratified estimator with the model's reference sample):",
        *estimates_lines(a.get("area_estimates")),
        f"   classified {100 * a['classified_fraction']:.2f} % of the region's pixels"
        f" ({'meets' if a['classified_fraction'] >= TARGET else 'BELOW'} the {100 * TARGET:g} % target):"
        f" observed {100 * q.get('observed', 0):.2f} %, gap-filled {100 * q.get('gap_filled', 0):.2f} %,"
        f" missing features (NaN-aware model) {100 * q.get('missing_features', 0):.2f} %",
        f"   map: {a['raster_url']}\n   provenance: STAC item {a['prediction_id']} in terracover-predictions",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("year", type=int)
    args = parser.parse_args(argv)
    s = get_settings()
    try:
        answer = region_prediction(args.year, s.serving_url, s.region_bbox)
    except RuntimeError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    print(report(answer))
    metrics = httpx.get(f"{s.serving_url}/metrics", timeout=30).text.splitlines()
    keep = ("terracover_predictions_total", "terracover_pixels", "terracover_prediction_classified_fraction_sum")
    print("   " + "\n   ".join(m for m in metrics if m.startswith(keep)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
