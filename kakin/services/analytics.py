"""Revenue analytics: every figure of docs/metrics.md, read from the billing ledger.

One function per report (``mrr``, ``revenue``, ``customers``, ``receivables``,
``dunning``, ``forecast``; the forecast's gathering is in ``analytics_forecast``). Each
takes the session factory, the range ``[from_, to)``, the ``interval`` (day, week or
month), the ``currency`` (``None``: every currency the ledger holds, one block each,
never added together) and the seller's reporting ``time_zone``
(``KAKIN_REPORTING_TIME_ZONE``).

The figures are computed from the ledger rows as they are when asked (the figures of
closed buckets are kept between requests, but checked against the ledger before each
use: ``kakin.services.analytics_cache``), so a change shows in the next request:
``as_of`` is the moment they were read and the lag is 0 seconds. A past bucket stays
the same when asked later because the ledger's booking rule
(``billing.analytics.booking``) puts every late entry in the period open when it was
written.

A request the figures cannot answer raises ``ReportFieldError`` (an
``InvalidRequestError``, HTTP 422) naming the field: ``from``, ``to``, ``interval`` or
``currency``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from billing.analytics.buckets import Bucket, Granularity, RangeError, bucket_range
from billing.analytics.customers import customer_figures
from billing.analytics.movements import MrrBucket
from billing.analytics.trends import TrendPoint, trend
from billing.calendar import zone
from billing.money import normalize_currency
from kakin.services import analytics_reads as fast
from kakin.services.analytics_cache import Closed
from kakin.services.errors import InvalidRequestError
from models.repositories import analytics as analytics_sql
from models.repositories.analytics import Scope

REPORTS = ("mrr", "revenue", "customers", "receivables", "dunning", "forecast")
INTERVALS = tuple(str(g) for g in Granularity)
# Without from/to, a report shows this many buckets, the current one last.
DEFAULT_BUCKETS = {Granularity.DAY: 30, Granularity.WEEK: 12, Granularity.MONTH: 12}
# The figures are read from the ledger at request time: no summary table lags behind.
LAG_SECONDS = 0
# The moving average of the trends spans this many buckets, the current one included.
MOVING_AVERAGE_WINDOW = 3

Moment = date | datetime | str | None


class ReportFieldError(InvalidRequestError):
    """A report request the figures cannot answer; ``field`` names the parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ReportRange:
    """What a report covers: its buckets on the reporting calendar and its currencies.

    Attributes:
        as_of: When the ledger was read (UTC); the figures include every entry
            booked before it.
    """

    buckets: tuple[Bucket, ...]
    interval: Granularity
    time_zone: str
    currencies: tuple[str, ...]
    as_of: datetime

    @property
    def start(self) -> datetime:
        return self.buckets[0].start

    @property
    def end(self) -> datetime:
        return self.buckets[-1].end


@dataclass(frozen=True)
class CurrencyBlock:
    """One currency's rows of a report (figures of two currencies are never added).

    Attributes:
        rows: One per bucket (``billing.analytics`` figures, or the service's rows).
        trends: Per figure name, its growth, year-over-year and moving average,
            one point per bucket.
    """

    currency: str
    rows: tuple[Any, ...]
    trends: dict[str, tuple[TrendPoint, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    name: str
    range: ReportRange
    blocks: tuple[CurrencyBlock, ...]


@dataclass(frozen=True)
class MrrRow:
    """A bucket's MRR movements, with the usage revenue reported beside MRR."""

    movements: MrrBucket
    usage_revenue: int


# -- the request: interval, currency, range ----------------------------------------------


def parse_moment(value: Moment, name: str) -> date | datetime | None:
    """A ``from``/``to`` value: a calendar date (its local midnight on the reporting
    calendar) or an ISO 8601 moment with a UTC offset."""
    if value is None or isinstance(value, date):  # a datetime is a date too
        return value
    text = value.strip()
    try:
        return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    except ValueError:
        raise ReportFieldError(
            name,
            f"{name} must be a date (2027-01-01) or a moment with a UTC offset "
            f"(2027-01-01T00:00:00+09:00), not {text[:40]!r}",
        ) from None


def granularity(interval: str) -> Granularity:
    try:
        return Granularity(interval)
    except ValueError:
        raise ReportFieldError(
            "interval", f"interval must be day, week or month, not {str(interval)[:20]!r}"
        ) from None


def _default_from(interval: Granularity, now: datetime, time_zone: str) -> date:
    """The first day of the ``DEFAULT_BUCKETS`` buckets ending with the current one."""
    today = now.astimezone(zone(time_zone)).date()
    back = DEFAULT_BUCKETS[interval] - 1
    if interval is Granularity.DAY:
        return today - timedelta(days=back)
    if interval is Granularity.WEEK:
        return today - timedelta(days=today.weekday() + 7 * back)
    months = today.year * 12 + today.month - 1 - back
    return date(months // 12, months % 12 + 1, 1)


def _buckets(
    from_: Moment, to: Moment, interval: Granularity, time_zone: str, now: datetime
) -> tuple[Bucket, ...]:
    start = parse_moment(from_, "from")
    end = parse_moment(to, "to")
    if start is None:
        start = _default_from(interval, now, time_zone)
    try:
        return bucket_range(from_=start, to=now if end is None else end,
                            interval=interval, time_zone=time_zone)  # fmt: skip
    except RangeError as error:
        message = str(error)
        if not message.startswith(f"{error.field} "):  # the field first, as every 422 says
            message = f"{error.field} is invalid: {message}"
        raise ReportFieldError(error.field, message) from None


def _currencies(session: Session, currency: str | None) -> tuple[str, ...]:
    held = analytics_sql.currencies(session)
    if currency is None or not currency.strip():
        return tuple(held)
    try:
        code = normalize_currency(currency)
    except ValueError as error:
        raise ReportFieldError("currency", f"currency is invalid: {error}") from None
    if code not in held:
        holds = ", ".join(held) if held else "no currency yet"
        raise ReportFieldError(
            "currency", f"currency {code} has no entries in the ledger, which holds {holds}"
        )
    return (code,)


def report_range(
    session: Session,
    *,
    from_: Moment = None,
    to: Moment = None,
    interval: str = "month",
    currency: str | None = None,
    time_zone: str,
    now: datetime | None = None,
) -> ReportRange:
    """The checked range of a report (``ReportFieldError`` naming the field).

    Without ``from_``, the range starts ``DEFAULT_BUCKETS`` buckets back; without
    ``to``, it ends now (the current bucket is the last, whole).
    """
    as_of = (now or datetime.now(UTC)).astimezone(UTC)
    granule = granularity(interval)
    buckets = _buckets(from_, to, granule, time_zone, as_of)
    return ReportRange(
        buckets=buckets,
        interval=granule,
        time_zone=time_zone,
        currencies=_currencies(session, currency),
        as_of=as_of,
    )


def _year_before(checked: ReportRange) -> tuple[Bucket, ...]:
    """The buckets of the year before the range, so the first buckets have a twin a
    year earlier for the year-over-year trend (a week more: ISO years of 53 weeks)."""
    first = checked.start
    local = first.astimezone(zone(checked.time_zone)).date()
    earlier = date(local.year - 1, local.month, min(local.day, 28)) - timedelta(days=7)
    return bucket_range(from_=earlier, to=first, interval=checked.interval,
                        time_zone=checked.time_zone)  # fmt: skip


# -- reading the ledger ----------------------------------------------------------------


@dataclass(frozen=True)
class ReportQuery:
    """What a report is asked for (the API's query parameters, the CLI's options).

    Attributes:
        time_zone: The seller's reporting calendar (``KAKIN_REPORTING_TIME_ZONE``).
        from_, to: The range ``[from_, to)``: dates or moments (see ``parse_moment``).
        interval: ``day``, ``week`` or ``month``.
        currency: One currency, or ``None``: every currency the ledger holds.
        now: The moment the figures are read at (``None``: the clock; tests pin it).
    """

    time_zone: str
    from_: Moment = None
    to: Moment = None
    interval: str = "month"
    currency: str | None = None
    now: datetime | None = None


def checked_range(session: Session, query: ReportQuery) -> ReportRange:
    return report_range(
        session, from_=query.from_, to=query.to, interval=query.interval,
        currency=query.currency, time_zone=query.time_zone, now=query.now,
    )  # fmt: skip


def scopes(session: Session, checked: ReportRange, until: datetime) -> list[Scope]:
    """What each currency's figures read: its entries booked before ``until``, so a
    report of a past range reads no later rows (``models.repositories.analytics``)."""
    return [analytics_sql.scope(session, code, until) for code in checked.currencies]


def _trends(
    buckets: Sequence[Bucket],
    values: Mapping[str, Sequence[int]],
    interval: Granularity,
    shown: int,
) -> dict[str, tuple[TrendPoint, ...]]:
    """Each figure's trend over ``buckets`` (the year before included), the last ``shown``."""
    found = {}
    for name, series in values.items():
        points = trend(list(zip(buckets, series, strict=True)), interval=interval,
                       window=MOVING_AVERAGE_WINDOW)  # fmt: skip
        found[name] = points[-shown:]
    return found


# -- the reports -----------------------------------------------------------------------

# A report's figures for one currency: (the session, the range, the year before it, the
# currency's scope) -> its block. The year before is read so trends have their twins.
# The cache keeps the figures of closed buckets between requests, checked against the
# ledger on each use (kakin.services.analytics_cache): the same figures, read faster.
Figures = Callable[[Session, ReportRange, tuple[Bucket, ...], Scope, Closed], CurrencyBlock]


def _report(name: str, sessions: sessionmaker[Session], query: ReportQuery,
            figures: Figures) -> Report:  # fmt: skip
    with sessions() as session:
        analytics_sql.without_jit(session)
        checked = checked_range(session, query)
        cache = Closed(session, checked.as_of)  # the ledger's mark, before any figure
        prefix = _year_before(checked)
        blocks = tuple(
            figures(session, checked, prefix, scope, cache)
            for scope in scopes(session, checked, checked.end)
        )
    return Report(name=name, range=checked, blocks=blocks)


def _mrr_block(
    session: Session,
    checked: ReportRange,
    prefix: tuple[Bucket, ...],
    scope: Scope,
    cache: Closed,
) -> CurrencyBlock:
    every, shown = (*prefix, *checked.buckets), len(checked.buckets)
    movements = fast.movements(session, scope, every, cache)
    usage = fast.usage_revenue(session, scope, checked.buckets, cache)
    rows = tuple(
        MrrRow(movements=row, usage_revenue=amount)
        for row, amount in zip(movements[-shown:], usage, strict=True)
    )
    trends = _trends(every, {"mrr": [m.end for m in movements]}, checked.interval, shown)
    return CurrencyBlock(currency=scope.currency, rows=rows, trends=trends)


def _customers_block(
    session: Session,
    checked: ReportRange,
    prefix: tuple[Bucket, ...],
    scope: Scope,
    cache: Closed,
) -> CurrencyBlock:
    every, shown = (*prefix, *checked.buckets), len(checked.buckets)
    movements = fast.movements(session, scope, every, cache)
    figures = customer_figures(movements, interval=checked.interval)
    series = {
        "customers": [f.customers for f in figures],
        "subscriptions": [f.subscriptions for f in figures],
    }
    trends = _trends(every, series, checked.interval, shown)
    return CurrencyBlock(currency=scope.currency, rows=figures[-shown:], trends=trends)


def _revenue_block(
    session: Session,
    checked: ReportRange,
    prefix: tuple[Bucket, ...],
    scope: Scope,
    cache: Closed,
) -> CurrencyBlock:
    every, shown = (*prefix, *checked.buckets), len(checked.buckets)
    rows = fast.revenue(session, scope, every, cache=cache)
    series = {"invoiced": [r.invoiced for r in rows], "collected": [r.collected for r in rows]}
    trends = _trends(every, series, checked.interval, shown)
    return CurrencyBlock(currency=scope.currency, rows=rows[-shown:], trends=trends)


def _receivables_block(
    session: Session,
    checked: ReportRange,
    _: tuple[Bucket, ...],
    scope: Scope,
    cache: Closed,
) -> CurrencyBlock:
    # One row per bucket, zeros included, as of its end (or now, for one still open).
    moments = [min(bucket.end, checked.as_of) for bucket in checked.buckets]
    return CurrencyBlock(
        currency=scope.currency, rows=fast.receivables(session, scope, moments, cache)
    )


def _dunning_block(
    session: Session,
    checked: ReportRange,
    _: tuple[Bucket, ...],
    scope: Scope,
    cache: Closed,
) -> CurrencyBlock:
    return CurrencyBlock(
        currency=scope.currency, rows=fast.dunning(session, scope, checked.buckets, cache)
    )


def mrr(sessions: sessionmaker[Session], query: ReportQuery) -> Report:
    """MRR and ARR per bucket with its movements (``MrrRow``), the usage revenue beside
    it, and the trend of MRR."""
    return _report("mrr", sessions, query, _mrr_block)


def customers(sessions: sessionmaker[Session], query: ReportQuery) -> Report:
    """Active subscriptions and customers, ARPA, churn rates, quick ratio and LTV
    (``CustomerFigures``), and the trends of the counts."""
    return _report("customers", sessions, query, _customers_block)


def revenue(sessions: sessionmaker[Session], query: ReportQuery) -> Report:
    """Invoiced (and its usage part), collected, refunded, credited, voided, written
    off and failed payments per bucket (``RevenueBucket``), and the trends of invoiced
    and collected."""
    return _report("revenue", sessions, query, _revenue_block)


def receivables(sessions: sessionmaker[Session], query: ReportQuery) -> Report:
    """The open balance by days past due (``Aging``) at each bucket's end, or at
    ``as_of`` for a bucket still open."""
    return _report("receivables", sessions, query, _receivables_block)


def dunning(sessions: sessionmaker[Session], query: ReportQuery) -> Report:
    """First-attempt failures, recoveries (by ladder step and decline code), losses
    and time to recover per bucket (``DunningBucket``), each episode in the bucket
    where it ended."""
    return _report("dunning", sessions, query, _dunning_block)


def held_currencies(sessions: sessionmaker[Session]) -> list[str]:
    """Every currency the ledger holds, those a report's ``currency`` may name (a face's
    currency selector offers these), the one most customers pay in first: a face's
    default."""
    with sessions() as session:
        customers = analytics_sql.customers_per_currency(session)
        return sorted(analytics_sql.currencies(session), key=lambda c: (-customers.get(c, 0), c))
