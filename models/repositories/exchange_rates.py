"""Exchange rates the operator entered: set one (per pair and effective date), list them."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.tables import ExchangeRateRow


def find(
    session: Session, *, currency: str, reporting_currency: str, effective_from: date
) -> ExchangeRateRow | None:
    return session.scalars(
        select(ExchangeRateRow).where(
            ExchangeRateRow.currency == currency,
            ExchangeRateRow.reporting_currency == reporting_currency,
            ExchangeRateRow.effective_from == effective_from,
        )
    ).first()


def put(
    session: Session,
    *,
    currency: str,
    reporting_currency: str,
    effective_from: date,
    rate: str,
    entered_by: str,
    entered_at: datetime,
) -> ExchangeRateRow:
    """The pair's rate from ``effective_from``, added or replaced (unflushed when added;
    two writers racing on a new date meet at the unique constraint when they commit)."""
    row = find(session, currency=currency, reporting_currency=reporting_currency,
               effective_from=effective_from)  # fmt: skip
    if row is None:
        row = ExchangeRateRow(currency=currency, reporting_currency=reporting_currency,
                              effective_from=effective_from)  # fmt: skip
        session.add(row)
    row.rate, row.entered_by, row.entered_at = rate, entered_by, entered_at
    return row


def listed(
    session: Session, *, currency: str | None = None, reporting_currency: str | None = None
) -> list[ExchangeRateRow]:
    """Rates by pair, then by effective date (the table is small: one row per pair and
    date an operator typed in, so it is read whole)."""
    query = select(ExchangeRateRow)
    if currency:
        query = query.where(ExchangeRateRow.currency == currency)
    if reporting_currency:
        query = query.where(ExchangeRateRow.reporting_currency == reporting_currency)
    order = (ExchangeRateRow.reporting_currency, ExchangeRateRow.currency,
             ExchangeRateRow.effective_from)  # fmt: skip
    return list(session.scalars(query.order_by(*order)))
