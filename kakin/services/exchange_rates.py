"""Exchange rates for the analytics' optional reporting currency: set one, list them,
and find the one a bucket converts with.

A rate says 1 ``currency`` = ``rate`` ``reporting_currency`` (1 USD = 150.12 JPY), in
major units, from ``effective_from`` (a date on the seller's reporting calendar) until
the next rate of the pair. Rates are only ever entered by an operator (``kakin rates
set``, ``PUT /v1/exchange-rates``), never fetched, and kept as the exact decimal typed.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from billing.money import normalize_currency
from billing.rounding import parse_decimal
from kakin.services.errors import InvalidRequestError
from models.repositories import exchange_rates as rates_sql
from models.tables import ExchangeRateRow

# Digits after the point a rate may have: finer than any published rate (6 to 8), and
# a bound, so a typo cannot make every conversion carry a 40-digit fraction.
MAX_RATE_PLACES = 12


class ExchangeRateError(InvalidRequestError):
    """A rate that cannot be entered (HTTP 422); the message starts with the field."""


@dataclass(frozen=True)
class ExchangeRate:
    """1 ``currency`` = ``rate`` ``reporting_currency`` from ``effective_from``."""

    currency: str
    reporting_currency: str
    rate: Decimal
    effective_from: date
    entered_by: str
    entered_at: datetime

    @classmethod
    def of(cls, row: ExchangeRateRow) -> ExchangeRate:
        return cls(currency=row.currency, reporting_currency=row.reporting_currency,
                   rate=Decimal(row.rate), effective_from=row.effective_from,
                   entered_by=row.entered_by, entered_at=row.entered_at)  # fmt: skip


def currency_code(value: str, field: str) -> str:
    try:
        return normalize_currency(value)
    except ValueError as error:
        raise ExchangeRateError(f"{field} is invalid: {error}") from None


def _rate(value: str | Decimal) -> Decimal:
    try:
        rate = parse_decimal(value, what="rate")
    except (TypeError, ValueError) as error:
        raise ExchangeRateError(f"{error} (write it like 150.12)") from None
    if rate <= 0:
        raise ExchangeRateError(f"rate must be above 0, not {value}")
    if -int(rate.as_tuple().exponent) > MAX_RATE_PLACES:
        raise ExchangeRateError(f"rate may have at most {MAX_RATE_PLACES} digits after the point")
    return rate


def _day(value: date | str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ExchangeRateError(
            f"effective_from must be a date such as 2027-01-01, not {value!r}"
        ) from None


def set_rate(
    sessions: sessionmaker[Session],
    *,
    currency: str,
    reporting_currency: str,
    rate: str | Decimal,
    effective_from: date | str,
    entered_by: str,
    now: datetime | None = None,
) -> ExchangeRate:
    """Enter (or replace) the pair's rate from ``effective_from``; ``ExchangeRateError``
    names the field that is wrong."""
    source = currency_code(currency, "currency")
    target = currency_code(reporting_currency, "reporting_currency")
    if source == target:
        raise ExchangeRateError(f"reporting_currency must differ from currency ({source})")
    checked = _rate(rate)
    day = _day(effective_from)
    entered_at = (now or datetime.now(UTC)).astimezone(UTC)
    for attempt in (1, 2):
        with sessions() as session:
            row = rates_sql.put(session, currency=source, reporting_currency=target,
                                effective_from=day, rate=format(checked, "f"),
                                entered_by=entered_by[:200], entered_at=entered_at)  # fmt: skip
            try:
                session.commit()
            except IntegrityError:
                # Another writer added the same pair and date first: replace theirs.
                if attempt == 2:
                    raise
                continue
            return ExchangeRate.of(row)
    raise AssertionError("unreachable")  # pragma: no cover


def list_rates(
    sessions: sessionmaker[Session],
    *,
    currency: str | None = None,
    reporting_currency: str | None = None,
) -> list[ExchangeRate]:
    """The rates entered, by reporting currency, currency and effective date."""
    source = currency_code(currency, "currency") if currency else None
    target = currency_code(reporting_currency, "reporting_currency") if reporting_currency else None
    with sessions() as session:
        rows = rates_sql.listed(session, currency=source, reporting_currency=target)
        return [ExchangeRate.of(row) for row in rows]


@dataclass(frozen=True)
class RateBook:
    """Every rate into one reporting currency, by currency, oldest first."""

    reporting_currency: str
    by_currency: Mapping[str, tuple[ExchangeRate, ...]]

    def rate_on(self, currency: str, day: date) -> ExchangeRate | None:
        """The rate effective on ``day``: the latest effective on or before it."""
        rates = self.by_currency.get(currency, ())
        index = bisect.bisect_right([r.effective_from for r in rates], day)
        return rates[index - 1] if index else None


def rate_book(sessions: sessionmaker[Session], reporting_currency: str) -> RateBook:
    found = list_rates(sessions, reporting_currency=reporting_currency)
    grouped: dict[str, list[ExchangeRate]] = defaultdict(list)
    for rate in found:  # listed by effective date within a pair
        grouped[rate.currency].append(rate)
    return RateBook(
        reporting_currency=normalize_currency(reporting_currency),
        by_currency={code: tuple(rates) for code, rates in grouped.items()},
    )
