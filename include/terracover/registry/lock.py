"""One promotion at a time per registered model, with the lock kept in the registry itself.

MLflow has no compare-and-set on aliases, so two promotions of one year could both find the champion they were
compared with and both move the alias. The one atomic write MLflow's API offers is creating a registered model
under a name that must be unique: the lock is such a model, ``promotion-lock.landcover-{year}``, created (tagged
with its holder, the version being promoted) to take it and deleted to release it.

A promotion that died holding it (the registry went away mid-promotion) re-enters it when it is retried for the
same version; another version's promotion waits up to ``wait_s`` and breaks a lock older than ``stale_s``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from terracover.registry.client import Registry

log = logging.getLogger(__name__)

LOCK_PREFIX = "promotion-lock."  # not "landcover-": listings of the year models never see a lock
HOLDER = "holder"


def lock_name(name: str) -> str:
    return f"{LOCK_PREFIX}{name}"


@contextlib.contextmanager
def promotion_lock(
    reg: Registry, name: str, holder: str, wait_s: float, stale_s: float, poll_s: float = 0.5
) -> Iterator[None]:
    """Hold the promotion lock of registered model ``name`` for the block (``holder``: the version promoted)."""
    lock = lock_name(name)
    deadline = time.monotonic() + wait_s
    while not _acquire(reg, lock, holder, stale_s):
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"another promotion of {name} has held {lock!r} for over {wait_s:.0f}s"
                " (TERRACOVER_PROMOTION_LOCK_WAIT_S): retry when it is done"
            )
        time.sleep(poll_s)
    try:
        yield
    finally:
        try:
            reg.client.delete_registered_model(lock)
        except Exception as exc:  # the registry is gone: a retry re-enters, others break it when stale
            log.warning("could not release %s (%s): it stays until this version's retry or for %ss", lock, exc, stale_s)


def _acquire(reg: Registry, lock: str, holder: str, stale_s: float) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        reg.client.create_registered_model(
            lock, tags={HOLDER: holder}, description="held while a version of the model is being promoted"
        )
        return True
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    try:
        held = reg.client.get_registered_model(lock)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False  # released in between: try again
        raise
    if held.tags.get(HOLDER) == holder:
        log.info("%s: re-entering the lock an earlier attempt for %s left", lock, holder)
        return True
    age = time.time() - int(held.creation_timestamp) / 1000
    if age > stale_s:
        log.warning("%s: breaking the lock held by %s for %.0fs (> %ss)", lock, held.tags.get(HOLDER), age, stale_s)
        reg.client.delete_registered_model(lock)
    return False
