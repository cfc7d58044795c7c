"""Rows a request names by id: found, or a 404 whose message names the id."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session

from api.errors import ApiError
from models import repositories as repo
from models.tables import Customer, Invoice, Price, Subscription

R = TypeVar("R")


def load_customer(session: Session, customer_id: str) -> Customer:
    row = session.get(Customer, customer_id)
    if row is None:
        raise ApiError(404, f"Customer {customer_id!r} does not exist")
    return row


def load_price(session: Session, price_id: str) -> Price:
    row = session.get(Price, price_id)
    if row is None:
        raise ApiError(404, f"Price {price_id!r} does not exist")
    return row


def load_subscription(session: Session, subscription_id: str) -> Subscription:
    row = session.get(Subscription, subscription_id)
    if row is None:
        raise ApiError(404, f"Subscription {subscription_id!r} does not exist")
    return row


def load_invoice(session: Session, invoice_id: str) -> Invoice:
    row = session.get(Invoice, invoice_id)
    if row is None:
        raise ApiError(404, f"Invoice {invoice_id!r} does not exist")
    return row


def paged(fetch: Callable[[], tuple[list[R], bool]]) -> tuple[list[R], bool]:
    """A page from ``fetch``; a ``starting_after`` that names no row is a 422."""
    try:
        return fetch()
    except repo.InvalidCursorError as error:
        raise ApiError(422, str(error)) from None
