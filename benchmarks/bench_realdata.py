"""Real labels: every model configuration on real Sentinel-2 with real land-use labels, spatially blocked.

Data: ``../shared/data/eolearn_testeopatch`` (Slovenia, 1 km², five summer-2015 scenes, LULC labels), turned into
26 features by the project's own composite, index and terrain code (``tests/eolearn_patch.py``: the masked
median of the five dates, 11 indices, DEM/slope/aspect). Pixels are grouped in square blocks; each fold holds
out a set of whole blocks and drops training pixels within ``buffer`` pixels of a held-out one, so neighbours
of a test pixel never train the model (spatial autocorrelation would otherwise inflate accuracy). Every
configuration in ``train.CONFIGS`` goes through ``train.train``, ``predict.classify`` (the serving path) and
``evaluate.evaluate``; the KHAOS baseline is a RandomForest(100, full depth) on the same features classified
with one ``predict_proba``. Speed: pixels/s of the serving path on 100k real feature rows, single-threaded and
with two threads (fold 0's models). The patch is small and forest-dominated: read the kappa and macro F1, not
only the overall accuracy.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
PATCH = ROOT.parent / "shared" / "data" / "eolearn_testeopatch"
KHAOS = "KHAOS RF (100 full-depth trees, predict_proba)"


def blocked_folds(rows: np.ndarray, cols: np.ndarray, block: int, n_folds: int, seed: int) -> np.ndarray:
    """Fold id (0..n_folds-1) of every pixel: whole ``block`` x ``block`` squares, shuffled, dealt round-robin."""
    ids = (rows // block) * 1000 + cols // block
    blocks = np.unique(ids)
    order = np.random.default_rng(seed).permutation(len(blocks))
    fold_of = dict(zip(blocks[order].tolist(), (np.arange(len(blocks)) % n_folds).tolist(), strict=True))
    return np.array([fold_of[i] for i in ids.tolist()])


def buffered_split(table: pd.DataFrame, test: np.ndarray, buffer: int, shape: tuple[int, int]) -> pd.Series:
    """``split`` column: test pixels, train pixels farther than ``buffer`` px from any test pixel, else excluded."""
    from scipy.ndimage import binary_dilation

    grid = np.zeros(shape, dtype=bool)
    grid[table["row"].to_numpy()[test], table["col"].to_numpy()[test]] = True
    near = binary_dilation(grid, np.ones((2 * buffer + 1, 2 * buffer + 1), dtype=bool))
    near_px = near[table["row"].to_numpy(), table["col"].to_numpy()]
    split = np.where(test, "test", np.where(near_px, "excluded", "train"))
    return pd.Series(split, index=table.index)


def _speed(fn: Any, block: np.ndarray) -> float:
    fn(block[:1000])
    t0 = time.perf_counter()
    fn(block)
    return len(block) / (time.perf_counter() - t0)


def _set_threads(estimator: Any, n: int) -> None:
    """Pin an estimator's own parallelism (joblib n_jobs of forests, LightGBM's threads) to ``n``."""
    target = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    if "n_jobs" in target.get_params():
        target.set_params(n_jobs=n)


def _speeds(fn: Any, estimator: Any, block: np.ndarray) -> tuple[float, float]:
    from threadpoolctl import threadpool_limits

    out = []
    for n in (1, 2):
        _set_threads(estimator, n)
        with threadpool_limits(n):
            out.append(_speed(fn, block))
    return out[0], out[1]


def run(
    block: int = 20, buffer: int = 2, n_folds: int = 5, seed: int = 42, speed_rows: int = 100_000
) -> dict[str, Any]:
    from sklearn.ensemble import RandomForestClassifier
    from terracover import evaluate, train
    from terracover.dataset import split_xy
    from terracover.predict import classify
    from terracover.registry import LoadedModel

    from tests.eolearn_patch import FEATURES, labels, pixel_table

    if not (PATCH / "geotiff_derived").is_dir():
        return {"skipped": f"real sample data not found at {PATCH}"}
    table = pixel_table(PATCH)
    shape = labels(PATCH).shape
    folds = blocked_folds(table["row"].to_numpy(), table["col"].to_numpy(), block, n_folds, seed)
    names = [*train.CONFIGS, KHAOS]
    scores: dict[str, list[evaluate.Evaluation]] = {n: [] for n in names}
    speeds: dict[str, tuple[float, float]] = {}
    sizes = []
    for k in range(n_folds):
        fold = table.assign(split=buffered_split(table, folds == k, buffer, shape), year=2015)
        sizes.append((int((fold["split"] == "train").sum()), int((fold["split"] == "test").sum())))
        x_test, y_test = split_xy(fold, FEATURES, "test")
        rng = np.random.default_rng(k)
        block_rows = x_test[rng.integers(0, len(x_test), speed_rows)]
        codes = sorted(set(table["class_code"].tolist()))
        for name in train.CONFIGS:
            model = train.train(fold, name, features=list(FEATURES), seed=seed)
            loaded = LoadedModel(name, "bench", "", model.features, model.estimator, "", "")
            predicted, _ = classify(loaded, x_test)
            scores[name].append(evaluate.evaluate(y_test, predicted, labels=codes))
            if k == 0:
                speeds[name] = _speeds(lambda x, m=loaded: classify(m, x), model.estimator, block_rows)
        x_train, y_train = split_xy(fold, FEATURES, "train")
        rf = RandomForestClassifier(n_estimators=100, n_jobs=2, random_state=seed).fit(x_train, y_train)
        scores[KHAOS].append(evaluate.evaluate(y_test, rf.classes_[rf.predict_proba(x_test).argmax(1)], labels=codes))
        if k == 0:
            speeds[KHAOS] = _speeds(rf.predict_proba, rf, block_rows)
    rows = []
    for name in names:
        evs = scores[name]
        per_class = {
            evaluate.class_name(c): float(np.mean([e.per_class[c].recall for e in evs if e.per_class[c].support]))
            for c in codes
        }
        rows.append(
            {
                "model": name,
                "oa": (
                    float(np.mean([e.overall_accuracy for e in evs])),
                    float(np.std([e.overall_accuracy for e in evs])),
                ),
                "kappa": (float(np.mean([e.kappa for e in evs])), float(np.std([e.kappa for e in evs]))),
                "macro_f1": (float(np.mean([e.macro_f1 for e in evs])), float(np.std([e.macro_f1 for e in evs]))),
                "recall": per_class,
                "px_s_1_thread": speeds[name][0],
                "px_s_2_threads": speeds[name][1],
            }
        )
    return {
        "data": "eo-learn TestEOPatch (real Sentinel-2 L1C, Slovenia 2015, real LULC labels)",
        "pixels": len(table),
        "classes": table["class_code"].value_counts().sort_index().to_dict(),
        "features": len(FEATURES),
        "folds": n_folds,
        "block_px": block,
        "buffer_px": buffer,
        "train_test_per_fold": sizes,
        "rows": rows,
    }


def format_table(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"Real-label benchmark skipped: {r['skipped']}"
    classes = list(r["rows"][0]["recall"])
    head = (
        f"Real labels: {r['data']}; {r['pixels']} labelled pixels, {r['features']} features from our composite/"
        f"index/terrain code; {r['folds']} spatially blocked folds ({r['block_px']} px blocks, {r['buffer_px']} px"
        " buffer); mean ± sd over folds; recall per class is the mean over folds holding that class; px/s of the"
        " serving path (`predict.classify`; KHAOS: one `predict_proba`) on 100k real rows.\n\n"
        "| model | OA | kappa | macro F1 | "
        + " | ".join(f"recall {c}" for c in classes)
        + " | px/s 1 thread | px/s 2 threads |\n|---|---|---|---|"
        + "---|" * len(classes)
        + "---|---|"
    )
    lines = [head]
    for row in r["rows"]:
        ms = " | ".join(f"{row[m][0]:.3f} ± {row[m][1]:.3f}" for m in ("oa", "kappa", "macro_f1"))
        rec = " | ".join(f"{row['recall'][c]:.2f}" for c in classes)
        lines.append(f"| {row['model']} | {ms} | {rec} | {row['px_s_1_thread']:,.0f} | {row['px_s_2_threads']:,.0f} |")
    return "\n".join(lines)
