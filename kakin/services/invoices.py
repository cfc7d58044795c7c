"""Invoices once stored: their arithmetic recomposed from the rows (for credit notes),
marking one void or uncollectible, and the reads the faces make (an invoice, a page of
them, the usage so far and the upcoming invoice, each shaped inside its session).

What an invoice holds is computed in ``invoice_drafts``; how it prints, in
``invoice_documents``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker

from billing.discounts import Coupon as CouponTerms
from billing.invoice_math import InvoiceLine as MathLine
from billing.invoice_math import InvoiceTotals, compose_invoice
from billing.rounding import RoundingMode
from billing.tax import TaxRate as RateTerms
from kakin.services import ledger
from kakin.services.invoice_drafts import Draft, DraftLine, current_usage, upcoming_draft
from kakin.services.shaping import Reads
from models.payloads import InvoiceChange
from models.repositories import audit as audit_sql
from models.repositories import invoices as invoice_sql
from models.repositories.common import find, get
from models.tables import Invoice, Price, Subscription

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
        ids = line.details.get("tax_rate_ids")
        if ids is None:
            ids = [line.tax_rate_id] if line.tax_rate_id else []
        charges.append(
            MathLine(
                description=line.description,
                amount=line.amount,
                tax_rate_ids=tuple(ids),
                discountable=line.amount >= 0,
            )
        )
    breakdown = invoice.tax_breakdown
    totals = compose_invoice(
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
    if totals.total + rounded != invoice.total or [t.tax for t in totals.taxes] != [
        item["tax"] for item in breakdown
    ]:
        raise ValueError(f"invoice {invoice.id}'s stored amounts do not recompose")
    return replace(totals, total=invoice.total)


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


_invoices = Reads(Invoice, "Invoice", filters=("status", "customer_id", "subscription_id"))
find_invoice, get_invoice, list_invoices = _invoices.find, _invoices.get, _invoices.page


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


def upcoming_invoice(
    sessions: sessionmaker[Session],
    subscription_id: str,
    shape: Callable[[Subscription, Draft], T],
    *,
    next_start: datetime,
    next_end: datetime,
    pending_price_id: str | None,
    rounding: RoundingMode,
) -> T:
    """The draft of the invoice the next renewal will create (``upcoming_draft``)."""
    with sessions() as session:
        subscription = _find_subscription(session, subscription_id)
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
