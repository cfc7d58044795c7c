"""Customers, by id."""

from __future__ import annotations

from sqlalchemy.orm import Session

from models.repositories.common import get
from models.tables import Customer


def customer(session: Session, customer_id: str) -> Customer:
    return get(session, Customer, customer_id)
