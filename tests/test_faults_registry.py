"""The registry fails or races during a promotion, and no alias ever points at a version without its approval.

A real MLflow server behind the failing proxy (tests/fixtures/faults.py):

- MLflow stops in the middle of a promotion: every REST call from the k-th on fails (500 or connection reset),
  for each k of the promotion's calls. After each, ``champion`` and ``shadow`` point only at versions whose
  approval record is complete, and a retry completes the promotion;
- two promotions of one year at once (two ``train_model`` runs both compared with the same champion and both
  approved): the proxy holds the first one's approval write until the second is observably blocked (or, without
  a lock, done), so the interleaving is the worst one every time. Exactly one champion; the other version is
  recorded as superseded, with no approval record of its own.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd
import pytest
from terracover import registry
from terracover.registry.lock import lock_name
from terracover.settings import Settings, get_settings

from tests.fixtures.faults import FaultyProxy, faulty_proxy
from tests.fixtures.mlflow_server import running_mlflow
from tests.fixtures.procs import terracover_env, wait_until
from tests.test_registry import register
from tests.test_train import synthetic_table

pytestmark = pytest.mark.services

APPROVAL = ("approved_by", "approved_at", "approved_as")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FaultyProxy, Settings, Any]]:
    """(proxy, settings whose tracking URI is the proxy, an MLflow client talking to the server directly)."""
    import mlflow

    root = tmp_path_factory.mktemp("mlflow-faults")
    with running_mlflow(root) as url, faulty_proxy(url) as proxy:
        values = {
            "TERRACOVER_HOME": str(root / "home"),
            "TERRACOVER_MLFLOW_TRACKING_URI": proxy.url,
            "TERRACOVER_GIT_SHA": "fa" * 20,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",  # a stopped server fails the call at once
        }
        with terracover_env(values):
            yield proxy, get_settings(), mlflow.MlflowClient(tracking_uri=url, registry_uri=url)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return synthetic_table()


def approval(name: str) -> registry.Approval:
    return registry.Approval.from_hitl_response(
        {"chosen_options": ["Approve"], "responded_by_user": {"id": name, "name": name}, "responded_at": _AT[name]}
    )


_AT = {"alice": datetime(2024, 1, 16, 9, 30, tzinfo=UTC), "bob": datetime(2024, 2, 1, 8, 0, tzinfo=UTC)}


def expected_record(name: str, alias: str = registry.CHAMPION) -> dict[str, str]:
    return {"approved_by": name, "approved_at": _AT[name].isoformat(), "approved_as": alias}


def assert_every_alias_is_approved(client: Any, name: str) -> dict[str, str]:
    """The invariant: ``champion``/``shadow`` point only at versions with a complete approval record for it."""
    aliases = {str(k): str(v) for k, v in client.get_registered_model(name).aliases.items()}
    for alias in (registry.CHAMPION, registry.SHADOW):
        if alias in aliases:
            tags = client.get_model_version(name, aliases[alias]).tags
            record = {k: tags.get(k) for k in APPROVAL}
            assert all(record.values()) and record["approved_as"] == alias, (
                f"{alias} points at v{aliases[alias]} whose approval record is {record}"
            )
    return aliases


def _lock_exists(client: Any, name: str) -> bool:
    return bool(client.search_registered_models(filter_string=f"name = '{lock_name(name)}'"))


def _from_call(k: int) -> Any:
    calls = itertools.count()
    return lambda *request: next(calls) >= k


@pytest.mark.parametrize("mode", ["500", "reset"])
def test_mlflow_stopping_mid_promotion_never_leaves_an_alias_on_an_unapproved_version(
    env: tuple[FaultyProxy, Settings, Any], table: pd.DataFrame, mode: Literal["500", "reset"]
) -> None:
    proxy, s, client = env
    year = {"500": 2015, "reset": 2016}[mode]
    reg = registry.open_registry(s)
    old = register(table, year, s)
    new = register(table, year, s, seed=2)
    registry.approve(reg, old, approval("alice"))
    name = old.name

    def before_the_promotion() -> None:
        """``old`` champion; ``new`` compared with it, challenger, no approval; no lock (set directly)."""
        client.set_registered_model_alias(name, registry.CHAMPION, old.version)
        for key in [*APPROVAL, "superseded", "superseded_by", "superseded_at"]:
            if key in client.get_model_version(name, new.version).tags:
                client.delete_model_version_tag(name, new.version, key)
        if _lock_exists(client, name):
            client.delete_registered_model(lock_name(name))
        registry.record_comparison(reg, new, old)
        registry.set_challenger(reg, new)

    k = 0
    while True:
        before_the_promotion()
        proxy.failed.clear()
        proxy.arm(_from_call(k), mode)  # the server is gone from the k-th call on
        try:
            registry.approve(reg, new, approval("bob"))
        except Exception as exc:
            assert proxy.failed, f"the promotion failed without a fault: {exc}"
        finally:
            proxy.disarm()
        aliases = assert_every_alias_is_approved(client, name)
        assert aliases[registry.CHAMPION] in (old.version, new.version)
        if not proxy.failed:
            break  # k is past the promotion's last call
        assert registry.approve(reg, new, approval("bob")) == registry.CHAMPION, f"the retry after call {k} failed"
        aliases = assert_every_alias_is_approved(client, name)
        assert aliases == {registry.CHAMPION: new.version}, f"after the retry (fault at call {k}): {aliases}"
        assert {t: client.get_model_version(name, new.version).tags[t] for t in APPROVAL} == expected_record("bob")
        assert not _lock_exists(client, name), "the retry left the promotion lock behind"
        k += 1
    assert k >= 9, f"only {k} calls of the promotion were faulted"


def test_two_promotions_of_one_year_at_once_leave_one_champion_and_the_other_superseded(
    env: tuple[FaultyProxy, Settings, Any], table: pd.DataFrame
) -> None:
    proxy, s, client = env
    year = 2019
    first = register(table, year, s)
    second = register(table, year, s, seed=2)
    name = first.name
    reg = registry.open_registry(s)
    for ref in (first, second):  # both runs compared their version with the year's champion: none yet
        registry.record_comparison(reg, ref, None)
        registry.set_challenger(reg, ref)

    def first_approval_write(method: str, path: str, headers: dict[str, str], body: bytes) -> bool:
        if not path.endswith("/model-versions/set-tag"):
            return False
        sent = json.loads(body or b"{}")
        return bool(sent.get("version") == first.version and sent.get("key") == "approved_by")

    def second_is_blocked() -> bool:
        return any(
            e.path.endswith("/registered-models/create") and lock_name(name).encode() in e.body and e.status != 200
            for e in proxy.exchanges[start:]
        )

    outcome: dict[str, Any] = {}

    def promote(ref: registry.ModelRef, who: str) -> None:
        try:
            outcome[who] = registry.approve(registry.open_registry(s), ref, approval(who))
        except Exception as exc:
            outcome[who] = exc

    proxy.hold(first_approval_write)
    a = threading.Thread(target=promote, args=(first, "alice"))
    b = threading.Thread(target=promote, args=(second, "bob"))
    try:
        a.start()
        assert proxy.held.wait(120), "the first promotion never reached its approval write"
        start = len(proxy.exchanges)
        b.start()
        # The second promotion runs while the first is held after its check: it must wait for the lock (or, with
        # no lock, it runs to the end). Either state is observable; then the first goes on.
        wait_until(lambda: not b.is_alive() or second_is_blocked(), 120, "the second promotion to block or end")
    finally:
        proxy.release()
        a.join(120)
        b.join(120)
    assert not a.is_alive() and not b.is_alive(), "a promotion hung"
    assert outcome["alice"] == registry.CHAMPION, outcome
    assert isinstance(outcome["bob"], registry.SupersededError), f"the second promotion gave {outcome['bob']!r}"
    assert "compared with no champion" in str(outcome["bob"]) and f"v{first.version}" in str(outcome["bob"])

    aliases = assert_every_alias_is_approved(client, name)
    assert aliases == {registry.CHAMPION: first.version}, aliases
    champion = client.get_model_version(name, first.version).tags
    assert {t: champion[t] for t in APPROVAL} == expected_record("alice") and "superseded" not in champion
    other = client.get_model_version(name, second.version).tags
    assert other["superseded"] == "true" and other["superseded_by"] == first.version, other
    assert not [t for t in APPROVAL if t in other], f"the superseded version carries an approval record: {other}"
    assert not _lock_exists(client, name), "the promotion lock was left behind"
