"""How a service hands rows to a face: shaped inside the session that read them.

The face passes ``shape`` (a response model's constructor, a table row): it runs
while the session is open, so the rows' relations load, and no face ever holds a
session or an ORM row past it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from models.repositories import common

R = TypeVar("R")
T = TypeVar("T")


def shaped(
    sessions: sessionmaker[Session], read: Callable[[Session], R], shape: Callable[[R], T]
) -> T:
    """``shape(read(session))`` in a session of its own."""
    with sessions() as session:
        return shape(read(session))


def shaped_page(
    sessions: sessionmaker[Session],
    read: Callable[[Session], tuple[list[R], bool]],
    shape: Callable[[R], T],
) -> tuple[list[T], bool]:
    """A page read in a session of its own, each row shaped; and whether more follow."""
    with sessions() as session:
        rows, more = read(session)
        return [shape(row) for row in rows], more


class Reads(Generic[R]):
    """What the faces read of one table: a row by id, a page of rows newest first,
    each shaped inside its session. A feature service names them as its own:
    ``find_price, get_price, list_prices = _prices.find, _prices.get, _prices.page``.
    """

    def __init__(self, model: type[R], what: str, *, filters: tuple[str, ...] = ()) -> None:
        """``what`` names the row in a ``NotFoundError`` (``"Price"``); ``filters`` are
        the columns a page may be filtered on (each given must equal its value)."""
        self.model = model
        self.what = what
        self.filters = filters

    def find(self, session: Session, row_id: str) -> R:
        """The row, or a ``NotFoundError`` naming the id."""
        return common.get(session, self.model, row_id, self.what)

    def get(self, sessions: sessionmaker[Session], row_id: str, shape: Callable[[R], T]) -> T:
        return shaped(sessions, lambda session: self.find(session, row_id), shape)

    def page(
        self,
        sessions: sessionmaker[Session],
        shape: Callable[[R], T],
        *,
        limit: int,
        starting_after: str | None,
        **filters: str | None,
    ) -> tuple[list[T], bool]:
        """A page after ``starting_after`` (an id); a filter of None or "" filters nothing."""
        unknown = sorted(set(filters) - set(self.filters))
        if unknown:
            raise TypeError(f"a page of {self.what} rows takes no filter {', '.join(unknown)}")

        def read(session: Session) -> tuple[list[R], bool]:
            return common.page(
                session, self.model, limit=limit, starting_after=starting_after, equal=filters
            )

        return shaped_page(sessions, read, shape)
