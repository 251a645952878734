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
test pixel, an unclassified pixel counting as an error, plus the share classified), from ``train.CONFIGS``:
- observed-only: the default configuration's fast model (``rf_fast``, not NaN-aware) on unfilled features,
  trained on complete rows; a pixel with a season lacking any clear date is unclassified
  (``missing.classifiable_rows``);
- gap-filled: the same model on features filled by ``TERRACOVER_GAP_FILL=on``;
- NaN-aware: the default configuration's NaN-aware model (``hgb``) on unfilled features;
- default, gap-filled: the default configuration itself (the routing pair) on filled features: what
  ``train`` fits and the service serves.

It also times compositing the year's four seasons with and without gap filling on the same real series, tiled
to about a subtile's size, against ``numpy.nanmedian``.
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


def _seasons(days: list[date], dn: np.ndarray, clear: np.ndarray, year: int) -> list[Any]:
    """Per season: (1, T, H, W) DNs, (T, H, W) SCL and day offsets of its dates (None without a date)."""
    from terracover.bands import SCL_CLOUD_HIGH, SCL_VEGETATION
    from terracover.features import SEASONS
    from terracover.gapfill import day_offset

    scl = np.where(clear, SCL_VEGETATION, SCL_CLOUD_HIGH).astype(np.uint8)
    year_start = SEASONS[0].window(year)[0]
    out: list[Any] = []
    for season in SEASONS:
        first, last = season.window(year)
        idx = [i for i, d in enumerate(days) if first <= d <= last]
        out.append(
            (np.ascontiguousarray(dn[idx][np.newaxis]), np.ascontiguousarray(scl[idx]),
             [day_offset(days[i], year_start) for i in idx]) if idx else None
        )  # fmt: skip
    return out


def plain_medians(seasons: list[Any], height: int, width: int) -> np.ndarray:
    """(4, 1, H, W) masked seasonal medians: compositing without gap filling (the cost baseline)."""
    from terracover.bands import valid_scl_lut
    from terracover.composite import composite_bands

    lut = valid_scl_lut()
    medians = np.full((len(seasons), 1, height, width), np.nan, dtype=np.float32)
    for k, season in enumerate(seasons):
        if season is not None:
            medians[k] = composite_bands(season[0], season[1], lut)
    return medians


def filled_medians(
    seasons: list[Any], height: int, width: int, year: int, policy: str
) -> tuple[np.ndarray, np.ndarray]:
    """The seasonal medians after gap filling by ``policy`` and the (4, H, W) quality bands (as build_stack)."""
    from terracover.bands import valid_scl_lut
    from terracover.features import SEASONS
    from terracover.gapfill import SeasonEdges, day_offset, fill_gaps, season_edges

    lut = valid_scl_lut()
    year_start = SEASONS[0].window(year)[0]
    period = (SEASONS[-1].window(year)[1] - year_start).days + 1
    centres = [sum(day_offset(d, year_start) for d in s.window(year)) / 2 for s in SEASONS]
    medians = plain_medians(seasons, height, width)
    edges = [SeasonEdges.empty(1, height, width) if s is None else season_edges(s[0], s[1], lut, s[2]) for s in seasons]
    return medians, fill_gaps(medians, edges, centres, period, policy)


def seasonal_ndvi(
    days: list[date], dn: np.ndarray, clear: np.ndarray, year: int, policy: str
) -> tuple[np.ndarray, np.ndarray]:
    """(4, H, W) seasonal NDVI medians (filled by ``policy``) and the (4, H, W) quality bands."""
    _, height, width = dn.shape
    medians, qa = filled_medians(_seasons(days, dn, clear, year), height, width, year, policy)
    return medians[:, 0] / 10000 - 1, qa


def compositing_cost(days: list[date], dn: np.ndarray, clear: np.ndarray, year: int, tiles: int = 10,
                     repeat: int = 5) -> dict[str, Any]:  # fmt: skip
    """Best-of-``repeat`` seconds of the year's four seasonal medians without and with gap filling
    (``season_edges`` + ``fill_gaps``, policy ``on``), on the real patch tiled ``tiles`` x ``tiles`` (about a
    1,000 px square, so the parallel kernels have a subtile's worth of work; the values stay real)."""
    from terracover.bands import valid_scl_lut

    from benchmarks.bench_composite import best_time, nanmedian, nanmedian_stack, warm_up

    warm_up()
    big_dn, big_clear = np.tile(dn, (1, tiles, tiles)), np.tile(clear, (1, tiles, tiles))
    _, height, width = big_dn.shape
    seasons = _seasons(days, big_dn, big_clear, year)
    plain = best_time(lambda: plain_medians(seasons, height, width), repeat)
    filled = best_time(lambda: filled_medians(seasons, height, width, year, "on"), repeat)
    lut = valid_scl_lut()
    stacks = [nanmedian_stack(s[0][0], s[1], lut) for s in seasons if s is not None]
    baseline = best_time(lambda: [nanmedian(s) for s in stacks], max(1, repeat // 2))
    return {"pixels": height * width, "dates": len(days), "plain_s": plain, "gap_filled_s": filled,
            "nanmedian_s": baseline, "ratio": filled / plain}  # fmt: skip


def hide(clear: np.ndarray, days: list[date], how: float | str, year: int, seed: int) -> np.ndarray:
    """A copy of the clear mask with a share of each pixel's clear dates, or one season's dates, hidden."""
    from terracover.features import SEASON_BY_NAME

    if isinstance(how, str):
        first, last = SEASON_BY_NAME[how].window(year)
        out = clear.copy()
        out[[i for i, d in enumerate(days) if first <= d <= last]] = False
        return out
    return clear & (np.random.default_rng(seed).random(clear.shape) >= how)


def models() -> dict[str, Any]:
    """The model of each column: the default configuration's fast model (complete rows only), its NaN-aware
    model, and the default configuration itself (what ``train`` fits and the service serves)."""
    from terracover.train import CONFIGS, DEFAULT_CONFIG

    default = CONFIGS[DEFAULT_CONFIG]
    fast = next(c for c in default.parts if not c.accepts_missing) if default.family == "routed" else default
    nan_aware = next(
        (c for c in default.parts if c.accepts_missing and c.family != "routed"),
        next(c for c in CONFIGS.values() if c.accepts_missing and c.family != "routed"),
    )
    return {"fast": fast, "nan_aware": nan_aware, "default": default}


def _fit_predict(config: Any, train: pd.DataFrame, test: pd.DataFrame, features: list[str]) -> np.ndarray:
    """Class codes of the ``test`` rows (0 = unclassified) from ``config`` fitted on the ``train`` rows.

    The estimator is ``train.build_estimator``'s (the one ``train.train`` fits, without its throughput
    measurement). A model that is not NaN-aware sees only complete rows, as training tables give it; with
    fewer than two classes among them it classifies nothing. A NaN-aware model is given only the features
    with at least one value (when a whole season is hidden, its NDVI has none).
    HistGradientBoosting runs on one OpenMP thread (``routing.one_openmp_thread``: with two, its per-tree
    barriers stall on a busy 2-core host)."""
    from terracover.missing import classifiable_rows, declare_accepts_missing
    from terracover.routing import one_openmp_thread
    from terracover.train import build_estimator

    x_train, y_train = train[features].to_numpy(np.float32), train["class_code"].to_numpy()
    x = test[features].to_numpy(np.float32)
    complete = np.isfinite(x_train).all(axis=1)
    if not config.accepts_missing:
        x_train, y_train = x_train[complete], y_train[complete]
    elif config.family != "routed":  # HistGradientBoosting cannot bin a feature without a single value
        seen = ~np.isnan(x_train).all(axis=0)
        x_train, x = x_train[:, seen], x[:, seen]
    out = np.zeros(len(x), dtype=np.int64)
    learns_from = y_train if config.accepts_missing and config.family != "routed" else train["class_code"][complete]
    if len(np.unique(learns_from)) < 2:  # a routing pair's fast model needs two classes among complete rows
        return out
    estimator = build_estimator(config, 42)
    with one_openmp_thread():
        estimator.fit(x_train, y_train)
        if config.accepts_missing:
            declare_accepts_missing(estimator)  # as train.train does for NaN-native configurations
        ok = classifiable_rows(estimator, x)
        if ok.any():
            out[ok] = estimator.predict(x[ok])
    return out


COLUMNS = (  # (column, model role, features)
    ("observed-only", "fast", "observed"),
    ("gap-filled", "fast", "filled"),
    ("NaN-aware", "nan_aware", "observed"),
    ("default, gap-filled", "default", "filled"),
)


def run(root: Path = PATCH, folds: int = 3, block: int = 20, seed: int = 42) -> dict[str, Any]:
    from terracover.features import SEASONS

    from tests.eolearn_patch import labels, terrain

    if not (root / "data" / "NDVI.npy").exists():
        return {"skipped": f"real patch not found under {root}"}
    days, dn, clear = ndvi_year(root, YEAR)
    dem, slope, aspect = terrain(root)
    y = labels(root)
    rows, cols = np.nonzero(y > 0)
    fold = ((rows // block) * 7 + (cols // block) * 3) % folds  # whole blocks per fold
    features = [f"{s.name}_ndvi" for s in SEASONS] + ["dem", "slope", "aspect"]
    chosen = models()
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
        correct = {column: 0 for column, _, _ in COLUMNS}
        classified = dict.fromkeys(correct, 0)
        for f in range(folds):
            test = fold == f
            truth = y[rows[test], cols[test]]
            for column, role, kind in COLUMNS:
                table = tables[kind]
                pred = _fit_predict(chosen[role], table[~test], table[test], features)
                correct[column] += int((pred == truth).sum())
                classified[column] += int((pred > 0).sum())
        n = len(rows)
        observed = (qa >= 1).all(axis=0)
        results.append(
            {
                "scenario": name,
                "clear_dates_per_pixel": float(seen.sum(axis=0).mean()),
                "pixels": {
                    "observed": float(observed.mean()),
                    "filled": float((~np.isnan(qa).any(axis=0) & ~observed).mean()),
                    "missing": float(np.isnan(qa).any(axis=0).mean()),
                },
                "accuracy": {k: v / n for k, v in correct.items()},
                "classified": {k: v / n for k, v in classified.items()},
            }
        )
    return {
        "patch": root.name,
        "year": YEAR,
        "dates": len(days),
        "labelled_pixels": len(rows),
        "folds": folds,
        "block_px": block,
        "models": {role: c.name for role, c in chosen.items()},
        "scenarios": results,
        "compositing": compositing_cost(days, dn, clear, YEAR),
    }


def format_table(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"gap filling on real data: skipped ({r['skipped']})"
    m, c = r["models"], r["compositing"]
    lines = [
        f"Gap filling on real Sentinel-2 (eo-learn Slovenia patch, real LULC labels, {r['labelled_pixels']} px,"
        f" stack year {r['year']}: {r['dates']} dates, NDVI per season + terrain; {r['folds']} spatial folds of"
        f" {r['block_px']} px blocks). Accuracy over every labelled pixel (unclassified = wrong) / share classified.",
        f"| scenario | clear dates/px | px observed / filled / missing | observed-only ({m['fast']}) |"
        f" gap-filled ({m['fast']}) | NaN-aware ({m['nan_aware']}) | default ({m['default']}), gap-filled |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for s in r["scenarios"]:
        q, a, share = s["pixels"], s["accuracy"], s["classified"]
        cells = [f"{a[k]:.3f} / {share[k]:.0%}" for k, _, _ in COLUMNS]
        lines.append(
            f"| {s['scenario']} | {s['clear_dates_per_pixel']:.1f} | {q['observed']:.0%} / {q['filled']:.0%} /"
            f" {q['missing']:.1%} | " + " | ".join(cells) + " |"
        )
    lines.append(
        f"Compositing cost on the same real series (patch tiled to {c['pixels']:,} px, {c['dates']} dates, best of"
        f" 5): four seasonal medians {c['plain_s']:.3f} s, with gap filling (season edges + fill)"
        f" {c['gap_filled_s']:.3f} s: {c['ratio']:.2f}x plain compositing; numpy.nanmedian of the same seasons"
        f" {c['nanmedian_s']:.3f} s ({c['nanmedian_s'] / c['gap_filled_s']:.0f}x the gap-filled time)."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_table(run()))
