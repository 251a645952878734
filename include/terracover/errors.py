"""Errors a client can fix, and the HTTP status each one answers with: one table.

Like titiler's ``DEFAULT_STATUS_CODES``: the service looks an error up in :data:`STATUS_CODES` (most specific
class first) instead of testing ``isinstance`` case by case. A new client error is a subclass of
:class:`BadRequestError` (answered 400) plus, when it needs another status, one line in the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any


class BadRequestError(ValueError):
    """An input the client can fix; the message says how."""

    def body(self) -> dict[str, Any]:
        """The JSON answer: ``{"error": message}`` plus whatever a subclass adds."""
        return {"error": str(self)}


class AoiTooLargeError(BadRequestError):
    """An AOI over the configured area limit."""


class NoCoverageError(BadRequestError):
    """The AOI needs feature stacks that do not exist (yet) for that year."""

    def __init__(self, message: str, missing: Sequence[str]):
        super().__init__(message)
        self.missing = list(missing)

    def body(self) -> dict[str, Any]:
        return {**super().body(), "missing_subtiles": self.missing}


class UnknownYearError(BadRequestError):
    """A year with no champion model."""


STATUS_CODES: dict[type[Exception], HTTPStatus] = {
    BadRequestError: HTTPStatus.BAD_REQUEST,
    UnknownYearError: HTTPStatus.NOT_FOUND,
    AoiTooLargeError: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    NoCoverageError: HTTPStatus.UNPROCESSABLE_ENTITY,
}


def status_of(exc: BaseException) -> HTTPStatus | None:
    """The status of the most specific class of ``exc`` in :data:`STATUS_CODES`; None: not a client error."""
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return None
