"""What the billing ledger records for each change, written with the change itself.

Every write path that moves money or MRR (the workflow's activities, the services
support and Stripe's webhooks call) asks here, inside the transaction of its change,
so the rules live in one place:

- **Which kind and key.** Each change has a stable ``event_key`` (``invoice.paid:<invoice
  id>``, ``payment.failed:<attempt business key>``, ...): a retried activity or a second
  copy of a webhook finds the first row and adds nothing (``models.repositories.ledger``).
- **MRR.** ``mrr_after`` is the subscription's MRR after the change, computed by
  ``billing.analytics.mrr`` from its current plan, items, forever coupons and status;
  ``mrr_before`` is the ``mrr_after`` of its latest MRR entry (0 before the first).
  Money entries (invoices, payments, credit notes, refunds) carry 0 in both: they never
  move MRR.
- **Clock.** ``occurred_at`` is the billing time the change carries; ``recorded_at`` the
  writer's clock in that time base (``recorded_at()``): Temporal's in an activity (the
  time-skipping test server moves it), the wall clock elsewhere, never before the
  change itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from sqlalchemy.orm import Session
from temporalio import activity

from billing.analytics.ledger import EntryKind
from billing.analytics.mrr import RecurringItem, subscription_mrr
from billing.calendar import Interval
from billing.discounts import CouponDuration, applies
from billing.rating import PerUnitPrice
from billing.rating import Price as RatingPrice
from kakin.services.invoice_drafts import (
    CouponColumns,
    PriceColumns,
    coupon_periods_used,
    coupon_terms,
    rating_price,
)
from models.payloads import InvoiceStatus, SubscriptionChange, SubscriptionStatus
from models.repositories import ledger as ledger_sql
from models.tables import (
    Coupon,
    CreditNote,
    Invoice,
    LedgerRow,
    PaymentAttempt,
    Price,
    Subscription,
    utcnow,
)

# The invoice statuses a change marks, and the entry each writes.
_MARKED = {
    InvoiceStatus.VOID: EntryKind.INVOICE_VOIDED,
    InvoiceStatus.UNCOLLECTIBLE: EntryKind.INVOICE_WRITTEN_OFF,
}


def recorded_at(occurred_at: datetime) -> datetime:
    """The writer's clock for a change at ``occurred_at``, in the billing time base.

    In an activity, Temporal's clock (when this attempt was scheduled): billing times
    there are the workflow's, which the time-skipping server (and a test clock) run
    ahead of the wall clock. Elsewhere the wall clock. Never before the change: an
    entry written ahead of its effective time is booked at that time.
    """
    now = activity.info().current_attempt_scheduled_time if activity.in_activity() else utcnow()
    return max(occurred_at, now)


# -- a subscription's MRR ----------------------------------------------------------------


class PlanColumns(PriceColumns, Protocol):
    """What a price contributes to MRR: its rating, whether metered, its interval."""

    @property
    def metric_id(self) -> str | None: ...
    @property
    def currency(self) -> str: ...
    @property
    def interval(self) -> str: ...
    @property
    def interval_count(self) -> int: ...


def _recurring(price: PlanColumns, quantity: int) -> RecurringItem:
    metered = price.metric_id is not None
    rated: RatingPrice
    if metered:
        rated = PerUnitPrice(unit_amount=Decimal(0))  # left out of MRR: never rated
    elif price.pricing_model == "flat":
        # kakin bills a flat price per seat (invoice_drafts: amount x quantity).
        rated = PerUnitPrice(unit_amount=Decimal(price.unit_amount))
    else:
        rated = rating_price(price)
    return RecurringItem(price=rated, quantity=quantity, metered=metered)


def mrr_from(
    *,
    status: str,
    plan: PlanColumns,
    quantity: int,
    items: Iterable[tuple[PlanColumns, int]] = (),
    coupons: Iterable[CouponColumns] = (),
) -> int:
    """A subscription's MRR from its status, plan, items (price, quantity) and redeemed
    coupons, in minor units of the plan's currency.

    The items are billed on the plan's interval (as invoices bill them). Only a
    ``forever`` coupon counts; of several, the first redeemed (``billing.analytics.mrr``
    takes one). The back-fill migration calls this with the columns it reads.
    """
    forever = [c for c in coupons if c.duration == CouponDuration.FOREVER]
    return subscription_mrr(
        status=status,
        items=[_recurring(plan, quantity), *(_recurring(p, n) for p, n in items)],
        interval=Interval(plan.interval),
        interval_count=plan.interval_count,
        currency=plan.currency,
        coupon=coupon_terms(forever[0]) if forever else None,
    )


def mrr_of(
    subscription: Subscription,
    *,
    price: Price | None = None,
    coupons: Iterable[Coupon] | None = None,
) -> int:
    """The subscription's MRR now (``mrr_from`` on its row).

    ``price`` is its plan when the row does not show it yet (a plan switched in this
    transaction); ``coupons`` its redeemed coupons when one is being added.
    """
    return mrr_from(
        status=subscription.status,
        plan=price or subscription.price,
        quantity=subscription.quantity,
        items=[(item.price, item.quantity) for item in subscription.items],
        coupons=[d.coupon for d in subscription.discounts] if coupons is None else coupons,
    )


# -- subscription changes (the kinds that carry MRR) ---------------------------------------


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _record_mrr(
    session: Session,
    subscription: Subscription,
    kind: EntryKind,
    key: str,
    *,
    occurred_at: datetime,
    actor: str,
    status_before: str,
    price: Price | None = None,
    coupons: Iterable[Coupon] | None = None,
    details: Mapping[str, str] | None = None,
) -> LedgerRow:
    latest = ledger_sql.latest_mrr_entry(session, subscription.id)
    plan = price or subscription.price
    return ledger_sql.append(
        session,
        key,
        kind=kind,
        occurred_at=occurred_at,
        recorded_at=recorded_at(occurred_at),
        customer_id=subscription.customer_id,
        subscription_id=subscription.id,
        currency=plan.currency,
        mrr_before=latest.mrr_after if latest is not None else 0,
        mrr_after=mrr_of(subscription, price=price, coupons=coupons),
        status_before=status_before,
        status_after=subscription.status,
        actor=actor,
        details=dict(details or {}),
    )


def record_started(
    session: Session, subscription: Subscription, price: Price, *, start_at: datetime | None
) -> LedgerRow:
    """A new subscription (trialing: MRR 0 until the trial converts), dated ``start_at``,
    else now: its workflow starts at once and takes that moment as its start."""
    return _record_mrr(
        session, subscription, EntryKind.SUBSCRIPTION_STARTED,
        f"{EntryKind.SUBSCRIPTION_STARTED}:{subscription.id}",
        occurred_at=start_at or utcnow(), actor="system", status_before="", price=price,
        details={"price_id": price.id, "quantity": str(subscription.quantity)},
    )  # fmt: skip


def forget_started(session: Session, subscription_id: str) -> None:
    """The start of a subscription whose workflow never started: it never existed."""
    ledger_sql.discard(session, f"{EntryKind.SUBSCRIPTION_STARTED}:{subscription_id}")


def status_kind(before: str, after: str) -> EntryKind:
    """The entry a status change writes."""
    if after == SubscriptionStatus.CANCELED:
        return EntryKind.CANCELED
    if after == SubscriptionStatus.PAUSED:
        return EntryKind.PAUSED
    if before == SubscriptionStatus.PAUSED:
        return EntryKind.RESUMED
    if before == SubscriptionStatus.TRIALING and after == SubscriptionStatus.ACTIVE:
        return EntryKind.TRIAL_CONVERTED
    return EntryKind.STATUS_CHANGED


def status_key(kind: EntryKind, subscription_id: str, to: str, occurred_at: datetime) -> str:
    """A status change's key: a subscription starts, converts and ends once; it may be
    paused, resumed or go past due many times, each at its own moment."""
    if kind in (EntryKind.CANCELED, EntryKind.TRIAL_CONVERTED):
        return f"{kind}:{subscription_id}"
    if kind is EntryKind.STATUS_CHANGED:
        return f"{kind}:{subscription_id}:{to}:{_iso(occurred_at)}"
    return f"{kind}:{subscription_id}:{_iso(occurred_at)}"


def record_status_change(
    session: Session, subscription: Subscription, status_before: str, change: SubscriptionChange
) -> LedgerRow:
    """The subscription's status moved from ``status_before`` to its row's, by ``change``
    (a cancel at period end is recorded when it takes effect, at the period end)."""
    kind = status_kind(status_before, subscription.status)
    at = change.occurred_at
    return _record_mrr(
        session, subscription, kind, status_key(kind, subscription.id, subscription.status, at),
        occurred_at=at, actor=change.actor, status_before=status_before,
        details={"reason": change.reason} if change.reason else None,
    )  # fmt: skip


def record_plan_change(
    session: Session, subscription: Subscription, old: Price, new: Price, *,
    occurred_at: datetime, actor: str, reason: str = "",
) -> LedgerRow:  # fmt: skip
    """The plan switched from ``old`` to ``new`` (now, or at the period end it waited for)."""
    details = {"from_price": old.id, "to_price": new.id, **({"reason": reason} if reason else {})}
    return _record_mrr(
        session, subscription, EntryKind.PLAN_CHANGED,
        f"{EntryKind.PLAN_CHANGED}:{subscription.id}:{new.id}:{_iso(occurred_at)}",
        occurred_at=occurred_at, actor=actor, status_before=subscription.status, price=new,
        details=details,
    )  # fmt: skip


def record_item_added(
    session: Session, subscription: Subscription, item_id: str, price: Price, *,
    occurred_at: datetime,
) -> LedgerRow | None:  # fmt: skip
    """A licensed add-on changes what the subscription bills each period (a metered one
    adds usage revenue, not MRR: nothing to record)."""
    if price.metric_id is not None:
        return None
    return _record_mrr(
        session, subscription, EntryKind.PLAN_CHANGED,
        f"{EntryKind.PLAN_CHANGED}:{subscription.id}:item:{item_id}",
        occurred_at=occurred_at, actor="system", status_before=subscription.status,
        details={"item_added": price.id},
    )  # fmt: skip


def record_coupon_applied(
    session: Session, subscription: Subscription, redemption_id: str, coupon: Coupon, *,
    occurred_at: datetime,
) -> LedgerRow:  # fmt: skip
    """A coupon redeemed (a ``forever`` one lowers MRR; ``once``/``repeating`` do not)."""
    held = [d.coupon for d in subscription.discounts if d.coupon_id != coupon.id]
    return _record_mrr(
        session, subscription, EntryKind.COUPON_APPLIED,
        f"{EntryKind.COUPON_APPLIED}:{redemption_id}",
        occurred_at=occurred_at, actor="system", status_before=subscription.status,
        coupons=[*held, coupon], details={"coupon": coupon.code, "duration": coupon.duration},
    )  # fmt: skip


def record_coupons_expired(
    session: Session, subscription: Subscription, *, occurred_at: datetime
) -> list[LedgerRow]:
    """The ``once`` and ``repeating`` coupons that no longer discount the period invoice
    about to be made: their last discounted period is over (recorded once each; MRR
    never counted them, so it stays). Asked before the invoice is added."""
    expired = []
    for redemption in subscription.discounts:
        coupon = redemption.coupon
        if coupon.duration == CouponDuration.FOREVER or applies(
            coupon_terms(coupon), period_index=coupon_periods_used(session, redemption)
        ):
            continue
        expired.append(
            _record_mrr(
                session, subscription, EntryKind.COUPON_EXPIRED,
                f"{EntryKind.COUPON_EXPIRED}:{redemption.id}",
                occurred_at=occurred_at, actor="system", status_before=subscription.status,
                details={"coupon": coupon.code, "duration": coupon.duration},
            )
        )  # fmt: skip
    return expired


# -- money: invoices, payments, credit notes, refunds ---------------------------------------


def _record_money(
    session: Session,
    invoice: Invoice,
    kind: EntryKind,
    key: str,
    *,
    occurred_at: datetime,
    amount: int,
    actor: str,
    status_before: str = "",
    status_after: str = "",
    **fields: object,
) -> LedgerRow:
    return ledger_sql.append(
        session,
        key,
        kind=kind,
        occurred_at=occurred_at,
        recorded_at=recorded_at(occurred_at),
        customer_id=invoice.customer_id,
        subscription_id=invoice.subscription_id,
        invoice_id=invoice.id,
        currency=invoice.currency,
        amount=amount,
        status_before=status_before,
        status_after=status_after,
        actor=actor,
        **fields,
    )


def record_finalized(
    session: Session, invoice: Invoice, *, occurred_at: datetime, actor: str
) -> LedgerRow:
    """An invoice numbered and opened: its total is invoiced, due from ``occurred_at``.

    ``details["usage_amount"]`` is its metered part (usage lines); ``amount_due`` what
    is left to charge after the customer's balance and any carry-forward.
    """
    usage = sum(line.amount for line in invoice.lines if line.kind == "usage")
    # Read before the row is flushed: the columns' defaults (0) are not set yet.
    credit, carried = invoice.credit_applied or 0, invoice.carried_forward or 0
    return _record_money(
        session, invoice, EntryKind.INVOICE_FINALIZED,
        f"{EntryKind.INVOICE_FINALIZED}:{invoice.id}",
        occurred_at=occurred_at, amount=invoice.total, actor=actor,
        status_before=InvoiceStatus.DRAFT, status_after=InvoiceStatus.OPEN, due_at=occurred_at,
        details={
            "number": invoice.number or "",
            "usage_amount": str(usage),
            "amount_due": str(invoice.total - credit - carried),
            "credit_applied": str(credit),
            "carried_forward": str(carried),
        },
    )  # fmt: skip


def dunning_step(attempt: int) -> str:
    """The ladder step of a payment attempt: "" for the first try, ``retry_<n>`` for the
    n-th retry, ``external`` for a payment made outside our charge (attempt 0)."""
    if attempt == 0:
        return "external"
    return "" if attempt == 1 else f"retry_{attempt - 1}"


def record_payment(
    session: Session,
    invoice: Invoice,
    attempt: PaymentAttempt,
    *,
    actor: str,
    status_before: str = "",
) -> list[LedgerRow]:
    """A payment attempt settled: ``payment.failed`` for a decline; ``payment.succeeded``
    and ``invoice.paid`` (the cash it took) for a success. Dated when attempted."""
    at, number, step = attempt.attempted_at, attempt.attempt, dunning_step(attempt.attempt)
    if attempt.status != "succeeded":
        return [
            _record_money(
                session, invoice, EntryKind.PAYMENT_FAILED,
                f"{EntryKind.PAYMENT_FAILED}:{attempt.business_key}",
                occurred_at=at, amount=attempt.amount, actor=actor, attempt=number,
                dunning_step=step, decline_code=attempt.decline_code or "",
                details={"message": attempt.failure_message or ""},
            )
        ]  # fmt: skip
    intent = {"payment_intent": attempt.stripe_payment_intent_id or ""}
    return [
        _record_money(
            session, invoice, EntryKind.PAYMENT_SUCCEEDED,
            f"{EntryKind.PAYMENT_SUCCEEDED}:{attempt.business_key}",
            occurred_at=at, amount=attempt.amount, actor=actor, attempt=number,
            dunning_step=step, details=intent,
        ),
        _record_money(
            session, invoice, EntryKind.INVOICE_PAID, f"{EntryKind.INVOICE_PAID}:{invoice.id}",
            occurred_at=at, amount=invoice.amount_paid, actor=actor, attempt=number,
            dunning_step=step, status_before=status_before, status_after=InvoiceStatus.PAID,
            details=intent,
        ),
    ]  # fmt: skip


def record_marked(
    session: Session, invoice: Invoice, *, status_before: str, occurred_at: datetime,
    actor: str, reason: str = "",
) -> LedgerRow | None:  # fmt: skip
    """An invoice voided or written off; the amount is what was left unpaid."""
    kind = _MARKED.get(InvoiceStatus(invoice.status))
    if kind is None:
        return None
    return _record_money(
        session, invoice, kind, f"{kind}:{invoice.id}",
        occurred_at=occurred_at, amount=invoice.amount_due, actor=actor,
        status_before=status_before, status_after=invoice.status,
        details={"reason": reason} if reason else {},
    )  # fmt: skip


def record_credit_note(
    session: Session, invoice: Invoice, note: CreditNote, *, occurred_at: datetime
) -> LedgerRow:
    """A credit note issued on a paid invoice (refunded or credited to the balance)."""
    return _record_money(
        session, invoice, EntryKind.CREDIT_NOTE_ISSUED, f"{EntryKind.CREDIT_NOTE_ISSUED}:{note.id}",
        occurred_at=occurred_at, amount=note.amount, actor=note.actor,
        details={"credit_note": note.number, "method": note.method, "reason": note.reason,
                 "tax_amount": str(note.tax_amount)},
    )  # fmt: skip


def record_refund(
    session: Session, invoice: Invoice, note: CreditNote, *, occurred_at: datetime
) -> LedgerRow:
    """The Stripe refund of a credit note made (the money back on the card)."""
    return _record_money(
        session, invoice, EntryKind.REFUND_CREATED, f"{EntryKind.REFUND_CREATED}:{note.id}",
        occurred_at=occurred_at, amount=note.amount, actor=note.actor,
        details={"credit_note": note.number, "refund": note.stripe_refund_id or ""},
    )  # fmt: skip


def record_notice(
    session: Session,
    kind: EntryKind,
    key: str,
    *,
    occurred_at: datetime,
    customer_id: str,
    subscription_id: str,
    currency: str,
    amount: int = 0,
    details: Mapping[str, str],
) -> LedgerRow:
    """An alert fired or a usage cap reached (``alert.triggered``, ``usage.cap_reached``).

    A notice moves no money and no MRR: ``amount`` is the bill the alert saw (0 for a
    usage alert), counted by no figure, and both MRR columns stay 0.
    """
    if kind not in (EntryKind.ALERT_TRIGGERED, EntryKind.USAGE_CAP_REACHED):
        raise ValueError(f"{kind} is not a notice")
    return ledger_sql.append(
        session,
        key,
        kind=kind,
        occurred_at=occurred_at,
        recorded_at=recorded_at(occurred_at),
        customer_id=customer_id,
        subscription_id=subscription_id,
        currency=currency,
        amount=amount,
        actor="system",
        details=dict(details),
    )
