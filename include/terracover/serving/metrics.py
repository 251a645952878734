"""The service's Prometheus metrics (names in docs/architecture.md and docs/CONTRACTS.md).

Built on first use inside the worker: BentoML sets the multiprocess directory before a worker imports the
service, and prometheus_client reads it when a metric is created. Gauges say how workers combine (max of live
workers: each worker's drift estimate is over its own requests)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from prometheus_client import Counter, Gauge, Histogram

FRACTION_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
# Finer near 1: a map is expected to be (nearly) complete, and the alert threshold sits there.
COVERAGE_BUCKETS = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0)
# Changed shares of an AOI between two years are mostly small: finer at the low end.
CHANGE_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
SECONDS_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class Metrics:
    predictions: Counter
    confidence: Histogram
    classified_fraction: Histogram
    seconds: Histogram
    pixels: Counter
    drift: Gauge
    shadow_agreement: Histogram
    shadow_confidence: Histogram
    models_loaded: Gauge
    changes: Counter
    changed_fraction: Histogram


@cache
def metrics() -> Metrics:
    return Metrics(
        predictions=Counter(
            "terracover_predictions", "Prediction requests by outcome", ["year", "model_version", "status"]
        ),
        confidence=Histogram(
            "terracover_prediction_confidence",
            "Per-request mean over AOI pixels of the maximum class probability",
            ["year", "model_version"],
            buckets=FRACTION_BUCKETS,
        ),
        classified_fraction=Histogram(
            "terracover_prediction_classified_fraction",
            "Per-request share of the AOI's pixels that got a class (observed or gap-filled features)",
            ["year"],
            buckets=COVERAGE_BUCKETS,
        ),
        seconds=Histogram("terracover_prediction_seconds", "Prediction latency", ["year"], buckets=SECONDS_BUCKETS),
        pixels=Counter("terracover_pixels_classified", "Pixels classified", ["year", "model_version"]),
        drift=Gauge(
            "terracover_feature_drift_psi",
            "Population stability index of requested pixels' features vs the training table",
            ["year", "feature"],
            multiprocess_mode="livemax",
        ),
        shadow_agreement=Histogram(
            "terracover_shadow_agreement",
            "Per-request fraction of pixels where the shadow model agrees with the champion",
            ["year", "champion_version", "shadow_version"],
            buckets=FRACTION_BUCKETS,
        ),
        shadow_confidence=Histogram(
            "terracover_shadow_confidence",
            "Per-request mean maximum class probability of the shadow model",
            ["year", "shadow_version"],
            buckets=FRACTION_BUCKETS,
        ),
        models_loaded=Gauge(
            "terracover_models_loaded",
            "1 for each model version loaded",
            ["year", "model_version"],
            multiprocess_mode="livemax",
        ),
        changes=Counter("terracover_changes", "Change requests by outcome", ["years", "status"]),
        changed_fraction=Histogram(
            "terracover_change_changed_fraction",
            "Per-request share of the AOI's pixels (classified in both years) whose class changed",
            ["years"],
            buckets=CHANGE_BUCKETS,
        ),
    )
