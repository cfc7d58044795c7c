"""Invoices once stored: their arithmetic recomposed from the rows (for credit notes),
marking one void or uncollectible, and the reads the faces make (an invoice, a page of
them by status, customer, overdue or period, its payments, the usage so far and the
upcoming invoice, each shaped inside its session).

What an invoice holds is computed in ``invoice_drafts``; how it prints, in
``invoice_documents``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from billing.discounts import Coupon as CouponTerms
from billing.invoice_math import InvoiceLine as MathLine
from billing.invoice_math import InvoiceTotals, compose_invoice
from billing.rounding import RoundingMode
from billing.tax import TaxRate as RateTerms
from kakin.services import ledger
from kakin.services.errors import ConflictError
from kakin.services.invoice_drafts import (
    Draft,
    DraftLine,
    current_usage,
    final_draft,
    upcoming_draft,
)
from kakin.services.shaping import Reads, shaped_page
from models.payloads import InvoiceChange, InvoiceStatus, StatusView
from models.repositories import audit as audit_sql
from models.repositories import invoices as invoice_sql
from models.repositories import payments as payment_sql
from models.repositories.common import find, get
from models.tables import Invoice, InvoiceLine, PaymentAttempt, Price, Subscription

T = TypeVar("T")


def stored_totals(invoice: Invoice) -> InvoiceTotals:
    """An invoice's arithmetic (tax groups, per-rate tax), recomposed from its rows.

    Credit notes split across the invoice's tax groups and rates
    (``billing.credit_notes``). Each discount line is replayed as a fixed amount:
    the allocation depends only on the amounts, so the groups come out as they were.
    The stored taxes must come out again too, or this raises instead of guessing.
    """
    charges, coupons = [], []
    rounded = 0
    for line in invoice.lines:
        if line.kind == "rounding":
            # Outside the tax groups: a credit note splits over what the lines and
            # taxes were, and credits at most the (rounded) total.
            rounded += line.amount
            continue
        if line.kind == "discount":
            coupons.append(
                CouponTerms(
                    code=line.description,
                    duration="once",  # type: ignore[arg-type]
                    amount_off=-line.amount,
                    currency=invoice.currency,
                )
            )
            continue
        charges.append(_math_line(line))
    breakdown = invoice.tax_breakdown
    totals = _compose(invoice, charges, coupons)
    if totals.total + rounded != invoice.total or [t.tax for t in totals.taxes] != [
        item["tax"] for item in breakdown
    ]:
        raise ValueError(f"invoice {invoice.id}'s stored amounts do not recompose")
    return replace(totals, total=invoice.total)


def lines_total(invoice: Invoice, positions: Iterable[int]) -> int:
    """What the invoice's charge lines at ``positions`` (indexes into its lines) come
    to with their tax, as the invoice taxed them; no discount is taken off (a credit
    note for them is capped by the creditable remainder). Discount and rounding lines
    are not charges: ``ValueError``, as for a position the invoice lacks."""
    lines = list(invoice.lines)
    chosen = sorted(set(positions))
    if any(not 0 <= i < len(lines) or lines[i].kind in ("discount", "rounding") for i in chosen):
        raise ValueError("choose the invoice's charge lines")
    return _compose(invoice, [_math_line(lines[i]) for i in chosen], []).total


def _math_line(line: InvoiceLine) -> MathLine:
    ids = line.details.get("tax_rate_ids")
    if ids is None:
        ids = [line.tax_rate_id] if line.tax_rate_id else []
    return MathLine(
        description=line.description,
        amount=line.amount,
        tax_rate_ids=tuple(ids),
        discountable=line.amount >= 0,
    )


def _compose(
    invoice: Invoice, charges: list[MathLine], coupons: list[CouponTerms]
) -> InvoiceTotals:
    """The lines composed under the invoice's own tax rates and rounding."""
    breakdown = invoice.tax_breakdown
    return compose_invoice(
        currency=invoice.currency,
        lines=charges,
        tax_rates=[
            RateTerms(
                id=item["tax_rate_id"],
                name=item["name"],
                percentage=Decimal(item["percentage"]),
                inclusive=item["inclusive"],
            )
            for item in breakdown
        ],
        coupons=coupons,
        tax_rounding=RoundingMode(breakdown[0].get("rounding", "down"))
        if breakdown
        else RoundingMode.DOWN,
    )


def apply_invoice_change(session: Session, change: InvoiceChange) -> None:
    """Mark an invoice void or uncollectible, with its audit row (uncommitted); nothing
    if it already is."""
    invoice = invoice_sql.invoice(session, change.invoice_id)
    if invoice.status == change.status:
        return
    previous = invoice.status
    invoice.status = change.status
    audit_sql.audit(
        session,
        entity_type="invoice",
        entity_id=invoice.id,
        action=f"marked_{change.status}",
        from_status=previous,
        to_status=change.status,
        actor=change.actor,
        reason=change.reason,
        occurred_at=change.occurred_at,
    )
    ledger.record_marked(
        session, invoice, status_before=previous, occurred_at=change.occurred_at,
        actor=change.actor, reason=change.reason,
    )  # fmt: skip


# --- invoice reads, for the faces (each shapes a row inside its session) ---


_invoices = Reads(Invoice, "Invoice")
find_invoice, get_invoice = _invoices.find, _invoices.get


def list_invoices(
    sessions: sessionmaker[Session],
    shape: Callable[[Invoice], T],
    *,
    limit: int,
    starting_after: str | None,
    status: str | None = None,
    customer_id: str | None = None,
    subscription_id: str | None = None,
    overdue_at: datetime | None = None,
    period_from: datetime | None = None,
    period_until: datetime | None = None,
) -> tuple[list[T], bool]:
    """A page of invoices, newest first, each shaped inside the session.

    ``status``, ``customer_id`` and ``subscription_id`` must equal (None or "" filters
    nothing); ``overdue_at``: only open invoices due before that moment (due when
    finalized); ``period_from``/``period_until``: the period starts in ``[from,
    until)`` (``period_bounds`` makes them from days).
    """

    def read(session: Session) -> tuple[list[Invoice], bool]:
        return invoice_sql.invoices(
            session, limit=limit, starting_after=starting_after, overdue_at=overdue_at,
            period_from=period_from, period_until=period_until, status=status,
            customer_id=customer_id, subscription_id=subscription_id,
        )  # fmt: skip

    return shaped_page(sessions, read, shape)


def is_overdue(invoice: Invoice, as_of: datetime) -> bool:
    """Open and due before ``as_of``: an invoice is due when finalized (the ledger's
    ``due_at``), as ``list_invoices(overdue_at=...)`` filters."""
    due = invoice.finalized_at
    return invoice.status == InvoiceStatus.OPEN and due is not None and due < as_of


def period_bounds(
    first_day: date | None, last_day: date | None, time_zone: str
) -> tuple[datetime | None, datetime | None]:
    """The instants a list of periods starting from ``first_day`` to ``last_day``
    (inclusive, days in ``time_zone``: the seller's reporting zone) filters on."""
    zone = ZoneInfo(time_zone)

    def midnight(day: date) -> datetime:
        return datetime.combine(day, time(), zone).astimezone(UTC)

    return (
        midnight(first_day) if first_day else None,
        midnight(last_day + timedelta(days=1)) if last_day else None,
    )


def invoice_payments(
    sessions: sessionmaker[Session], invoice_id: str, shape: Callable[[PaymentAttempt], T]
) -> list[T]:
    """The invoice's payment attempts, oldest first (``NotFoundError``: no such invoice)."""
    with sessions() as session:
        find_invoice(session, invoice_id)
        return [shape(row) for row in payment_sql.invoice_payments(session, invoice_id)]


def failing_invoices(
    sessions: sessionmaker[Session], shape: Callable[[Invoice], T], *, limit: int
) -> list[T]:
    """Open invoices whose charge was declined, most recent decline first (the
    dashboard's "needs attention"), each shaped inside the session."""
    with sessions() as session:
        return [shape(row) for row in invoice_sql.failing_invoices(session, limit=limit)]


def invoice_and_subscription_status(
    sessions: sessionmaker[Session], invoice_id: str
) -> tuple[str, str, str]:
    """The invoice's subscription id, the invoice's status and the subscription's."""
    with sessions() as session:
        row = find_invoice(session, invoice_id)
        subscription = _find_subscription(session, row.subscription_id)
        return row.subscription_id, row.status, subscription.status


def usage_so_far(
    sessions: sessionmaker[Session],
    subscription_id: str,
    shape: Callable[[Subscription, list[DraftLine]], T],
) -> T:
    """The open period's usage lines of the subscription (``NotFoundError``: none)."""
    with sessions() as session:
        subscription = _find_subscription(session, subscription_id)
        return shape(subscription, current_usage(session, subscription))


def upcoming_period(view: StatusView) -> tuple[datetime, datetime, bool] | None:
    """The period the workflow's next invoice bills, and whether it is the last one.

    A renewal bills the next period (its plan in advance, the closing period's usage in
    arrears). When the next action is the end (a cancel at the period end) no period
    follows: the last invoice is the current period's usage, issued as it ends. None
    when the workflow has no invoice to come.
    """
    ends = view.next_action == "end"
    start, end = (
        (view.current_period_start, view.current_period_end)
        if ends
        else (view.next_period_start, view.next_period_end)
    )
    if start is None or end is None:
        return None
    return start, end, ends


def upcoming_invoice(
    sessions: sessionmaker[Session],
    subscription_id: str,
    shape: Callable[[Subscription, Draft], T],
    *,
    next_start: datetime,
    next_end: datetime,
    pending_price_id: str | None,
    rounding: RoundingMode,
    ends: bool = False,
) -> T:
    """The draft of the invoice the subscription's workflow will create next.

    ``ends``: the workflow's next action is the end (a cancel at the period end), so what
    follows is no renewal but the last period's usage in arrears (``final_draft``, as the
    workflow bills it); ``ConflictError`` when that has nothing to bill.
    """
    with sessions() as session:
        subscription = _find_subscription(session, subscription_id)
        if ends:
            final = final_draft(session, subscription, rounding=rounding)
            if final is None:
                raise ConflictError(
                    f"Subscription {subscription_id!r} has no upcoming invoice: it ends at"
                    " the period end with no usage to bill"
                )
            return shape(subscription, final)
        draft = upcoming_draft(
            session,
            subscription,
            next_start=next_start,
            next_end=next_end,
            pending_price=find(session, Price, pending_price_id) if pending_price_id else None,
            rounding=rounding,
        )
        return shape(subscription, draft)


def _find_subscription(session: Session, subscription_id: str) -> Subscription:
    return get(session, Subscription, subscription_id, "Subscription")
