"""How a service hands rows to a face: shaped inside the session that read them.

The face passes ``shape`` (a response model's constructor, a table row): it runs
while the session is open, so the rows' relations load, and no face ever holds a
session or an ORM row past it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker

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
