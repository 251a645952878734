"""Which model answers each year, loaded lazily and swapped without a restart.

The index (year -> champion/shadow versions) comes from one MLflow call over every ``landcover-*`` model; it is
refreshed periodically and on ``/admin/reload``. Each worker loads the champions in the background as it starts
(:meth:`ModelCache.warm`); any model not loaded yet is loaded on its year's first request. Estimators are kept
by version, so a swap never mixes two versions. When MLflow is unreachable the index and the loaded models stay as
they were and :meth:`ModelCache.status` says why.

Replicas and workers each hold their own cache: a reload reaches one worker over HTTP, so it also touches a
stamp file that every worker of the host checks before answering.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from terracover.accuracy import AccuracySample, load_logged
from terracover.drift import DriftMonitor, Reference
from terracover.registry import CHAMPION, LoadedModel, ModelRef, Registry, open_registry
from terracover.settings import Settings, redact_uri, scrub

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class YearModels:
    champion: ModelRef
    shadow: ModelRef | None = None


@dataclass
class _Health:
    ok: bool = False
    last_success: float | None = None
    last_error: str | None = None
    last_attempt: float | None = None


@dataclass
class ModelCache:
    settings: Settings
    index: dict[int, YearModels] = field(default_factory=dict)
    _loaded: dict[tuple[str, str], LoadedModel] = field(default_factory=dict)
    _drift: dict[tuple[str, str], DriftMonitor | None] = field(default_factory=dict)
    _samples: dict[tuple[str, str], AccuracySample] = field(default_factory=dict)
    _health: _Health = field(default_factory=_Health)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _stamp_seen: float = 0.0
    _registry: Registry | None = None

    @property
    def registry(self) -> Registry:
        """One client per tracking URI: reopened only when the settings point somewhere else."""
        if self._registry is None or self._registry.tracking_uri != self.settings.mlflow_tracking_uri:
            self._registry = open_registry(self.settings)
        return self._registry

    @property
    def stamp(self) -> Path:
        return self.settings.home / "serving" / "reload.stamp"

    # --- the index ---------------------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Re-read aliases from MLflow; on failure keep everything and record the error. Returns success."""
        self._health.last_attempt = time.time()
        try:
            index = self._read_index()
        except Exception as exc:  # any failure of the registry must leave serving as it was
            self._health.ok = False
            self._health.last_error = scrub(f"{type(exc).__name__}: {exc}", self.settings)[:500]
            log.warning("model index refresh failed, serving the models already loaded: %s", self._health.last_error)
            return False
        with self._lock:
            changed = {y for y in index if self.index.get(y) != index[y]} | (set(self.index) - set(index))
            self.index = index
            live = {(m.name, m.version) for ym in index.values() for m in (ym.champion, ym.shadow) if m}
            for key in [k for k in self._loaded if k not in live]:
                del self._loaded[key]
                self._drift.pop(key, None)
                self._samples.pop(key, None)
        self._health.ok, self._health.last_success, self._health.last_error = True, time.time(), None
        if changed:
            log.info(
                "model index: %s", {y: (m.champion.version, m.shadow and m.shadow.version) for y, m in index.items()}
            )
        return True

    def _read_index(self) -> dict[int, YearModels]:
        return {year: YearModels(champion, shadow) for year, (champion, shadow) in self.registry.served().items()}

    def request_reload(self) -> bool:
        """Refresh now and tell this host's other workers to do the same."""
        self.stamp.parent.mkdir(parents=True, exist_ok=True)
        self.stamp.touch()
        self._stamp_seen = self.stamp.stat().st_mtime
        return self.refresh()

    def check_stamp(self) -> None:
        """Refresh if another worker received a reload since this one last looked (one stat per request)."""
        try:
            mtime = self.stamp.stat().st_mtime
        except FileNotFoundError:
            return
        if mtime > self._stamp_seen:
            self._stamp_seen = mtime
            self.refresh()

    def warm(self) -> None:
        """Load every served year's champion, its drift reference and its reference sample now, in the
        background at worker start: a worker's first request of a year otherwise waits for them (~7 s for the
        bench's MLP+HGB pair from MLflow on 2 busy cores). Failures are only logged: that request retries."""
        for year in self.years():
            try:
                model = self.get(year)
                if model is not None:
                    self.drift_monitor(model)
                    self.accuracy_sample(model)
            except Exception as exc:  # the request path reports registry failures; warming never fails a worker
                log.warning("could not preload the %d champion: %s", year, scrub(str(exc), self.settings)[:500])

    def run_periodic_refresh(self, stop: threading.Event) -> None:
        while not stop.wait(self.settings.model_refresh_s):
            self.refresh()

    # --- models ------------------------------------------------------------------------------------------

    def years(self) -> list[int]:
        return sorted(self.index)

    def get(self, year: int, alias: str = CHAMPION) -> LoadedModel | None:
        """The loaded model of ``alias`` for ``year`` (loading it on first use), None if the year has none."""
        ym = self.index.get(year)
        ref = None if ym is None else (ym.champion if alias == CHAMPION else ym.shadow)
        if ref is None:
            return None
        key = (ref.name, ref.version)
        with self._lock:
            if key not in self._loaded:
                t0 = time.perf_counter()
                self._loaded[key] = self.registry.load_version(ref)
                log.info("loaded %s v%s in %.1f s", ref.name, ref.version, time.perf_counter() - t0)
            return self._loaded[key]

    def drift_monitor(self, model: LoadedModel) -> DriftMonitor | None:
        """The drift monitor of a loaded model, built from its training table (None if that is unreadable)."""
        key = (model.name, model.version)
        with self._lock:
            if key not in self._drift:
                self._drift[key] = self._build_monitor(model)
            return self._drift[key]

    def _build_monitor(self, model: LoadedModel) -> DriftMonitor | None:
        from terracover.dataset import load_table
        from terracover.store import open_store

        try:
            tags = self.registry.version_tags(ModelRef(model.name, model.version, model.run_id, 0))
            year = int(model.name.removeprefix("landcover-"))
            table = load_table(year, tags.get("dataset_uri"), open_store(self.settings)).frame
            train = table[table["split"] == "train"] if "split" in table else table
            return DriftMonitor(Reference.from_table(train, model.features), sample_px=self.settings.drift_sample_px)
        except Exception as exc:  # drift is an aid, never a reason to fail a prediction
            log.warning("no drift reference for %s v%s: %s", model.name, model.version, exc)
            return None

    def accuracy_sample(self, model: LoadedModel) -> AccuracySample | None:
        """The reference sample logged with a model's run (its error matrix corrects mapped areas); None when
        the run has none or MLflow cannot be read now (then asked again on the next request, never cached)."""
        key = (model.name, model.version)
        with self._lock:
            if key in self._samples:
                return self._samples[key]
        try:
            sample = load_logged(model.run_id, lambda path: self.registry.artifact_text(model.run_id, path))
        except Exception as exc:  # area estimates are an addition to the answer, never a reason to fail it
            log.warning("no reference sample for %s v%s: %s", model.name, model.version, exc)
            return None
        if sample is not None:
            with self._lock:
                self._samples[key] = sample
        return sample

    def loaded(self) -> list[tuple[str, str]]:
        # Without the lock: a load holds it for seconds, and /readyz asks from the event loop. list() of a dict
        # is one step under the GIL, so it never sees a half-inserted entry.
        return sorted(list(self._loaded))

    def status(self) -> dict[str, Any]:
        """Readiness with reasons: ready once the index has been read once or models are loaded."""
        h = self._health
        ready = h.last_success is not None or bool(self._loaded)
        return {
            "ready": ready,
            "mlflow": {
                "reachable": h.ok,
                "tracking_uri": redact_uri(self.settings.mlflow_tracking_uri),
                "last_success": h.last_success,
                "last_error": h.last_error,
            },
            "years": {
                str(y): {"champion": m.champion.version, "shadow": m.shadow.version if m.shadow else None}
                for y, m in sorted(self.index.items())
            },
            "loaded": [f"{n}/{v}" for n, v in self.loaded()],
        }
