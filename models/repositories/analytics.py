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
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, and_, case, cast, func, literal, or_, select
from sqlalchemy.orm import Session, selectinload

from billing.analytics.ledger import EntryKind, LedgerEntry
from models.tables import (
    CreditTransaction,
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


def entries(
    session: Session,
    where: Scope,
    *,
    kinds: Collection[EntryKind] | None = None,
    failed_invoices_only: bool = False,
) -> list[LedgerEntry]:
    """The scope's entries of ``kinds`` (``None``: all), its special entries included.

    ``failed_invoices_only``: only entries of invoices with a ``payment.failed`` in the
    scope (and of the invoices the special entries touch).
    """
    clauses = where.where()
    if kinds is not None:
        clauses.append(LedgerRow.kind.in_(sorted(str(k) for k in kinds)))
    if failed_invoices_only:
        failed = select(LedgerRow.invoice_id).where(
            *where.where(), LedgerRow.kind == EntryKind.PAYMENT_FAILED, LedgerRow.invoice_id != ""
        )
        touched = sorted(where.special_invoices)
        clauses.append(
            or_(LedgerRow.invoice_id.in_(failed), LedgerRow.invoice_id.in_(touched))
            if touched
            else LedgerRow.invoice_id.in_(failed)
        )
    return [*_entries_where(session, *clauses), *where.special]


def bucket_index(starts: Sequence[datetime]) -> ColumnElement[int]:
    """The index of the bucket holding a row's booked time, as
    ``billing.analytics.buckets.bucket_locator`` finds it (the caller keeps the rows
    inside ``[starts[0], end)``): the number of starts at or before it, minus one."""
    return case(
        *(
            (literal(start, UTCDateTime()) <= BOOKED_AT, index)
            for index, start in reversed(list(enumerate(starts)))
        ),
        else_=-1,
    )


def kind_sums(
    session: Session,
    where: Scope,
    *,
    starts: Sequence[datetime],
    end: datetime,
    kinds: Iterable[EntryKind],
) -> list[tuple[int, str, int, int, int]]:
    """``(bucket index, kind, amount, count, usage)`` of the scope's rows of ``kinds``
    booked in ``[starts[0], end)``; usage sums ``details["usage_amount"]``."""
    index = bucket_index(starts)
    usage = cast(func.coalesce(LedgerRow.details["usage_amount"].as_string(), "0"), BigInteger)
    query = (
        select(index, LedgerRow.kind, func.sum(LedgerRow.amount), func.count(), func.sum(usage))
        .where(
            *where.where(),
            LedgerRow.kind.in_(sorted(str(k) for k in kinds)),
            and_(
                literal(starts[0], UTCDateTime()) <= BOOKED_AT,
                literal(end, UTCDateTime()) > BOOKED_AT,
            ),
        )
        .group_by(index, LedgerRow.kind)
    )
    return [
        (int(i), k, int(a or 0), int(c), int(u or 0)) for i, k, a, c, u in session.execute(query)
    ]


def first_attempts(
    session: Session, where: Scope, *, starts: Sequence[datetime], end: datetime
) -> list[tuple[int, int, int]]:
    """``(bucket index, first attempts, first-attempt failures)`` of the scope's payment
    entries with ``attempt == 1`` booked in ``[starts[0], end)``, leaving out the
    invoices with a failure (``entries(failed_invoices_only=True)`` reads those)."""
    index = bucket_index(starts)
    failed = select(LedgerRow.invoice_id).where(
        *where.where(), LedgerRow.kind == EntryKind.PAYMENT_FAILED, LedgerRow.invoice_id != ""
    )
    is_failure = case((LedgerRow.kind == EntryKind.PAYMENT_FAILED, 1), else_=0)
    clauses = [
        *where.where(),
        LedgerRow.kind.in_([str(EntryKind.PAYMENT_FAILED), str(EntryKind.PAYMENT_SUCCEEDED)]),
        LedgerRow.attempt == 1,
        LedgerRow.invoice_id.not_in(failed),
        literal(starts[0], UTCDateTime()) <= BOOKED_AT,
        literal(end, UTCDateTime()) > BOOKED_AT,
    ]
    if where.special_invoices:
        clauses.append(LedgerRow.invoice_id.not_in(sorted(where.special_invoices)))
    query = select(index, func.count(), func.sum(is_failure)).where(*clauses).group_by(index)
    return [(int(i), int(n), int(f or 0)) for i, n, f in session.execute(query)]


def open_candidates(
    session: Session, where: Scope, *, moments: Sequence[datetime]
) -> list[LedgerEntry]:
    """The entries of every invoice that may be open at one of ``moments`` (sorted),
    with the special entries: an invoice whose every entry is booked between two
    moments and that ends settled or closed is open at none of them, and is left out."""
    kinds = [
        str(k)
        for k in (
            EntryKind.INVOICE_FINALIZED,
            EntryKind.INVOICE_PAID,
            EntryKind.CREDIT_NOTE_ISSUED,
            EntryKind.INVOICE_VOIDED,
            EntryKind.INVOICE_WRITTEN_OFF,
        )
    ]
    index = bucket_index(moments)
    finalized = func.sum(
        case((LedgerRow.kind == EntryKind.INVOICE_FINALIZED, LedgerRow.amount), else_=0)
    )
    settled = func.sum(
        case(
            (
                LedgerRow.kind.in_(
                    [str(EntryKind.INVOICE_PAID), str(EntryKind.CREDIT_NOTE_ISSUED)]
                ),
                LedgerRow.amount,
            ),
            else_=0,
        )
    )
    closed = func.max(case((LedgerRow.kind.in_(kinds[3:]), 1), else_=0))
    per_invoice = (
        select(LedgerRow.invoice_id)
        .where(*where.where(), LedgerRow.kind.in_(kinds), LedgerRow.invoice_id != "")
        .group_by(LedgerRow.invoice_id)
        .having(or_(func.min(index) != func.max(index), and_(closed == 0, finalized > settled)))
    )
    clauses = [*where.where(), LedgerRow.kind.in_(kinds), LedgerRow.invoice_id.in_(per_invoice)]
    found = _entries_where(session, *clauses)
    if where.special_invoices:
        taken = {e.id for e in found}
        more = _entries_where(
            session,
            *where.where(),
            LedgerRow.kind.in_(kinds),
            LedgerRow.invoice_id.in_(sorted(where.special_invoices)),
        )
        found += [e for e in more if e.id not in taken]
    return [*found, *where.special]


def currencies(session: Session) -> list[str]:
    """Every currency the ledger holds, sorted."""
    return sorted(session.scalars(select(LedgerRow.currency).distinct()))


def subscriptions_in(session: Session, statuses: Iterable[str]) -> list[Subscription]:
    """Every subscription in one of ``statuses``, oldest first, with what a draft of its
    next invoice reads (price, customer, items, coupons) loaded in a few queries."""
    return list(
        session.scalars(
            select(Subscription)
            .where(Subscription.status.in_(list(statuses)))
            .order_by(Subscription.created_at, Subscription.id)
            .options(
                selectinload(Subscription.price).selectinload(Price.product),
                selectinload(Subscription.customer),
                selectinload(Subscription.items).selectinload(SubscriptionItem.price),
                selectinload(Subscription.discounts).selectinload(SubscriptionDiscount.coupon),
            )
        )
    )


def customers_with_credit(session: Session) -> set[str]:
    """Customers with a credit transaction (a balance, or one spent to zero)."""
    return set(session.scalars(select(CreditTransaction.customer_id).distinct()))
