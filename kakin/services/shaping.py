"""How a service hands rows to a face: shaped inside the session that read them.

The face passes ``shape`` (a response model's constructor, a table row): it runs
while the session is open, so the rows' relations load, and no face ever holds a
session or an ORM row past it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Generic, TypeVar

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

    def __init__(
        self, model: type[R], what: str, pages: Callable[..., tuple[list[R], bool]] | None = None
    ) -> None:
        """``what`` names the row in a ``NotFoundError`` (``"Price"``); ``pages`` reads a
        page with the list's filters (a repository's, such as ``invoice_sql.invoices``),
        by default the table's rows unfiltered."""
        self.model = model
        self.what = what
        self.pages = pages or partial(common.page, model=model)

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
        **filters: Any,
    ) -> tuple[list[T], bool]:
        """A page after ``starting_after`` (an id), filtered as ``pages`` takes them."""

        def read(session: Session) -> tuple[list[R], bool]:
            return self.pages(session, limit=limit, starting_after=starting_after, **filters)

        return shaped_page(sessions, read, shape)
