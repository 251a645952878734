"""Per-pixel classification speed at equal accuracy: each model configuration of terracover.train, run the way
the service runs it (:func:`terracover.predict.classify`: 250k-row ``predict_proba`` blocks), against the KHAOS
baseline, a full-depth 100-tree RandomForest ``predict_proba`` in one call.

The table is synthetic: nine overlapping Gaussian classes in the 15 KHAOS features (sklearn
``make_classification``), so accuracies compare models with each other, not with real maps. Pixels are test
rows resampled with a little noise, so trees walk realistic paths.

``python -m benchmarks.bench_classify [--pixels 1000000]``
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score
from terracover.classes import CLASS_CODES
from terracover.predict import classify
from terracover.registry import LoadedModel
from terracover.train import CONFIGS, build_estimator

KHAOS_FEATURES = [
    "slope", "summer_AOT", "spring_B01", "spring_ndyi", "autumn_B01", "summer_ri", "summer_mndwi", "autumn_AOT",
    "spring_cri1", "dem", "summer_B11", "spring_ndvi", "summer_B01", "summer_moisture", "summer_B12",
]  # fmt: skip


def synthetic_table(n: int = 12_000, seed: int = 0) -> pd.DataFrame:
    """Rows of the 15 KHAOS features with class codes and a 75/25 train/test split."""
    x, y = make_classification(
        n_samples=n, n_features=len(KHAOS_FEATURES), n_informative=10, n_redundant=3, n_classes=len(CLASS_CODES),
        n_clusters_per_class=2, class_sep=1.6, flip_y=0.01, random_state=seed,
    )  # fmt: skip
    df = pd.DataFrame(x.astype(np.float32), columns=KHAOS_FEATURES)
    df["class_code"] = np.asarray(CLASS_CODES)[y]
    df["split"] = np.where(np.random.default_rng(seed).random(n) < 0.25, "test", "train")
    return df


def pixels_like(rows: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picked = rows[rng.integers(0, len(rows), n)]
    return (picked + rng.normal(0, 0.02, picked.shape) * rows.std(axis=0)).astype(np.float32)


def run(pixels: int = 1_000_000, seed: int = 0) -> dict[str, Any]:
    table = synthetic_table(seed=seed)
    train, test = table[table.split == "train"], table[table.split == "test"]
    x_tr, y_tr = train[KHAOS_FEATURES].to_numpy(np.float32), train.class_code.to_numpy()
    x_te, y_te = test[KHAOS_FEATURES].to_numpy(np.float32), test.class_code.to_numpy()
    block = pixels_like(x_te, pixels)

    baseline = RandomForestClassifier(n_estimators=100, max_depth=None, n_jobs=-1, random_state=seed).fit(x_tr, y_tr)
    base_acc = accuracy_score(y_te, baseline.predict(x_te))
    baseline.predict_proba(block[:1000])
    t0 = time.perf_counter()
    baseline.predict_proba(block)  # KHAOS: one call over every pixel
    base_s = time.perf_counter() - t0
    rows = [
        {"model": "KHAOS RandomForest(100, full depth), one predict_proba call", "accuracy": base_acc,
         "pixels_per_s": pixels / base_s, "ratio": 1.0},
    ]  # fmt: skip
    for name, config in CONFIGS.items():
        est = build_estimator(config, seed).fit(pd.DataFrame(x_tr, columns=KHAOS_FEATURES), y_tr)
        model = LoadedModel(name, "bench", "", KHAOS_FEATURES, est, "", "")
        acc = accuracy_score(y_te, classify(model, x_te)[0])
        classify(model, block[:1000])
        t0 = time.perf_counter()
        classify(model, block)
        seconds = time.perf_counter() - t0
        rows.append(
            {"model": f"{name}: {config.description}", "accuracy": acc, "pixels_per_s": pixels / seconds,
             "ratio": base_s / seconds}
        )  # fmt: skip
    return {"pixels": pixels, "features": len(KHAOS_FEATURES), "rows": rows}


def format_table(result: dict[str, Any]) -> str:
    lines = [
        f"Classification of {result['pixels']:,} pixels x {result['features']} features (synthetic 9-class table)",
        "| model | test accuracy | Mpixel/s | x baseline |",
        "|---|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['model']} | {r['accuracy']:.3f} | {r['pixels_per_s'] / 1e6:.2f} | {r['ratio']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pixels", type=int, default=1_000_000)
    a = p.parse_args()
    res = run(a.pixels)
    print(format_table(res))
    print(json.dumps(res, indent=1))
