"""What gap filling costs, on real data: observed-only, gap-filled and NaN-aware models as clear dates vanish.

Data (real, ``../shared/data/eolearn_testeopatch``, Slovenia, 1 km², LULC land-use labels): the patch's
68-date Sentinel-2 NDVI series with its real cloud masks (CLM). The stack year 2017 (December 2016 to November
2017) holds 35 of those dates. Features: the four seasonal NDVI medians (``winter_ndvi`` .. ``autumn_ndvi``) plus
``dem``, ``slope``, ``aspect``, built with the project's own code (``composite.composite_bands``,
``gapfill.season_edges`` / ``fill_gaps``; labels and terrain from ``tests/eolearn_patch.py``, shared with the
real-data test and ``bench_realdata``). NDVI is handed to the uint16 kernels as
DN = round((NDVI + 1) x 10000): linear, so interpolating DNs interpolates NDVI.

Scenarios hide a growing share of each pixel's clear dates (drawn per pixel and date), or every date of one
season, then rebuild the features. Models (on 20 x 20 px blocks, 3 spatial folds; accuracy over every labelled
test pixel, an unclassified pixel counting as an error, plus the share classified):
- observed-only: the default config (``train.DEFAULT_CONFIG``) on unfilled features; a pixel with a season
  lacking any clear date is unclassified (the rule of ``missing.classifiable_rows``);
- gap-filled: the same config on features filled by ``TERRACOVER_GAP_FILL=on``;
- NaN-aware: a config of ``train.CONFIGS`` that declares it accepts missing values, else scikit-learn's
  HistGradientBoostingClassifier (declared), on unfilled features.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
PATCH = ROOT.parent / "shared" / "data" / "eolearn_testeopatch"
YEAR = 2017
SCENARIOS: tuple[tuple[str, float | str], ...] = (
    ("all clear dates", 0.0),
    ("30 % of clear dates hidden", 0.3),
    ("60 % of clear dates hidden", 0.6),
    ("every spring date hidden", "spring"),
)


def ndvi_year(root: Path, year: int) -> tuple[list[date], np.ndarray, np.ndarray]:
    """The stack year's dates, (T, H, W) NDVI DNs and (T, H, W) clear mask from the 68-date series."""
    from terracover.features import SEASONS

    stamps = [date.fromisoformat(s[:10]) for s in json.loads((root / "timestamps.json").read_text())]
    start, end = SEASONS[0].window(year)[0], SEASONS[-1].window(year)[1]
    keep = [i for i, d in enumerate(stamps) if start <= d <= end]
    ndvi = np.load(root / "data" / "NDVI.npy")[keep, ..., 0]
    cloud = np.load(root / "mask" / "CLM.npy")[keep, ..., 0].astype(bool)
    dn = np.clip(np.round((ndvi + 1) * 10000), 1, 65535).astype(np.uint16)
    return [stamps[i] for i in keep], dn, ~cloud


def seasonal_ndvi(
    days: list[date], dn: np.ndarray, clear: np.ndarray, year: int, policy: str
) -> tuple[np.ndarray, np.ndarray]:
    """(4, H, W) seasonal NDVI medians (filled by ``policy``) and the (4, H, W) quality bands."""
    from terracover.bands import SCL_CLOUD_HIGH, SCL_VEGETATION, valid_scl_lut
    from terracover.composite import composite_bands
    from terracover.features import SEASONS
    from terracover.gapfill import SeasonEdges, day_offset, fill_gaps, season_edges

    lut = valid_scl_lut()
    scl = np.where(clear, SCL_VEGETATION, SCL_CLOUD_HIGH).astype(np.uint8)
    year_start = SEASONS[0].window(year)[0]
    period = (SEASONS[-1].window(year)[1] - year_start).days + 1
    _, height, width = dn.shape
    medians = np.full((len(SEASONS), 1, height, width), np.nan, dtype=np.float32)
    edges, centres = [], []
    for k, season in enumerate(SEASONS):
        first, last = season.window(year)
        centres.append((day_offset(first, year_start) + day_offset(last, year_start)) / 2)
        idx = [i for i, d in enumerate(days) if first <= d <= last]
        if not idx:
            edges.append(SeasonEdges.empty(1, height, width))
            continue
        values, s_scl = np.ascontiguousarray(dn[idx][np.newaxis]), np.ascontiguousarray(scl[idx])
        medians[k] = composite_bands(values, s_scl, lut)
        edges.append(season_edges(values, s_scl, lut, [day_offset(days[i], year_start) for i in idx]))
    qa = fill_gaps(medians, edges, centres, period, policy)
    return medians[:, 0] / 10000 - 1, qa


def hide(clear: np.ndarray, days: list[date], how: float | str, year: int, seed: int) -> np.ndarray:
    """A copy of the clear mask with a share of each pixel's clear dates, or one season's dates, hidden."""
    from terracover.features import SEASON_BY_NAME

    if isinstance(how, str):
        first, last = SEASON_BY_NAME[how].window(year)
        out = clear.copy()
        out[[i for i, d in enumerate(days) if first <= d <= last]] = False
        return out
    return clear & (np.random.default_rng(seed).random(clear.shape) >= how)


def _nan_aware() -> tuple[str, Any]:
    """(name, unfitted estimator or config name) of the NaN-aware model."""
    from terracover.missing import accepts_missing
    from terracover.train import CONFIGS, build_estimator

    for name, config in CONFIGS.items():
        if accepts_missing(build_estimator(config, 0)):
            return name, name
    from sklearn.ensemble import HistGradientBoostingClassifier
    from terracover.missing import declare_accepts_missing

    return "HistGradientBoosting", declare_accepts_missing(HistGradientBoostingClassifier(random_state=0))


def _fit_predict(model: Any, table: pd.DataFrame, features: list[str], test: np.ndarray) -> np.ndarray:
    """Class codes of the ``test`` rows (0 where the model may not classify), trained on the ``train`` rows.

    A config name is built by ``train.build_estimator`` (the estimator ``train.train`` fits, without its
    throughput measurement)."""
    from terracover.missing import classifiable_rows
    from terracover.train import CONFIGS, build_estimator

    estimator = build_estimator(CONFIGS[model], 42) if isinstance(model, str) else model
    train_rows = table[table["split"] == "train"]
    estimator.fit(train_rows[features].to_numpy(np.float32), train_rows["class_code"].to_numpy())
    x = table.loc[test, features].to_numpy(np.float32)
    out = np.zeros(len(x), dtype=np.int64)
    ok = classifiable_rows(estimator, x)
    if ok.any():
        out[ok] = estimator.predict(x[ok])
    return out


def run(root: Path = PATCH, folds: int = 3, block: int = 20, seed: int = 42) -> dict[str, Any]:
    from terracover.features import SEASONS
    from terracover.train import DEFAULT_CONFIG

    from tests.eolearn_patch import labels, terrain

    if not (root / "data" / "NDVI.npy").exists():
        return {"skipped": f"real patch not found under {root}"}
    days, dn, clear = ndvi_year(root, YEAR)
    dem, slope, aspect = terrain(root)
    y = labels(root)
    rows, cols = np.nonzero(y > 0)
    fold = ((rows // block) * 7 + (cols // block) * 3) % folds  # whole blocks per fold
    features = [f"{s.name}_ndvi" for s in SEASONS] + ["dem", "slope", "aspect"]
    nan_name, nan_model = _nan_aware()
    results = []
    for name, how in SCENARIOS:
        seen = hide(clear, days, how, YEAR, seed)
        filled, qa = seasonal_ndvi(days, dn, seen, YEAR, "on")
        raw, _ = seasonal_ndvi(days, dn, seen, YEAR, "off")
        tables = {}
        for kind, ndvi in (("observed", raw), ("filled", filled)):
            cube = np.concatenate([ndvi, dem[None], slope[None], aspect[None]])
            tables[kind] = pd.DataFrame({f: cube[k, rows, cols] for k, f in enumerate(features)}).assign(
                class_code=y[rows, cols]
            )
        correct = {"observed-only": 0, "gap-filled": 0, "NaN-aware": 0}
        classified = dict.fromkeys(correct, 0)
        for f in range(folds):
            split = np.where(fold == f, "test", "train")
            test = split == "test"
            for label, model, kind in (
                ("observed-only", DEFAULT_CONFIG, "observed"),
                ("gap-filled", DEFAULT_CONFIG, "filled"),
                ("NaN-aware", nan_model, "observed"),
            ):
                table = tables[kind].assign(split=split)
                if label == "observed-only":  # trains on the rows it can see, as training tables drop NaN rows
                    keep = np.isfinite(table[features].to_numpy()).all(axis=1) | test
                    table = table[keep]
                    pred = np.zeros(int(test.sum()), dtype=np.int64)
                    seen_test = keep[test]
                    pred[seen_test] = _fit_predict(model, table, features, table["split"].to_numpy() == "test")
                else:
                    pred = _fit_predict(model, table, features, test)
                truth = y[rows[test], cols[test]]
                correct[label] += int((pred == truth).sum())
                classified[label] += int((pred > 0).sum())
        n = len(rows)
        quality = {
            "observed": float((qa >= 1).all(axis=0).mean()),
            "filled": float(((qa >= 1) | (qa <= 0)).all(axis=0).mean() - (qa >= 1).all(axis=0).mean()),
            "missing": float(np.isnan(qa).any(axis=0).mean()),
        }
        results.append(
            {
                "scenario": name,
                "clear_dates_per_pixel": float(seen.sum(axis=0).mean()),
                "pixels": quality,
                "accuracy": {k: v / n for k, v in correct.items()},
                "classified": {k: v / n for k, v in classified.items()},
            }
        )
    return {
        "patch": str(root),
        "year": YEAR,
        "dates": len(days),
        "labelled_pixels": len(rows),
        "folds": folds,
        "block_px": block,
        "config": DEFAULT_CONFIG,
        "nan_aware": nan_name,
        "scenarios": results,
    }


def format_table(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"gap filling on real data: skipped ({r['skipped']})"
    lines = [
        f"Gap filling on real Sentinel-2 (eo-learn Slovenia patch, real LULC labels, {r['labelled_pixels']} px,"
        f" stack year {r['year']}: {r['dates']} dates, NDVI per season + terrain; {r['folds']} spatial folds of"
        f" {r['block_px']} px blocks). Accuracy over every labelled pixel (unclassified = wrong) / share classified.",
        f"| scenario | clear dates/px | px observed / filled / missing | observed-only ({r['config']}) |"
        f" gap-filled ({r['config']}) | NaN-aware ({r['nan_aware']}) |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for s in r["scenarios"]:
        q, a, c = s["pixels"], s["accuracy"], s["classified"]
        cells = [f"{a[k]:.3f} / {c[k]:.0%}" for k in ("observed-only", "gap-filled", "NaN-aware")]
        lines.append(
            f"| {s['scenario']} | {s['clear_dates_per_pixel']:.1f} | {q['observed']:.0%} / {q['filled']:.0%} /"
            f" {q['missing']:.1%} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_table(run()))
