"""Model configurations as data, training on a training table, optional RFE, and inference throughput.

Serving speed is decided by the model: a full-depth 100-tree forest (the KHAOS baseline) classifies
~0.1 Mpixel/s on two cores, so the configurations below trade tree count/depth or switch to a dense per-pixel
model, and every trained model carries its measured throughput next to its accuracy.

Estimators are fitted on plain float32 arrays whose columns follow ``TrainedModel.features``: serving feeds
raw stack pixels in that order, and any scaling lives inside the estimator (a Pipeline).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from terracover.dataset import feature_columns, split_xy
from terracover.missing import declare_accepts_missing

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelConfig:
    """One named model recipe: the estimator family and its hyper-parameters."""

    name: str
    family: str  # "random_forest" | "lightgbm" | "mlp" | "hist_gradient_boosting" | "routed"
    hyperparameters: Mapping[str, Any]  # for "routed": {"fast": config name, "missing": config name}
    description: str

    @property
    def parts(self) -> list[ModelConfig]:
        """The configurations this one is made of (itself, or a routing pair's two models)."""
        if self.family != "routed":
            return [self]
        return [CONFIGS[str(self.hyperparameters["fast"])], CONFIGS[str(self.hyperparameters["missing"])]]

    @property
    def framework(self) -> str:
        return "lightgbm" if self.family == "lightgbm" else "scikit-learn"

    @property
    def uses_lightgbm(self) -> bool:
        return any(p.family == "lightgbm" for p in self.parts)

    @property
    def accepts_missing(self) -> bool:
        """Whether the model learns from and classifies rows with missing features (terracover.missing)."""
        return self.family in NAN_AWARE_FAMILIES


NAN_AWARE_FAMILIES = frozenset({"lightgbm", "hist_gradient_boosting", "routed"})

CONFIGS: dict[str, ModelConfig] = {
    c.name: c
    for c in (
        ModelConfig(
            "rf_full",
            "random_forest",
            {"n_estimators": 100, "max_depth": None},
            "RandomForest, 100 full-depth trees: the KHAOS baseline (accurate, slow to serve)",
        ),
        ModelConfig(
            "rf_fast",
            "random_forest",
            {"n_estimators": 30, "max_depth": 12, "min_samples_leaf": 2},
            "RandomForest, 30 trees of depth <= 12: ~10x fewer node steps per pixel",
        ),
        ModelConfig(
            "lgbm",
            "lightgbm",
            {"n_estimators": 40, "num_leaves": 15, "learning_rate": 0.15, "min_child_samples": 5},
            "LightGBM, 40 boosting rounds of 15-leaf trees; learns where missing values go (native NaN)",
        ),
        ModelConfig(
            "hgb",
            "hist_gradient_boosting",
            {"max_iter": 100, "max_leaf_nodes": 15, "learning_rate": 0.15, "early_stopping": False},
            "scikit-learn HistGradientBoosting: native missing values, slow per pixel (~0.2x KHAOS)",
        ),
        ModelConfig(
            "mlp",
            "mlp",
            {"hidden_layer_sizes": (64, 32), "alpha": 1e-3, "max_iter": 400, "early_stopping": True},
            "StandardScaler + 2-layer MLP: a dense per-pixel model, fastest to serve",
        ),
        ModelConfig(
            "mlp_hgb",
            "routed",
            {"fast": "mlp", "missing": "hgb"},
            "MLP on pixels with every feature present (fast path), HistGradientBoosting on the rest",
        ),
        ModelConfig(
            "rf_fast_hgb",
            "routed",
            {"fast": "rf_fast", "missing": "hgb"},
            "rf_fast on pixels with every feature present, HistGradientBoosting on the rest",
        ),
    )
}
# rf_fast was chosen on the real-label benchmark (README, "Which model is the default"); paired with HGB it
# also classifies the pixels whose features could be neither observed nor filled.
DEFAULT_CONFIG = "rf_fast_hgb"


@dataclass
class TrainedModel:
    """A fitted estimator and everything needed to log, compare and serve it."""

    config: ModelConfig
    estimator: Any  # sklearn-API: predict_proba, classes_ = class codes
    features: list[str]  # ordered columns the estimator consumes
    seed: int
    n_train: int
    train_seconds: float
    throughput_pixels_per_s: float
    candidate_features: list[str] = field(default_factory=list)
    rfe_target: int | None = None

    @property
    def classes(self) -> list[int]:
        return [int(c) for c in self.estimator.classes_]

    def params(self) -> dict[str, Any]:
        """Flat, loggable description of how the model was made (MLflow params, STAC MLM hyperparameters)."""
        hp = {f"hp_{k}": v for k, v in self.config.hyperparameters.items()}
        if self.config.family == "routed":
            for role, part in zip(("fast", "missing"), self.config.parts, strict=True):
                hp |= {f"hp_{role}_{k}": v for k, v in part.hyperparameters.items()}
        return {
            "model_type": self.config.name,
            "model_family": self.config.family,
            "estimator_class": type(self.estimator).__name__,
            "seed": self.seed,
            "n_features": len(self.features),
            "n_train": self.n_train,
            "accepts_missing": self.config.accepts_missing,
            "rfe_target": self.rfe_target,
            "rfe_candidates": len(self.candidate_features) if self.rfe_target else None,
            **hp,
        }


def build_estimator(config: ModelConfig, seed: int) -> Any:
    """A fresh, unfitted estimator for ``config``."""
    builders: dict[str, Callable[[Mapping[str, Any], int], Any]] = {
        "random_forest": _random_forest,
        "lightgbm": _lightgbm,
        "mlp": _mlp,
        "hist_gradient_boosting": _hist_gradient_boosting,
    }
    if config.family == "routed":
        from terracover.routing import RoutedClassifier

        fast, missing = config.parts
        return RoutedClassifier(build_estimator(fast, seed), build_estimator(missing, seed))
    return builders[config.family](config.hyperparameters, seed)


def _hist_gradient_boosting(hp: Mapping[str, Any], seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(**hp, random_state=seed)


def _random_forest(hp: Mapping[str, Any], seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(**hp, n_jobs=-1, random_state=seed)


def _lightgbm(hp: Mapping[str, Any], seed: int) -> Any:
    from lightgbm import LGBMClassifier

    return LGBMClassifier(**hp, random_state=seed, n_jobs=2, verbose=-1)


def _mlp(hp: Mapping[str, Any], seed: int) -> Any:
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler()), ("mlp", MLPClassifier(**hp, random_state=seed))])


def select_features(x: np.ndarray, y: np.ndarray, names: Sequence[str], target: int, seed: int) -> list[str]:
    """Recursive feature elimination (RandomForest importances) down to ``target`` names, in input order.

    Removes 10% of the starting features per round, so 72 -> 15 costs ~9 forest fits rather than 57.
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.feature_selection import RFE

    if not 0 < target < len(names):
        raise ValueError(f"rfe_target must be between 1 and {len(names) - 1} (the table has {len(names)} features)")
    rfe = RFE(
        RandomForestClassifier(n_estimators=50, n_jobs=-1, random_state=seed),
        n_features_to_select=target,
        step=0.1,
    )
    rfe.fit(x, y)
    return [n for n, keep in zip(names, rfe.support_, strict=True) if keep]


def train(
    table: pd.DataFrame,
    config_name: str = DEFAULT_CONFIG,
    features: list[str] | None = None,
    seed: int = 42,
    rfe_target: int | None = None,
) -> TrainedModel:
    """Fit ``config_name`` on the table's ``train`` split; ``features`` defaults to every feature column."""
    if config_name not in CONFIGS:
        raise ValueError(f"unknown model config {config_name!r}; choose one of {sorted(CONFIGS)}")
    config = CONFIGS[config_name]
    candidates = list(features) if features else feature_columns(table)
    x, y = split_xy(table, candidates, "train")
    complete = np.isfinite(x).all(axis=1)
    if not config.accepts_missing and not complete.all():
        log.info("%s cannot use missing values: fitting on %d of %d rows", config.name, complete.sum(), len(y))
        x, y = x[complete], y[complete]
    if len(np.unique(y)) < 2:
        raise ValueError("the train split holds fewer than two classes: nothing to learn")
    chosen = candidates
    if rfe_target is not None:
        full = np.isfinite(x).all(axis=1)
        chosen = select_features(x[full], y[full], candidates, rfe_target, seed)
        log.info("RFE kept %d of %d features: %s", len(chosen), len(candidates), chosen)
        x = x[:, [candidates.index(f) for f in chosen]]
    from terracover.routing import one_openmp_thread

    estimator = build_estimator(config, seed)
    t0 = time.perf_counter()
    with one_openmp_thread() if config.family == "hist_gradient_boosting" else nullcontext():
        estimator.fit(x, y)
    seconds = time.perf_counter() - t0
    if config.accepts_missing:
        declare_accepts_missing(estimator)  # serving and evaluation give it the rows with missing features
    with one_openmp_thread() if config.family == "hist_gradient_boosting" else nullcontext():
        speed = measure_throughput(estimator, len(chosen), like=x)
    log.info(
        "trained %s on %d rows x %d features in %.1fs; %.0f pixels/s",
        config.name,
        len(y),
        len(chosen),
        seconds,
        speed,
    )
    return TrainedModel(
        config=config,
        estimator=estimator,
        features=chosen,
        seed=seed,
        n_train=len(y),
        train_seconds=seconds,
        throughput_pixels_per_s=speed,
        candidate_features=candidates if rfe_target is not None else [],
        rfe_target=rfe_target,
    )


def measure_throughput(
    estimator: Any, n_features: int, n_pixels: int = 250_000, like: np.ndarray | None = None, seed: int = 0
) -> float:
    """Pixels/s of ``predict_proba`` on one float32 block of up to ``n_pixels`` (serving reads such blocks).

    Tree cost depends on the paths pixels take, so with ``like`` (real feature rows) the block resamples those
    rows with a little noise; without it, pixels are uniform in [-1, 1] (the normalised feature range).
    """
    rng = np.random.default_rng(seed)
    if like is not None and len(like):
        rows = like[rng.integers(0, len(like), n_pixels)]  # missing values stay missing, as in the table
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column has no spread
            spread = np.nan_to_num(np.nanstd(like, axis=0))
        block = (rows + rng.normal(0, 0.01, rows.shape) * spread).astype(np.float32)
    else:
        block = rng.uniform(-1, 1, (n_pixels, n_features)).astype(np.float32)
    t0 = time.perf_counter()
    estimator.predict_proba(block[:2000])  # warm up thread pools and lazy initialisation
    # A slow model (HistGradientBoosting: ~0.02 Mpixel/s) is timed on a smaller block, about 3 s of work at
    # most: the rate is the same, and training does not wait a minute to learn it.
    n = int(min(n_pixels, max(20_000, 3.0 * 2000 / max(time.perf_counter() - t0, 1e-9))))
    t0 = time.perf_counter()
    estimator.predict_proba(block[:n])
    return n / (time.perf_counter() - t0)
