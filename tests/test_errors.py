"""Client errors answer with the status of their most specific class in one table (terracover.errors)."""

from __future__ import annotations

from http import HTTPStatus

from terracover.change import SameYearError
from terracover.errors import (
    STATUS_CODES,
    AoiTooLargeError,
    BadRequestError,
    NoCoverageError,
    UnknownYearError,
    status_of,
)
from terracover.tiles import TileRequestError


def test_each_client_error_has_its_status() -> None:
    assert status_of(BadRequestError("x")) == HTTPStatus.BAD_REQUEST
    assert status_of(UnknownYearError("x")) == HTTPStatus.NOT_FOUND
    assert status_of(AoiTooLargeError("x")) == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert status_of(NoCoverageError("x", ["30SYJ/r000c000"])) == HTTPStatus.UNPROCESSABLE_ENTITY


def test_a_new_client_error_is_a_400_until_the_table_says_otherwise() -> None:
    class SomethingElseError(BadRequestError):
        pass

    assert status_of(SomethingElseError("x")) == HTTPStatus.BAD_REQUEST
    assert status_of(SameYearError("x")) == status_of(TileRequestError("x")) == HTTPStatus.BAD_REQUEST
    assert status_of(ValueError("a bug, not the client's")) is None
    assert all(issubclass(cls, BadRequestError) for cls in STATUS_CODES)


def test_error_bodies_say_what_to_fix() -> None:
    assert BadRequestError("give a Polygon").body() == {"error": "give a Polygon"}
    body = NoCoverageError("no stacks", ["30SYJ/r000c000"]).body()
    assert body == {"error": "no stacks", "missing_subtiles": ["30SYJ/r000c000"]}
