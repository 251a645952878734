"""Prometheus/Alertmanager on the Airflow side: a hook, a trigger that waits for a named alert (usable by a
deferrable sensor and, as an event trigger, by an ``AssetWatcher``), and the sensor.

Alertmanager's ``GET /api/v2/alerts`` is the source of truth for "firing" (after grouping, silences and
inhibitions): an alert a human silenced must not start a retraining.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

import httpx
from airflow.sdk import BaseHook, BaseSensorOperator, Context
from airflow.triggers.base import BaseEventTrigger, TriggerEvent


def _default_url(kind: str) -> str:
    from terracover.settings import get_settings

    s = get_settings()
    return s.alertmanager_url if kind == "alertmanager" else s.prometheus_url


def _matches(alert: Mapping[str, Any], name: str, labels: Mapping[str, str]) -> bool:
    got = alert.get("labels") or {}
    return got.get("alertname") == name and all(str(got.get(k)) == str(v) for k, v in labels.items())


class AlertmanagerHook(BaseHook):
    """Active alerts from Alertmanager and instant queries to Prometheus (URLs from settings unless given)."""

    def __init__(self, alertmanager_url: str | None = None, prometheus_url: str | None = None, timeout: float = 10):
        super().__init__()
        self.alertmanager_url = (alertmanager_url or _default_url("alertmanager")).rstrip("/")
        self.prometheus_url = (prometheus_url or _default_url("prometheus")).rstrip("/")
        self.timeout = timeout

    def _alerts_request(self, name: str) -> tuple[str, dict[str, Any]]:
        params = {"active": "true", "silenced": "false", "inhibited": "false", "filter": f'alertname="{name}"'}
        return f"{self.alertmanager_url}/api/v2/alerts", params

    def firing(self, name: str, labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        url, params = self._alerts_request(name)
        r = httpx.get(url, params=params, timeout=self.timeout)
        r.raise_for_status()
        return [a for a in r.json() if _matches(a, name, labels or {})]

    async def afiring(self, name: str, labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        url, params = self._alerts_request(name)
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            r = await client.get(url, params=params)
        r.raise_for_status()
        return [a for a in r.json() if _matches(a, name, labels or {})]

    def query(self, promql: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.prometheus_url}/api/v1/query", params={"query": promql}, timeout=self.timeout)
        r.raise_for_status()
        return list(r.json()["data"]["result"])


def _summary(alerts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What downstream tasks need of each alert (JSON-small for XCom and trigger events)."""
    return [
        {
            "labels": dict(a.get("labels") or {}),
            "annotations": dict(a.get("annotations") or {}),
            "startsAt": a.get("startsAt"),
            "fingerprint": a.get("fingerprint"),
        }
        for a in alerts
    ]


class AlertFiringTrigger(BaseEventTrigger):
    """Fires once ``alertname`` is active in Alertmanager with ``labels``; polls every ``poll_interval`` s.

    Unreachable Alertmanager is logged and retried: a monitoring outage must not fail the waiting task."""

    def __init__(
        self,
        alertname: str,
        labels: Mapping[str, str] | None = None,
        alertmanager_url: str | None = None,
        poll_interval: float = 30.0,
    ):
        super().__init__()
        self.alertname = alertname
        self.labels = dict(labels or {})
        self.alertmanager_url = alertmanager_url or _default_url("alertmanager")
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "alertname": self.alertname,
                "labels": self.labels,
                "alertmanager_url": self.alertmanager_url,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = AlertmanagerHook(alertmanager_url=self.alertmanager_url)
        while True:
            try:
                alerts = await hook.afiring(self.alertname, self.labels)
            except httpx.HTTPError as exc:
                self.log.warning("Alertmanager at %s unreachable (%s); retrying", self.alertmanager_url, exc)
                alerts = []
            if alerts:
                yield TriggerEvent({"status": "firing", "alertname": self.alertname, "alerts": _summary(alerts)})
                return
            await asyncio.sleep(self.poll_interval)


class AlertFiringSensor(BaseSensorOperator):
    """Waits (deferred, holding no worker slot) until ``alertname`` fires; returns the firing alerts."""

    template_fields: Sequence[str] = ("alertname", "labels")

    def __init__(
        self,
        *,
        alertname: str,
        labels: Mapping[str, str] | str | None = None,
        alertmanager_url: str | None = None,
        poll_interval: float = 30.0,
        deferrable: bool = True,
        **kwargs: Any,
    ):
        super().__init__(poke_interval=poll_interval, **kwargs)
        self.alertname = alertname
        self.labels: Any = labels if isinstance(labels, str) else dict(labels or {})  # str: a template
        self.alertmanager_url = alertmanager_url
        self.poll_interval = poll_interval
        self.deferrable = deferrable

    def _hook(self) -> AlertmanagerHook:
        return AlertmanagerHook(alertmanager_url=self.alertmanager_url)

    def poke(self, context: Context) -> Any:
        alerts = self._hook().firing(self.alertname, self.labels)
        return _summary(alerts) if alerts else False

    def execute(self, context: Context) -> Any:
        try:
            alerts = self._hook().firing(self.alertname, self.labels)
        except httpx.HTTPError as exc:
            self.log.warning("Alertmanager unreachable (%s); waiting in the triggerer", exc)
            alerts = []
        if alerts:
            return _summary(alerts)
        if not self.deferrable:
            return super().execute(context)
        timeout = timedelta(seconds=float(self.timeout)) if self.timeout is not None else None
        self.defer(
            trigger=AlertFiringTrigger(self.alertname, self.labels, self._hook().alertmanager_url, self.poll_interval),
            method_name="execute_complete",
            timeout=timeout,
        )
        return None

    def execute_complete(self, context: Context, event: dict[str, Any]) -> list[dict[str, Any]]:
        self.log.info("%s firing: %s", event["alertname"], [a["labels"] for a in event["alerts"]])
        return list(event["alerts"])
