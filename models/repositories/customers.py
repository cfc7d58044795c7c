"""Customers, by id, and found by what staff type into a search box."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from models.repositories.common import get, page
from models.tables import Customer


def customer(session: Session, customer_id: str) -> Customer:
    return get(session, Customer, customer_id)


def matching_text(text: str) -> ColumnElement[bool] | None:
    """Customers whose name or email holds ``text`` (any case), or whose id starts with
    it; None (everyone) for blank text. ``%`` and ``_`` are matched as themselves."""
    text = text.strip()
    if not text:
        return None
    return or_(
        Customer.name.icontains(text, autoescape=True),
        Customer.email.icontains(text, autoescape=True),
        Customer.id.startswith(text.lower(), autoescape=True),
    )


def search(
    session: Session, text: str, *, limit: int, starting_after: str | None = None
) -> tuple[list[Customer], bool]:
    """A page of the customers ``matching_text``, newest first, and whether more follow."""
    return page(
        session, Customer, limit=limit, starting_after=starting_after, where=matching_text(text)
    )


def count(session: Session) -> int:
    """How many customers there are."""
    return int(session.scalar(select(func.count()).select_from(Customer)) or 0)
