"""What changed in the configured region between two years, asked of the running service.

``python -m terracover.change_report 2022 2023`` (what ``make demo`` runs once it has two years): one
``POST /change`` over ``region_bbox``, then the transition matrix in hectares, the changed share, how much of the
apparent change one model does not see (model change, not land change), and each year's error-adjusted class
areas with 95 % intervals. Exit status 1 when the service refuses.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import httpx

from terracover.region_report import estimates_lines
from terracover.settings import get_settings


def region_change(from_year: int, to_year: int, url: str, bbox: tuple[float, float, float, float]) -> dict[str, Any]:
    w, s, e, n = bbox
    aoi = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
    r = httpx.post(f"{url}/change", json={"aoi": aoi, "from_year": from_year, "to_year": to_year}, timeout=900)
    answer: dict[str, Any] = r.json()
    if r.status_code != 200:
        raise RuntimeError(f"POST /change {from_year} -> {to_year}: {r.status_code}: {answer}")
    return answer


def matrix_lines(transition_ha: dict[str, dict[str, float]], indent: str = "     ") -> list[str]:
    """The transition matrix: rows the from-year class, columns the to-year class, hectares."""
    rows = sorted(transition_ha)
    cols = sorted({c for r in transition_ha.values() for c in r})
    width = max(9, *(len(c[:12]) for c in cols))
    corner = "from \\ to"
    head = f"{indent}{corner:<22}" + "".join(f" {c[:12]:>{width}}" for c in cols)
    body = [f"{indent}{r:<22}" + "".join(f" {transition_ha[r].get(c, 0.0):>{width}.2f}" for c in cols) for r in rows]
    return [head, *body]


def report(a: dict[str, Any]) -> str:
    """The answer as the demo prints it."""
    share = a["model_change_share"]
    fy, ty = a["from_year"], a["to_year"]
    lines = [
        f"   POST /change {fy} -> {ty}: {a['elapsed_ms']:.0f} ms, models"
        f" {a['models']['from']['name']} v{a['models']['from']['version']} and"
        f" {a['models']['to']['name']} v{a['models']['to']['version']}",
        f"   transition matrix (ha, {a['compared_ha']:.2f} ha classified in both years):",
        *matrix_lines(a["transition_ha"]),
        f"   changed: {a['changed_ha']:.2f} ha = {100 * a['changed_fraction']:.2f} % of the compared area",
        "   model change: "
        + (
            "no apparent change to attribute"
            if share is None
            else f"{100 * share:.1f} % of the apparent change disappears when the {fy} model classifies both"
            f" years (that model alone sees {100 * (a['same_model_changed_fraction'] or 0):.2f} % of the area"
            " change)"
        ),
    ]
    if a.get("confident_changed_fraction") is not None:
        lines.append(
            f"   confident change: {100 * a['confident_changed_fraction']:.2f} % of the"
            f" {100 * a['confident_share']:.0f} % of the area the {fy} model classifies by majority in both years"
        )
    for role, year in (("from", fy), ("to", ty)):
        lines.append(f"   {year}: error-adjusted class areas")
        lines.extend(estimates_lines(a["area_estimates"][role]))
    lines.append(f"   change map: {a['raster_url']}\n   provenance: STAC item {a['change_id']} in terracover-changes")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("from_year", type=int)
    parser.add_argument("to_year", type=int)
    args = parser.parse_args(argv)
    s = get_settings()
    try:
        answer = region_change(args.from_year, args.to_year, s.serving_url, s.region_bbox)
    except RuntimeError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    print(report(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
