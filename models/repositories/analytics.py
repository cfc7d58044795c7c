"""The ledger reads the figures need, narrow and in bulk (``models.repositories.ledger``
appends and reads whole entries one ORM row at a time: too slow for a report over
millions of rows).

A report of one currency reads a **scope**: the entries booked before ``until``
(``occurred_at < until`` and ``recorded_at < until``), or every entry of the currency
when a correction in there corrects an entry outside it (booking needs the corrected
entry). The scope's corrections and the entries they correct (their chains, down to
the root) are read whole, once, as ``special``: the figures apply them in Python
(``billing.analytics.booking``), and every SQL sum leaves the roots out, so each
entry counts exactly once.

The rest of the scope is read as **plain rows** (``MrrRow``, ``DunningRow``,
``InvoiceRow``: tuples of only the columns a figure reads, in booking order, through
the driver's cursor on PostgreSQL, ``plain_rows``), for the service's sweeps
(``kakin.services.analytics_sweeps``). The forecast reads subscriptions likewise.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    SQLColumnExpression,
    String,
    and_,
    any_,
    bindparam,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, aliased, selectinload

from billing.analytics.ledger import MRR_KINDS, EntryKind, LedgerEntry
from models.tables import (
    CreditTransaction,
    Customer,
    LedgerRow,
    Price,
    Subscription,
    SubscriptionDiscount,
    SubscriptionItem,
    UTCDateTime,
)

_COLUMNS = (
    "id",
    "kind",
    "occurred_at",
    "recorded_at",
    "customer_id",
    "subscription_id",
    "invoice_id",
    "currency",
    "amount",
    "mrr_before",
    "mrr_after",
    "status_before",
    "status_after",
    "actor",
    "attempt",
    "decline_code",
    "dunning_step",
    "due_at",
    "details",
    "corrects",
)
_SELECTED = [getattr(LedgerRow, name) for name in _COLUMNS]
_KINDS = {str(kind): kind for kind in EntryKind}
_NO_DETAILS: MappingProxyType[str, str] = MappingProxyType({})
# booked_at = max(occurred_at, recorded_at), as billing.analytics.booking books
# (CASE rather than GREATEST: SQLite has no GREATEST).
BOOKED_AT = case(
    (LedgerRow.occurred_at >= LedgerRow.recorded_at, LedgerRow.occurred_at),
    else_=LedgerRow.recorded_at,
)


# The plain rows the figures' sweeps read (``kakin.services.analytics_sweeps``), each
# starting with booking's order (booked_at, position) and ending with the id of the
# correction in force (0: none; the SQL reads leave corrected entries out).
# (booked_at, position, subscription_id, customer_id, mrr_after, status_after, correction)
MrrRow = tuple[datetime, int, str, str, int, str, int]
# (booked_at, position, kind, invoice_id, occurred_at, amount, attempt, decline_code,
#  dunning_step, correction)
DunningRow = tuple[datetime, int, str, str, datetime, int, int, str, str, int]
# (booked_at, position, kind, invoice_id, customer_id, occurred_at, amount, due_at,
#  correction)
InvoiceRow = tuple[datetime, int, str, str, str, datetime, int, datetime | None, int]


@dataclass(frozen=True)
class Scope:
    """What one currency's report reads.

    Attributes:
        until: Entries booked before it (``None``: all, the scope was widened).
        special: The scope's corrections and the entries they correct, whole.
        roots: Ids of the corrected non-correction entries (the SQL reads leave them out).
    """

    currency: str
    until: datetime | None
    special: tuple[LedgerEntry, ...]
    roots: frozenset[int]

    @property
    def special_invoices(self) -> frozenset[str]:
        return frozenset(e.invoice_id for e in self.special if e.invoice_id)

    def where(self) -> list[ColumnElement[bool]]:
        """The scope's rows that the SQL reads count: not corrections, not corrected."""
        clauses = [LedgerRow.currency == self.currency, LedgerRow.kind != EntryKind.CORRECTION]
        if self.until is not None:
            clauses += [LedgerRow.occurred_at < self.until, LedgerRow.recorded_at < self.until]
        if self.roots:
            clauses.append(LedgerRow.id.not_in(sorted(self.roots)))
        return clauses


def booked_since(moment: datetime | None) -> list[ColumnElement[bool]]:
    """The entries booked at or after ``moment`` (none: every entry). The ``or`` is
    what the indexes on ``(currency, occurred_at)`` and ``(currency, recorded_at)``
    answer (migration 0012); ``BOOKED_AT`` alone is read only row by row."""
    if moment is None:
        return []
    bound = literal(moment, UTCDateTime())
    return [
        or_(LedgerRow.occurred_at >= bound, LedgerRow.recorded_at >= bound),
        bound <= BOOKED_AT,
    ]


def trusted_entry(row: Sequence[Any]) -> LedgerEntry:
    """A LedgerEntry from a stored row, without checking it again.

    Every row was checked when written (``ledger.append`` builds the LedgerEntry
    first), and the check costs more than the read: a report builds hundreds of
    thousands. So the fields are set as ``LedgerEntry.__post_init__`` leaves them.
    """
    values = dict(zip(_COLUMNS, row, strict=True))
    values["kind"] = _KINDS[values["kind"]]
    details = values["details"]
    values["details"] = MappingProxyType(dict(details)) if details else _NO_DETAILS
    entry = LedgerEntry.__new__(LedgerEntry)
    object.__setattr__(entry, "__dict__", values)
    return entry


def without_jit(session: Session) -> None:
    """Turns PostgreSQL's JIT compilation off for the session's transaction. The
    planner's costs for the reports' reads (a few index ranges of a ledger of millions
    of rows) pass ``jit_above_cost``, and compiling took 250 ms of a 260 ms read of
    the dunning figures at the full bench size; the reads themselves are short."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))


def plain_rows(session: Session, query: Select[*tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows of ``query`` as plain tuples.

    On PostgreSQL through the driver's cursor: SQLAlchemy's row processing (a Python
    call per value for ``UTCDateTime``, a ``Row`` per row) costs several times what
    psycopg's own decoding does, and a report reads tens of thousands of rows. psycopg
    gives ``timestamptz`` values aware (in the connection's zone: the same instants,
    so comparisons and differences are unchanged). Elsewhere (SQLite), through
    SQLAlchemy, whose types give SQLite's stored text back as aware datetimes.
    """
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return [tuple(row) for row in connection.execute(query)]
    compiled = query.compile(dialect=connection.dialect,
                             compile_kwargs={"render_postcompile": True})  # fmt: skip
    driver = connection.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        cursor.execute(compiled.string, compiled.params)
        return list(cursor.fetchall())


def _entries_where(session: Session, *where: ColumnElement[bool]) -> list[LedgerEntry]:
    query = select(*_SELECTED).where(*where).order_by(LedgerRow.id)
    return [trusted_entry(row) for row in session.execute(query)]


def scope(session: Session, currency: str, until: datetime | None) -> Scope:
    """The scope of one currency's report (see the module docstring)."""
    visible = [LedgerRow.currency == currency]
    if until is not None:
        visible += [LedgerRow.occurred_at < until, LedgerRow.recorded_at < until]
    corrections = _entries_where(session, *visible, LedgerRow.kind == EntryKind.CORRECTION)
    if not corrections:
        return Scope(currency=currency, until=until, special=(), roots=frozenset())
    known = {e.id: e for e in corrections}
    targets = {e.corrects for e in corrections} - known.keys()
    found = {e.id: e for e in _entries_where(session, LedgerRow.id.in_(sorted(targets)))}
    if until is not None and any(
        e.occurred_at >= until or e.recorded_at >= until for e in found.values()
    ):
        return scope(session, currency, None)
    known.update(found)
    roots = frozenset(e.id for e in found.values() if e.kind is not EntryKind.CORRECTION)
    return Scope(
        currency=currency,
        until=until,
        special=tuple(sorted(known.values(), key=lambda e: e.id)),
        roots=roots,
    )


def _one_of(session: Session, column: Any, values: Sequence[str]) -> ColumnElement[bool]:
    """``column IN values``; on PostgreSQL as ``= ANY(array)``, one parameter rather than
    thousands to render and parse."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(String)))
    return column.in_(values)


def _clauses(where: Scope, *, kinds: Collection[EntryKind]) -> list[ColumnElement[bool]]:
    return [*where.where(), LedgerRow.kind.in_(sorted(str(k) for k in kinds))]


def _booked_rows(
    session: Session,
    columns: Sequence[SQLColumnExpression[Any]],
    clauses: Sequence[ColumnElement[bool]],
) -> list[tuple[Any, ...]]:
    """``(booked_at, id, *columns, 0)`` of the rows matching ``clauses``, in booking
    order (the trailing 0: no correction in force, corrected entries are left out)."""
    query = (
        select(BOOKED_AT, LedgerRow.id, *columns, literal(0))
        .where(*clauses)
        .order_by(BOOKED_AT, LedgerRow.id)
    )
    return plain_rows(session, query)


def mrr_rows(session: Session, where: Scope, since: datetime | None = None) -> list[MrrRow]:
    """The scope's MRR entries (booked at or after ``since``) as ``MrrRow``, its
    special entries left out."""
    columns = [LedgerRow.subscription_id, LedgerRow.customer_id, LedgerRow.mrr_after,
               LedgerRow.status_after]  # fmt: skip
    clauses = [*_clauses(where, kinds=MRR_KINDS), *booked_since(since)]
    return _booked_rows(session, columns, clauses)


def failed_invoices(session: Session, where: Scope) -> list[str]:
    """The invoices with a ``payment.failed`` in the scope, and those its special
    entries touch: the only ones with dunning episodes."""
    failed = (
        select(LedgerRow.invoice_id)
        .where(
            *where.where(), LedgerRow.kind == EntryKind.PAYMENT_FAILED, LedgerRow.invoice_id != ""
        )
        .distinct()
    )
    return sorted({row[0] for row in plain_rows(session, failed)} | where.special_invoices)


def failed_since(session: Session, where: Scope, since: datetime) -> list[str]:
    """The invoices with a ``payment.failed`` of the scope booked at or after ``since``,
    or with a first attempt booked since then and a failure in the scope (whose first
    attempts the dunning sweep counts, ``first_attempts`` leaving them out)."""
    recent_failure = select(LedgerRow.invoice_id).where(
        *where.where(), *booked_since(since), LedgerRow.kind == EntryKind.PAYMENT_FAILED,
        LedgerRow.invoice_id != "",
    )  # fmt: skip
    other = aliased(LedgerRow)
    failing = [other.currency == where.currency, other.kind == EntryKind.PAYMENT_FAILED,
               other.invoice_id == LedgerRow.invoice_id, other.invoice_id != ""]  # fmt: skip
    if where.until is not None:
        failing += [other.occurred_at < where.until, other.recorded_at < where.until]
    if where.roots:
        failing.append(other.id.not_in(sorted(where.roots)))
    first_with_failure = select(LedgerRow.invoice_id).where(
        *where.where(), *booked_since(since), LedgerRow.attempt == 1,
        LedgerRow.kind == EntryKind.PAYMENT_SUCCEEDED, select(other.id).where(*failing).exists(),
    )  # fmt: skip
    found = session.scalars(recent_failure.union(first_with_failure))
    return sorted(set(found))


def dunning_rows(
    session: Session, where: Scope, kinds: Collection[EntryKind], invoices: Sequence[str]
) -> list[DunningRow]:
    """The scope's entries of ``kinds`` of ``invoices`` (``failed_invoices``) as
    ``DunningRow``, its special entries left out."""
    if not invoices:
        return []
    columns = [LedgerRow.kind, LedgerRow.invoice_id, LedgerRow.occurred_at, LedgerRow.amount,
               LedgerRow.attempt, LedgerRow.decline_code, LedgerRow.dunning_step]  # fmt: skip
    # Read by the invoice_id index: a few percent of the invoices fail a payment.
    clauses = [*_clauses(where, kinds=kinds), _one_of(session, LedgerRow.invoice_id, invoices)]
    return _booked_rows(session, columns, clauses)


def bucket_index(
    starts: Sequence[datetime], moment: ColumnElement[datetime] = BOOKED_AT
) -> ColumnElement[int]:
    """The index of the bucket holding ``moment`` (a row's booked time), as
    ``billing.analytics.buckets.bucket_locator`` finds it (the caller keeps the rows
    inside ``[starts[0], end)``): the number of starts at or before it, minus one.

    A binary search in nested ``CASE``s (about log2(len(starts)) comparisons a row
    rather than one per start: 37 buckets took PostgreSQL most of a revenue report).
    """
    bounds = [literal(start, UTCDateTime()) for start in starts]

    def between(low: int, high: int) -> ColumnElement[int]:
        # The index in [low, high), knowing starts[low] <= booked_at.
        if high - low == 1:
            return literal(low)
        middle = (low + high) // 2
        return case((moment < bounds[middle], between(low, middle)),
                    else_=between(middle, high))  # fmt: skip

    return case((moment < bounds[0], literal(-1)), else_=between(0, len(starts)))


def kind_sums(
    session: Session,
    where: Scope,
    *,
    starts: Sequence[datetime],
    end: datetime,
    kinds: Iterable[EntryKind],
    recent: bool = False,
) -> list[tuple[int, str, int, int, int]]:
    """``(bucket index, kind, amount, count, usage)`` of the scope's rows of ``kinds``
    booked in ``[starts[0], end)``; usage sums ``details["usage_amount"]``. ``recent``:
    ``starts[0]`` is recent, so the rows are found through the time indexes
    (``booked_since``) rather than by kind."""
    index = bucket_index(starts)
    usage = cast(func.coalesce(LedgerRow.details["usage_amount"].as_string(), "0"), BigInteger)
    query = (
        select(index, LedgerRow.kind, func.sum(LedgerRow.amount), func.count(), func.sum(usage))
        .where(
            *where.where(),
            LedgerRow.kind.in_(sorted(str(k) for k in kinds)),
            # A refund's own credit note is in refunded (billing.analytics.revenue).
            or_(
                LedgerRow.kind != EntryKind.CREDIT_NOTE_ISSUED,
                func.coalesce(LedgerRow.details["method"].as_string(), "") != "refund",
            ),
            and_(
                literal(starts[0], UTCDateTime()) <= BOOKED_AT,
                literal(end, UTCDateTime()) > BOOKED_AT,
            ),
            *(booked_since(starts[0]) if recent else ()),
        )
        .group_by(index, LedgerRow.kind)
    )
    return [
        (int(i), k, int(a or 0), int(c), int(u or 0)) for i, k, a, c, u in session.execute(query)
    ]


def first_attempts(
    session: Session,
    where: Scope,
    *,
    starts: Sequence[datetime],
    end: datetime,
    recent: bool = False,
) -> list[tuple[int, int, int]]:
    """``(bucket index, first attempts, first-attempt failures)`` of the scope's payment
    entries with ``attempt == 1`` booked in ``[starts[0], end)``, leaving out the
    invoices with a failure (``dunning_rows`` reads those); ``recent`` as ``kind_sums``."""
    index = bucket_index(starts)
    if recent:
        # Per row, by the invoice_id index: the few recent rows, not every failure of
        # the currency (which a hashed NOT IN reads whole: most of a recent report).
        other = aliased(LedgerRow)
        failing = [other.currency == where.currency, other.kind == EntryKind.PAYMENT_FAILED,
                   other.invoice_id == LedgerRow.invoice_id, other.invoice_id != ""]  # fmt: skip
        if where.until is not None:
            failing += [other.occurred_at < where.until, other.recorded_at < where.until]
        if where.roots:
            failing.append(other.id.not_in(sorted(where.roots)))
        no_failure = ~select(other.id).where(*failing).exists()
    else:
        failed = select(LedgerRow.invoice_id).where(
            *where.where(), LedgerRow.kind == EntryKind.PAYMENT_FAILED, LedgerRow.invoice_id != ""
        )
        no_failure = LedgerRow.invoice_id.not_in(failed)
    is_failure = case((LedgerRow.kind == EntryKind.PAYMENT_FAILED, 1), else_=0)
    clauses = [
        *where.where(),
        LedgerRow.kind.in_([str(EntryKind.PAYMENT_FAILED), str(EntryKind.PAYMENT_SUCCEEDED)]),
        LedgerRow.attempt == 1,
        no_failure,
        literal(starts[0], UTCDateTime()) <= BOOKED_AT,
        literal(end, UTCDateTime()) > BOOKED_AT,
        *(booked_since(starts[0]) if recent else ()),
    ]
    if where.special_invoices:
        clauses.append(LedgerRow.invoice_id.not_in(sorted(where.special_invoices)))
    query = select(index, func.count(), func.sum(is_failure)).where(*clauses).group_by(index)
    return [(int(i), int(n), int(f or 0)) for i, n, f in session.execute(query)]


_INVOICE_KINDS = [
    str(k)
    for k in (
        EntryKind.INVOICE_FINALIZED,
        EntryKind.INVOICE_PAID,
        EntryKind.CREDIT_NOTE_ISSUED,
        EntryKind.INVOICE_VOIDED,
        EntryKind.INVOICE_WRITTEN_OFF,
    )
]
# What a finalized invoice leaves to be paid, as billing.analytics.receivables.amount_due.
AMOUNT_DUE = func.coalesce(
    cast(LedgerRow.details["amount_due"].as_string(), BigInteger), LedgerRow.amount
)


def _open_candidates(session: Session, where: Scope, moments: Sequence[datetime]) -> list[str]:
    """The invoices that may be open at one of ``moments`` (sorted): an invoice whose
    every entry is booked between two moments and that ends settled or closed is open
    at none of them, and is left out. The invoices of the special entries are in."""
    # Per group, not per row: the moments between the invoice's first and last entry.
    spread = bucket_index(moments, func.min(BOOKED_AT)) != bucket_index(
        moments, func.max(BOOKED_AT)
    )
    # The amount, not the amount due (which is never more): reading it out of the JSON
    # for every invoice costs more than keeping the few it adds.
    is_finalized = LedgerRow.kind == EntryKind.INVOICE_FINALIZED
    finalized = func.sum(case((is_finalized, LedgerRow.amount), else_=0))
    settled = func.sum(case((LedgerRow.kind.in_(_INVOICE_KINDS[1:3]), LedgerRow.amount), else_=0))
    closed = func.max(case((LedgerRow.kind.in_(_INVOICE_KINDS[3:]), 1), else_=0))
    per_invoice = (
        select(LedgerRow.invoice_id)
        .where(*where.where(), LedgerRow.kind.in_(_INVOICE_KINDS), LedgerRow.invoice_id != "")
        .group_by(LedgerRow.invoice_id)
        .having(or_(spread, and_(closed == 0, finalized > settled)))
    )
    found = {row[0] for row in plain_rows(session, per_invoice)}
    return sorted(found | where.special_invoices)


def invoice_rows(
    session: Session, where: Scope, *, moments: Sequence[datetime]
) -> list[InvoiceRow]:
    """The scope's entries of the invoices that may be open at one of ``moments``
    (``_open_candidates``) as ``InvoiceRow``, its special entries left out; a finalized
    entry's amount is its amount due (``AMOUNT_DUE``)."""
    invoices = _open_candidates(session, where, moments)
    if not invoices:
        return []
    columns = [LedgerRow.kind, LedgerRow.invoice_id, LedgerRow.customer_id, LedgerRow.occurred_at,
               case((LedgerRow.kind == EntryKind.INVOICE_FINALIZED, AMOUNT_DUE),
                    else_=LedgerRow.amount),
               LedgerRow.due_at]  # fmt: skip
    # Read by the invoice_id index, the candidates being a few percent of the invoices.
    clauses = [*where.where(), LedgerRow.kind.in_(_INVOICE_KINDS),
               _one_of(session, LedgerRow.invoice_id, invoices)]  # fmt: skip
    return _booked_rows(session, columns, clauses)


def invoice_rows_since(session: Session, where: Scope, since: datetime) -> list[InvoiceRow]:
    """The scope's invoice entries booked at or after ``since`` (every invoice's) as
    ``InvoiceRow``, its special entries left out: what moves the open invoices kept at
    a horizon (``kakin.services.analytics_cache``)."""
    columns = [LedgerRow.kind, LedgerRow.invoice_id, LedgerRow.customer_id, LedgerRow.occurred_at,
               case((LedgerRow.kind == EntryKind.INVOICE_FINALIZED, AMOUNT_DUE),
                    else_=LedgerRow.amount),
               LedgerRow.due_at]  # fmt: skip
    clauses = [*where.where(), LedgerRow.kind.in_(_INVOICE_KINDS), LedgerRow.invoice_id != "",
               *booked_since(since)]  # fmt: skip
    return _booked_rows(session, columns, clauses)


# The distinct currencies by skipping through the (currency, ...) indexes, one probe a
# currency: SELECT DISTINCT reads every row (~100 ms at the bench's small size).
_CURRENCIES = text(
    "WITH RECURSIVE held(currency) AS ("
    " SELECT min(currency) FROM billing_ledger"
    " UNION ALL SELECT (SELECT min(currency) FROM billing_ledger"
    " WHERE billing_ledger.currency > held.currency) FROM held WHERE held.currency IS NOT NULL)"
    " SELECT currency FROM held WHERE currency IS NOT NULL"
)


def currencies(session: Session) -> list[str]:
    """Every currency the ledger holds, sorted."""
    return sorted(session.scalars(_CURRENCIES))


def customers_per_currency(session: Session) -> dict[str, int]:
    rows = session.execute(select(Customer.currency, func.count()).group_by(Customer.currency))
    return {currency: count for currency, count in rows}


def subscriptions_in(
    session: Session, statuses: Iterable[str], ids: Collection[str] | None = None
) -> list[Subscription]:
    """Every subscription in one of ``statuses`` (of ``ids`` if given), oldest first,
    with what a draft of its next invoice reads (price, customer, items, coupons)
    loaded in a few queries."""
    query = select(Subscription).where(Subscription.status.in_(list(statuses)))
    if ids is not None:
        query = query.where(Subscription.id.in_(sorted(ids)))
    return list(
        session.scalars(
            query.order_by(Subscription.created_at, Subscription.id).options(
                selectinload(Subscription.price).selectinload(Price.product),
                selectinload(Subscription.customer),
                selectinload(Subscription.items).selectinload(SubscriptionItem.price),
                selectinload(Subscription.discounts).selectinload(SubscriptionDiscount.coupon),
            )
        )
    )


# (id, customer_id, price_id, quantity, billing_cycle_anchor, trial_end,
#  current_period_start, current_period_end, cancel_at_period_end, price interval,
#  price interval_count, price currency, customer time_zone, customer tax_rate_ids,
#  has a discount)
StoredSubscription = tuple[
    str, str, str, int, datetime | None, datetime | None, datetime | None, datetime | None,
    bool, str, int, str, str, list[str] | None, bool,
]  # fmt: skip


# A customer's tax rate ids as their JSON text: decoding it for every row cost more than
# the rest of the row, and most customers have none ("[]", read as no rates).
_TAX_RATES = cast(Customer.tax_rate_ids, String)


def _rates(text: str | None) -> list[str] | None:
    return None if text is None or text in ("[]", "null") else json.loads(text)


# On PostgreSQL, the version of everything the forecast reads of a subscription row:
# the ``xmin`` (the transaction that wrote the row version: any update writes a new one)
# of the subscription, its customer and its price, and of each of its items (with their
# prices) and discounts. Equal versions: the same rows, so what was computed from them
# still holds (``kakin.services.analytics_forecast_kept``). The items and discounts are
# aggregated once and hash-joined (a subquery per subscription cost ten times more).
_VERSIONS = """
SELECT s.id, concat_ws(',', s.xmin::text, c.xmin::text, p.xmin::text,
                       coalesce(i.v, ''), coalesce(d.v, ''))
FROM subscriptions s
JOIN prices p ON p.id = s.price_id
JOIN customers c ON c.id = s.customer_id
LEFT JOIN (SELECT i.subscription_id, string_agg(i.xmin::text || ':' || ip.xmin::text, ' '
                                                ORDER BY i.id) AS v
           FROM subscription_items i JOIN prices ip ON ip.id = i.price_id
           GROUP BY i.subscription_id) i ON i.subscription_id = s.id
LEFT JOIN (SELECT subscription_id, string_agg(xmin::text, ' ' ORDER BY id) AS v
           FROM subscription_discounts GROUP BY subscription_id) d ON d.subscription_id = s.id
WHERE s.status = ANY(%(statuses)s) AND s.current_period_end IS NOT NULL
"""


def subscription_versions(session: Session, statuses: Iterable[str]) -> dict[str, str]:
    """Per subscription ``stored_subscriptions`` reads, its version (``_VERSIONS``).
    PostgreSQL only. Read before the rows it stands for: a row read after its version
    is at least that recent, so one that changed in between is read again next time."""
    connection = session.connection()
    assert connection.dialect.name == "postgresql", "row versions are PostgreSQL's xmin"
    driver = connection.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        cursor.execute(_VERSIONS, {"statuses": list(statuses)})
        return dict(cursor.fetchall())


def created_times(session: Session, ids: Sequence[str]) -> dict[str, datetime]:
    """When each of ``ids`` was created (the forecast's order: oldest first, then id)."""
    query = select(Subscription.id, Subscription.created_at).where(
        _one_of(session, Subscription.id, ids)
    )
    return dict(plain_rows(session, query))


def stored_subscriptions(
    session: Session, statuses: Iterable[str], ids: Sequence[str] | None = None
) -> list[StoredSubscription]:
    """``subscriptions_in``'s subscriptions with a current period (of ``ids`` if given),
    as plain rows of what the forecast reads of each (oldest first), in one query."""
    discounted = (
        select(SubscriptionDiscount.id)
        .where(SubscriptionDiscount.subscription_id == Subscription.id)
        .exists()
    )
    query = (
        select(Subscription.id, Subscription.customer_id, Subscription.price_id,
               Subscription.quantity, Subscription.billing_cycle_anchor, Subscription.trial_end,
               Subscription.current_period_start, Subscription.current_period_end,
               Subscription.cancel_at_period_end, Price.interval, Price.interval_count,
               Price.currency, Customer.time_zone, _TAX_RATES, discounted)
        .join(Price, Price.id == Subscription.price_id)
        .join(Customer, Customer.id == Subscription.customer_id)
        .where(Subscription.status.in_(list(statuses)),
               Subscription.current_period_end.is_not(None))
        .order_by(Subscription.created_at, Subscription.id)
    )  # fmt: skip
    if ids is not None:
        query = query.where(_one_of(session, Subscription.id, ids))
    return [(*row[:13], _rates(row[13]), row[14]) for row in plain_rows(session, query)]


def subscription_items(
    session: Session, statuses: Iterable[str], ids: Sequence[str] | None = None
) -> list[tuple[str, str, int, bool]]:
    """``(subscription id, price id, quantity, metered)`` of the items of every
    subscription in one of ``statuses`` (of ``ids`` if given)."""
    query = (
        select(SubscriptionItem.subscription_id, SubscriptionItem.price_id,
               SubscriptionItem.quantity, Price.metric_id.is_not(None))
        .join(Price, Price.id == SubscriptionItem.price_id)
        .join(Subscription, Subscription.id == SubscriptionItem.subscription_id)
        .where(Subscription.status.in_(list(statuses)))
    )  # fmt: skip
    if ids is not None:
        query = query.where(_one_of(session, SubscriptionItem.subscription_id, ids))
    return plain_rows(session, query)


def customers_with_credit(session: Session) -> set[str]:
    """Customers with a credit transaction (a balance, or one spent to zero)."""
    return set(session.scalars(select(CreditTransaction.customer_id).distinct()))


# -- what the cache of closed buckets checks (kakin.services.analytics_cache) -------------


def ledger_mark(session: Session, window: int) -> tuple[int, str, tuple[int, ...]]:
    """``(last id, its event key, gaps)``: the highest ledger id visible now, its key
    (so another database that reached the same id is told apart) and the ids of the
    last ``window`` that are not visible (rolled back, or still being written by a
    transaction that has not committed: those may appear later)."""
    last = session.scalar(select(func.max(LedgerRow.id)))
    if last is None:
        return 0, "", ()
    key = session.scalar(select(LedgerRow.event_key).where(LedgerRow.id == last)) or ""
    low = max(last - window, 0)
    seen = set(session.scalars(select(LedgerRow.id).where(LedgerRow.id > low)))
    return last, key, tuple(i for i in range(low + 1, last + 1) if i not in seen)


def arrivals(
    session: Session, last_id: int, gaps: Sequence[int]
) -> tuple[dict[str, datetime], bool]:
    """The entries visible now that were not at a mark (``ledger_mark``: ids above its
    last, or in its gaps): per currency the earliest time one is booked at, and
    whether any of them is a correction."""
    arrived = LedgerRow.id > last_id
    if gaps:
        arrived = or_(arrived, LedgerRow.id.in_(sorted(gaps)))
    is_correction = case((LedgerRow.kind == EntryKind.CORRECTION, 1), else_=0)
    query = (
        select(LedgerRow.currency, func.min(BOOKED_AT), func.max(is_correction))
        .where(arrived)
        .group_by(LedgerRow.currency)
    )
    earliest: dict[str, datetime] = {}
    corrected = False
    for currency, booked_at, correction in session.execute(query):
        earliest[currency] = booked_at
        corrected = corrected or bool(correction)
    return earliest, corrected


def event_key_of(session: Session, entry_id: int) -> str | None:
    return session.scalar(select(LedgerRow.event_key).where(LedgerRow.id == entry_id))
