"""What every repository shares: new ids, a row by id, a page of a list, the errors."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, or_, select, text
from sqlalchemy.orm import Session

T = TypeVar("T")


class NotFoundError(LookupError):
    """A row that must exist does not; the message names what was looked for."""


class InvalidCursorError(ValueError):
    """``starting_after`` names no row of the list being paged."""


def new_id(prefix: str) -> str:
    """Opaque ids like ``sub_3f9c2a...``: unguessable and safe in URLs and logs."""
    return f"{prefix}_{secrets.token_hex(10)}"


def find(session: Session, model: type[T], key: Any) -> T | None:
    """The row of ``model`` with this primary key, or None."""
    return session.get(model, key)


def get(session: Session, model: type[T], key: Any, what: str | None = None) -> T:
    """The row of ``model`` with this primary key; ``NotFoundError`` names it as ``what``
    (by default the model's name in lower case: ``invoice 'in_1' does not exist``)."""
    row = session.get(model, key)
    if row is None:
        raise NotFoundError(f"{what or model.__name__.lower()} {key!r} does not exist")
    return row


def delete(session: Session, row: object) -> None:
    """Delete the row (at the next flush)."""
    session.delete(row)


def matching(model: Any, **equal: Any) -> ColumnElement[bool] | None:
    """A list filter: each column named equals its value; a value of None (or "")
    filters nothing. None when nothing filters."""
    present = [getattr(model, name) == value for name, value in equal.items() if value]
    return and_(*present) if present else None


def page(
    session: Session,
    model: type[T],
    *,
    limit: int,
    starting_after: Any = None,
    where: ColumnElement[bool] | None = None,
    equal: Mapping[str, Any] | None = None,
) -> tuple[list[T], bool]:
    """One page of ``model`` rows, newest first, and whether more follow.

    ``starting_after`` is the id of the last row of the previous page; the order is
    ``(created_at, id)`` descending, so pages never skip or repeat a row. The rows are
    those ``where`` holds for and whose columns named in ``equal`` equal their values
    (``matching``: a value of None or "" filters nothing).
    """
    columns: Any = model
    query = select(model).order_by(columns.created_at.desc(), columns.id.desc())
    for condition in (where, matching(model, **(equal or {}))):
        if condition is not None:
            query = query.where(condition)
    if starting_after is not None:
        cursor = session.get(model, starting_after)
        if cursor is None:
            raise InvalidCursorError(f"starting_after {starting_after!r} is not an id in this list")
        cursor_at = columns.created_at
        query = query.where(
            or_(
                cursor_at < cursor.created_at,  # type: ignore[attr-defined]
                and_(cursor_at == cursor.created_at, columns.id < cursor.id),  # type: ignore[attr-defined]
            )
        )
    rows = list(session.scalars(query.limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def ping(session: Session) -> None:
    """``SELECT 1``: raises when the database cannot be reached."""
    session.execute(text("SELECT 1"))
