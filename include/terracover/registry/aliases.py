"""Who may move a registry alias, and on what evidence.

Promotion rule: no version becomes ``champion`` or ``shadow`` without a recorded human approval. :func:`approve`
is the only code that sets those aliases and it takes an :class:`Approval`, which can only be made from a
human-in-the-loop response naming the person who approved; it writes ``approved_by``/``approved_at`` before it
moves the alias. tests/test_registry.py checks that no other code in the project sets a registry alias.

A promotion is a check-and-set under the model's promotion lock (:mod:`terracover.registry.lock`): a version
compared with champion X (tag ``compared_with_champion``, written by the comparison) is promoted only while X is
still champion. When another promotion moved the champion in between, the version is tagged ``superseded`` and
:class:`SupersededError` is raised: the human approved a comparison that no longer holds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from terracover.registry.client import CHALLENGER, CHAMPION, SHADOW, ModelRef, Registry
from terracover.registry.lock import promotion_lock

log = logging.getLogger(__name__)

APPROVE_OPTION, REJECT_OPTION = "Approve", "Reject"  # the ApprovalOperator's option texts

_FROM_HITL = object()

COMPARED_WITH = "compared_with_champion"  # version tag: the champion version a comparison was made against
NO_CHAMPION = "none"  # its value when the year had no champion


class SupersededError(RuntimeError):
    """The champion changed after this version was compared with it: not promoted (and tagged ``superseded``)."""


def responder(response: Mapping[str, Any]) -> str:
    """Who answered a human-in-the-loop request (``responded_by_user`` name, else id; "" when nobody did)."""
    user = response.get("responded_by_user") or {}
    return str(user.get("name") or user.get("id") or "")


@dataclass(frozen=True)
class Approval:
    """A human's recorded "Approve": the one key that lets :func:`approve` set ``champion`` or ``shadow``.

    Build it with :meth:`from_hitl_response`; direct construction raises, so no code path can promote a
    model without an answer from the approval task that names who gave it.
    """

    approved_by: str
    approved_at: datetime
    _origin: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._origin is not _FROM_HITL:
            raise TypeError("an Approval is made only by Approval.from_hitl_response(<ApprovalOperator result>)")

    @classmethod
    def from_hitl_response(cls, response: Mapping[str, Any]) -> Approval:
        """From an ApprovalOperator result (``chosen_options``, ``responded_by_user``, ``responded_at``)."""
        chosen = list(response.get("chosen_options") or [])
        if chosen != [APPROVE_OPTION]:
            raise ValueError(f"the human response chose {chosen}, not [{APPROVE_OPTION!r}]: nothing to approve")
        who = responder(response)
        if not who:
            raise ValueError("the response names no responder (timed-out default?): a promotion needs a person")
        at = response.get("responded_at")
        when = datetime.fromisoformat(at) if isinstance(at, str) else at
        if not isinstance(when, datetime):
            raise ValueError("the response has no responded_at timestamp")
        return cls(approved_by=who, approved_at=when, _origin=_FROM_HITL)


def set_challenger(reg: Registry, ref: ModelRef) -> None:
    """Mark ``ref`` as waiting for approval (the alias a reviewer can load and inspect)."""
    _set_alias(reg, ref, CHALLENGER)


def record_comparison(reg: Registry, ref: ModelRef, champion: ModelRef | None) -> None:
    """Record which champion ``ref`` was compared with: :func:`approve` promotes it only while that one still is."""
    reg.set_tags(ref, {COMPARED_WITH: champion.version if champion else NO_CHAMPION})


def approve(reg: Registry, ref: ModelRef, approval: Approval, shadow: bool = False) -> str:
    """Promote ``ref`` to ``champion`` (or ``shadow``) on a human's :class:`Approval`; returns the alias set.

    Under the model's promotion lock: the champion must still be the one ``ref`` was compared with (else
    :class:`SupersededError`); the approval record (tags) is written before the alias moves, so a served version
    always has one, whichever registry call fails. A retry after a failure completes the same promotion.
    """
    if not isinstance(approval, Approval):
        raise TypeError("approve() needs an Approval made by Approval.from_hitl_response(...)")
    alias = SHADOW if shadow else CHAMPION
    s = reg.settings
    with promotion_lock(reg, ref.name, ref.version, s.promotion_lock_wait_s, s.promotion_lock_stale_s):
        _check_still_compared_with_champion(reg, ref)
        record = {"approved_by": approval.approved_by, "approved_at": approval.approved_at.isoformat()}
        reg.set_tags(ref, {**record, "approved_as": alias})
        _set_alias(reg, ref, alias)
        _clear_challenger(reg, ref)
    log.info("%s is now %s of %s (approved by %s)", ref.uri, alias, ref.year, approval.approved_by)
    return alias


def _check_still_compared_with_champion(reg: Registry, ref: ModelRef) -> None:
    """Raise :class:`SupersededError` (after tagging ``ref``) when the champion moved since the comparison.

    A version never compared (an approval made directly through this library) has nothing to check."""
    basis = reg.version_tags(ref).get(COMPARED_WITH)
    current = reg.aliases(ref.name).get(CHAMPION, NO_CHAMPION)
    if basis is None or current in (basis, ref.version):
        return
    reg.set_tags(ref, {"superseded": "true", "superseded_by": current, "superseded_at": datetime.now(UTC).isoformat()})
    _clear_challenger(reg, ref)
    was = "no champion" if basis == NO_CHAMPION else f"champion v{basis}"
    raise SupersededError(
        f"{ref.uri} was compared with {was}, but v{current} became champion since (another promotion): not"
        f" promoted, tagged superseded. Run train_model (or compare_with_champion) again to compare it with v{current}"
    )


def reject(reg: Registry, ref: ModelRef, rejected_by: str, reason: str = "") -> None:
    """Record a rejection on the version; the champion alias is not touched."""
    reg.set_tags(
        ref,
        {
            "rejected": "true",
            "rejected_by": rejected_by or "unknown",
            "rejected_at": datetime.now(UTC).isoformat(),
            "rejection_reason": reason or "-",
        },
    )
    _clear_challenger(reg, ref)
    log.info("%s rejected by %s: %s", ref.uri, rejected_by, reason)


def _clear_challenger(reg: Registry, ref: ModelRef) -> None:
    if reg.aliases(ref.name).get(CHALLENGER) == ref.version:
        reg.client.delete_registered_model_alias(ref.name, CHALLENGER)


def _set_alias(reg: Registry, ref: ModelRef, alias: str) -> None:
    # The only call that moves an alias in the whole project (tests/test_registry.py enforces it).
    reg.client.set_registered_model_alias(ref.name, alias, ref.version)
