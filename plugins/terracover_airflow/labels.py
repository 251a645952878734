"""The labels prefix as an event source: an ``AssetWatcher`` trigger that announces label content no training
table was built from, so ``build_training_set`` starts when labels land instead of on a clock.

"New" is decided by content (``terracover.labelsets``): rewriting an identical label file announces nothing.
The state lives in the store (each training table records the label set it was built from), so a restarted
triggerer announces exactly what is still unbuilt.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent


def _unbuilt_label_sets() -> dict[str, str]:
    """{year: digest} of the label sets no training table of that year was built from."""
    from terracover.labelsets import unbuilt
    from terracover.settings import get_settings
    from terracover.store import open_store

    return {str(year): labels.digest for year, labels in unbuilt(open_store(get_settings())).items()}


class NewLabelsTrigger(BaseEventTrigger):
    """Polls the store's ``labels/`` every ``poll_interval`` s; one event per new unbuilt label content."""

    def __init__(self, poll_interval: float = 60.0):
        super().__init__()
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {"poll_interval": self.poll_interval}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        announced: dict[str, str] = {}
        while True:
            try:
                unbuilt = await asyncio.to_thread(_unbuilt_label_sets)
            except Exception as exc:  # a broken label file is build_training_set's to report, loudly
                self.log.warning("could not read the labels prefix (%s); retrying", exc)
                unbuilt = announced
            fresh = {y: d for y, d in unbuilt.items() if announced.get(y) != d}
            if fresh:
                yield TriggerEvent({"years": sorted(int(y) for y in fresh), "digests": fresh})
            announced = unbuilt
            await asyncio.sleep(self.poll_interval)
