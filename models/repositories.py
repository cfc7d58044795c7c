"""The SQL kakin runs, one function per question. Callers own the session and commit."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar, overload

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, text, update
from sqlalchemy.orm import Session

from models.payloads import InvoiceStatus, SubscriptionStatus
from models.tables import (
    ApiKey,
    AuditLog,
    BillableMetric,
    Coupon,
    CreditNote,
    CreditTransaction,
    Customer,
    EmailMessage,
    IdempotencyKey,
    Invoice,
    InvoiceNumberSequence,
    PaymentAttempt,
    Price,
    Subscription,
    TaxRate,
)


class NotFoundError(LookupError):
    """A row that must exist does not; the message names what was looked for."""


def new_id(prefix: str) -> str:
    """Opaque ids like ``sub_3f9c2a...``: unguessable and safe in URLs and logs."""
    return f"{prefix}_{secrets.token_hex(10)}"


T = TypeVar("T")


def _get(session: Session, model: type[T], key: str) -> T:
    row = session.get(model, key)
    if row is None:
        raise NotFoundError(f"{model.__name__.lower()} {key!r} does not exist")
    return row


def customer(session: Session, customer_id: str) -> Customer:
    return _get(session, Customer, customer_id)


def price(session: Session, price_id: str) -> Price:
    return _get(session, Price, price_id)


def subscription(session: Session, subscription_id: str) -> Subscription:
    return _get(session, Subscription, subscription_id)


def invoice(session: Session, invoice_id: str) -> Invoice:
    return _get(session, Invoice, invoice_id)


def invoice_for_update(session: Session, invoice_id: str) -> Invoice:
    """The invoice, row-locked until commit: concurrent tries of one step queue up."""
    row = session.get(Invoice, invoice_id, with_for_update=True, populate_existing=True)
    if row is None:
        raise NotFoundError(f"invoice {invoice_id!r} does not exist")
    return row


@overload
def invoice_by_key(session: Session, key: str, *, required: Literal[True]) -> Invoice: ...
@overload
def invoice_by_key(session: Session, key: str, *, required: bool = False) -> Invoice | None: ...
def invoice_by_key(session: Session, key: str, *, required: bool = False) -> Invoice | None:
    row = session.scalars(select(Invoice).where(Invoice.business_key == key)).one_or_none()
    if row is None and required:
        raise NotFoundError(f"no invoice with business key {key!r}")
    return row


@overload
def payment_attempt(session: Session, key: str, *, required: Literal[True]) -> PaymentAttempt: ...
@overload
def payment_attempt(
    session: Session, key: str, *, required: bool = False
) -> PaymentAttempt | None: ...
def payment_attempt(session: Session, key: str, *, required: bool = False) -> PaymentAttempt | None:
    row = session.scalars(
        select(PaymentAttempt).where(PaymentAttempt.business_key == key)
    ).one_or_none()
    if row is None and required:
        raise NotFoundError(f"no payment attempt with business key {key!r}")
    return row


def email_by_key(session: Session, key: str) -> EmailMessage | None:
    return session.scalars(
        select(EmailMessage).where(EmailMessage.business_key == key)
    ).one_or_none()


def new_email(session: Session, **fields: Any) -> EmailMessage:
    """Insert a pending email row; flushes so a duplicate key fails here, not later."""
    row = EmailMessage(status="pending", **fields)
    session.add(row)
    session.flush()
    return row


def take_invoice_number(session: Session, finalized_at: datetime) -> str:
    return take_number(session, "invoice", "INV")


def take_number(session: Session, series: str, prefix: str) -> str:
    """Take the next number of a series (``INV-000042``), locked until the caller commits.

    ``FOR UPDATE`` serializes the takers on PostgreSQL (SQLite serializes writers
    anyway); because the increment commits with the document, an aborted transaction
    gives its number back and the series stays gapless.
    """
    sequence = session.scalars(
        select(InvoiceNumberSequence)
        .where(InvoiceNumberSequence.series == series)
        .with_for_update()
    ).one()
    value = sequence.next_value
    sequence.next_value = value + 1
    return f"{prefix}-{value:06d}"


def audited(session: Session, entity_id: str, action: str, occurred_at: datetime) -> bool:
    """Whether this exact event is in the audit log already (a retried activity)."""
    return (
        session.scalars(
            select(AuditLog.id).where(
                AuditLog.entity_id == entity_id,
                AuditLog.action == action,
                AuditLog.occurred_at == occurred_at,
            )
        ).first()
        is not None
    )


def audit(
    session: Session,
    *,
    entity_type: str,
    entity_id: str,
    action: str,
    actor: str,
    occurred_at: datetime,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditLog(
            entity_type=entity_type,
            entity_id=entity_id,
            action=action,
            from_status=from_status,
            to_status=to_status,
            actor=actor,
            reason=reason,
            details=details or {},
            occurred_at=occurred_at,
        )
    )


def audit_entries(
    session: Session,
    *,
    limit: int,
    starting_after: int | None = None,
    subscription_id: str | None = None,
    customer_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[list[AuditLog], bool]:
    """One page of the audit log, newest first (as recorded: by id), and whether more follow.

    ``subscription_id``: the subscription's rows and its invoices'. ``customer_id``: the
    customer's rows, its subscriptions' and its invoices'. ``actor``: exactly that actor,
    or an API key's rows by its id alone (``api-key:key_1`` matches ``api-key:key_1 (shop
    backend)``). ``since``/``until``: when it happened (``occurred_at``), from ``since``
    included to ``until`` excluded. ``starting_after``: the last id of the previous page.
    """
    entity, entity_id = AuditLog.entity_type, AuditLog.entity_id
    conditions: list[ColumnElement[bool]] = []
    if subscription_id:
        invoices = select(Invoice.id).where(Invoice.subscription_id == subscription_id)
        conditions.append(
            or_(
                and_(entity == "subscription", entity_id == subscription_id),
                and_(entity == "invoice", entity_id.in_(invoices)),
            )
        )
    if customer_id:
        subscriptions = select(Subscription.id).where(Subscription.customer_id == customer_id)
        invoices = select(Invoice.id).where(Invoice.customer_id == customer_id)
        conditions.append(
            or_(
                and_(entity == "customer", entity_id == customer_id),
                and_(entity == "subscription", entity_id.in_(subscriptions)),
                and_(entity == "invoice", entity_id.in_(invoices)),
            )
        )
    if actor:
        conditions.append(
            or_(AuditLog.actor == actor, AuditLog.actor.startswith(f"{actor} (", autoescape=True))
        )
    if action:
        conditions.append(AuditLog.action == action)
    if since is not None:
        conditions.append(AuditLog.occurred_at >= since)
    if until is not None:
        conditions.append(AuditLog.occurred_at < until)
    if starting_after is not None:
        if session.get(AuditLog, starting_after) is None:
            raise InvalidCursorError(f"starting_after {starting_after!r} is not an id in this list")
        conditions.append(AuditLog.id < starting_after)
    query = select(AuditLog).where(*conditions).order_by(AuditLog.id.desc()).limit(limit + 1)
    rows = list(session.scalars(query))
    return rows[:limit], len(rows) > limit


# -- lists (newest first, cursor pagination) ----------------------------------------


class InvalidCursorError(ValueError):
    """``starting_after`` names no row of the list being paged."""


L = TypeVar("L")


def page(
    session: Session,
    model: type[L],
    *,
    limit: int,
    starting_after: Any = None,
    where: ColumnElement[bool] | None = None,
) -> tuple[list[L], bool]:
    """One page of ``model`` rows, newest first, and whether more follow.

    ``starting_after`` is the id of the last row of the previous page; the order is
    ``(created_at, id)`` descending, so pages never skip or repeat a row.
    """
    columns: Any = model
    query = select(model).order_by(columns.created_at.desc(), columns.id.desc())
    if where is not None:
        query = query.where(where)
    if starting_after is not None:
        cursor = session.get(model, starting_after)
        if cursor is None:
            raise InvalidCursorError(f"starting_after {starting_after!r} is not an id in this list")
        cursor_at = columns.created_at
        query = query.where(
            or_(
                cursor_at < cursor.created_at,  # type: ignore[attr-defined]
                and_(cursor_at == cursor.created_at, columns.id < cursor.id),  # type: ignore[attr-defined]
            )
        )
    rows = list(session.scalars(query.limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def customer_invoices(
    session: Session, customer_id: str, *, limit: int, starting_after: str | None
) -> tuple[list[Invoice], bool]:
    return page(
        session,
        Invoice,
        limit=limit,
        starting_after=starting_after,
        where=Invoice.customer_id == customer_id,
    )


def customer_payments(
    session: Session, customer_id: str, *, limit: int, starting_after: int | None
) -> tuple[list[PaymentAttempt], bool]:
    invoices = select(Invoice.id).where(Invoice.customer_id == customer_id)
    return page(
        session,
        PaymentAttempt,
        limit=limit,
        starting_after=starting_after,
        where=PaymentAttempt.invoice_id.in_(invoices),
    )


def ping(session: Session) -> None:
    """``SELECT 1``: raises when the database cannot be reached."""
    session.execute(text("SELECT 1"))


# -- API keys --------------------------------------------------------------------------


def api_key_by_hash(session: Session, secret_hash: str) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.secret_hash == secret_hash)).one_or_none()


def api_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)))


def api_key(session: Session, key_id: str) -> ApiKey:
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFoundError(f"API key {key_id!r} does not exist")
    return row


# -- subscriptions and invoices lists (the HTTP API) -------------------------------------


def _all(*conditions: ColumnElement[bool] | None) -> ColumnElement[bool] | None:
    present = [c for c in conditions if c is not None]
    return and_(*present) if present else None


def subscriptions(
    session: Session,
    *,
    limit: int,
    starting_after: str | None = None,
    status: str | None = None,
    customer_id: str | None = None,
    price_id: str | None = None,
) -> tuple[list[Subscription], bool]:
    return page(
        session,
        Subscription,
        limit=limit,
        starting_after=starting_after,
        where=_all(
            Subscription.status == status if status else None,
            Subscription.customer_id == customer_id if customer_id else None,
            Subscription.price_id == price_id if price_id else None,
        ),
    )


def invoices(
    session: Session,
    *,
    limit: int,
    starting_after: str | None = None,
    status: str | None = None,
    customer_id: str | None = None,
    subscription_id: str | None = None,
) -> tuple[list[Invoice], bool]:
    return page(
        session,
        Invoice,
        limit=limit,
        starting_after=starting_after,
        where=_all(
            Invoice.status == status if status else None,
            Invoice.customer_id == customer_id if customer_id else None,
            Invoice.subscription_id == subscription_id if subscription_id else None,
        ),
    )


# -- idempotency keys ----------------------------------------------------------------------


def idempotency_key(session: Session, api_key_id: str, key: str) -> IdempotencyKey | None:
    return session.scalars(
        select(IdempotencyKey).where(
            IdempotencyKey.api_key_id == api_key_id, IdempotencyKey.key == key
        )
    ).one_or_none()


def delete_idempotency_keys(
    session: Session,
    *,
    created_before: datetime,
    api_key_id: str | None = None,
    key: str | None = None,
) -> int:
    """Delete the idempotency keys created before ``created_before`` (all of them, or
    the one ``key`` of ``api_key_id``); returns how many went.

    A bulk DELETE rather than ``session.delete``: when two requests remove the same
    row at once, the second deletes nothing instead of failing.
    """
    query = delete(IdempotencyKey).where(IdempotencyKey.created_at < created_before)
    if api_key_id is not None:
        query = query.where(IdempotencyKey.api_key_id == api_key_id)
    if key is not None:
        query = query.where(IdempotencyKey.key == key)
    result = session.execute(query)
    return int(getattr(result, "rowcount", 0) or 0)


# -- usage billing: credit, coupons, tax rates, credit notes -------------------------------


def credit_balance(session: Session, customer_id: str, currency: str) -> int:
    """What the customer's credit notes left to spend on their next invoices."""
    total = session.scalar(
        select(func.coalesce(func.sum(CreditTransaction.amount), 0)).where(
            CreditTransaction.customer_id == customer_id, CreditTransaction.currency == currency
        )
    )
    return int(total or 0)


def period_invoices_since(session: Session, subscription_id: str, since: datetime) -> int:
    """How many period invoices (not prorations) the subscription got since ``since``."""
    count = session.scalar(
        select(func.count()).where(
            Invoice.subscription_id == subscription_id,
            Invoice.business_key.like(f"invoice:{subscription_id}:%"),
            Invoice.created_at >= since,
        )
    )
    return int(count or 0)


def tax_rates(session: Session, ids: set[str]) -> dict[str, TaxRate]:
    if not ids:
        return {}
    return {row.id: row for row in session.scalars(select(TaxRate).where(TaxRate.id.in_(ids)))}


def metric_by_code(session: Session, code: str) -> BillableMetric | None:
    return session.scalars(select(BillableMetric).where(BillableMetric.code == code)).first()


def coupon_by_code(session: Session, code: str) -> Coupon | None:
    return session.scalars(select(Coupon).where(Coupon.code == code)).first()


def credit_notes_of(session: Session, invoice_id: str) -> list[CreditNote]:
    return list(
        session.scalars(
            select(CreditNote)
            .where(CreditNote.invoice_id == invoice_id)
            .order_by(CreditNote.created_at, CreditNote.number)
        )
    )


def paid_intent(session: Session, invoice_id: str) -> str | None:
    """The PaymentIntent that paid the invoice, if our charge did."""
    return session.scalar(
        select(PaymentAttempt.stripe_payment_intent_id).where(
            PaymentAttempt.invoice_id == invoice_id, PaymentAttempt.status == "succeeded"
        )
    )


def live_subscription_ids(session: Session, customer_id: str) -> list[str]:
    """The customer's subscriptions that are not canceled."""
    return list(
        session.scalars(
            select(Subscription.id).where(
                Subscription.customer_id == customer_id,
                Subscription.status != SubscriptionStatus.CANCELED,
            )
        )
    )


def take_coupon_redemption(session: Session, coupon_id: str) -> bool:
    """Count one more redemption unless the coupon has reached its limit; True if counted.

    One conditional UPDATE, so two redemptions at once cannot both take the last one.
    """
    taken = session.execute(
        update(Coupon)
        .where(Coupon.id == coupon_id)
        .where(
            (Coupon.max_redemptions.is_(None)) | (Coupon.times_redeemed < Coupon.max_redemptions)
        )
        .values(times_redeemed=Coupon.times_redeemed + 1)
    )
    return bool(getattr(taken, "rowcount", 0))


# -- what happened since: the feed `kakin up`'s demo narrates (kakin.services.feed) ------


def audit_entries_after(session: Session, floor: int) -> list[AuditLog]:
    """Audit entries with an id above ``floor``, oldest first."""
    return list(session.scalars(select(AuditLog).where(AuditLog.id > floor).order_by(AuditLog.id)))


def declined_attempts_after(
    session: Session, floor: int, subscription_ids: Sequence[str]
) -> list[PaymentAttempt]:
    """Declined charges of these subscriptions' invoices with an id above ``floor``."""
    return list(
        session.scalars(
            select(PaymentAttempt)
            .join(Invoice, Invoice.id == PaymentAttempt.invoice_id)
            .where(
                PaymentAttempt.id > floor,
                PaymentAttempt.status == "declined",
                Invoice.subscription_id.in_(subscription_ids),
            )
            .order_by(PaymentAttempt.id)
        )
    )


def sent_emails_after(
    session: Session, floor: int, subscription_ids: Sequence[str]
) -> list[EmailMessage]:
    """Sent emails about these subscriptions with an id above ``floor``, oldest first."""
    return list(
        session.scalars(
            select(EmailMessage)
            .where(
                EmailMessage.id > floor,
                EmailMessage.status == "sent",
                EmailMessage.subscription_id.in_(subscription_ids),
            )
            .order_by(EmailMessage.id)
        )
    )


def paid_invoice_counts(session: Session, subscription_ids: Iterable[str]) -> dict[str, int]:
    """Paid invoices per subscription (a subscription with none is left out)."""
    rows = session.execute(
        select(Invoice.subscription_id, func.count())
        .where(Invoice.subscription_id.in_(subscription_ids), Invoice.status == InvoiceStatus.PAID)
        .group_by(Invoice.subscription_id)
    ).all()
    return {sub_id: int(count) for sub_id, count in rows}


def subscription_statuses(session: Session, subscription_ids: Iterable[str]) -> dict[str, str]:
    """The stored status of each of these subscriptions."""
    rows = session.execute(
        select(Subscription.id, Subscription.status).where(Subscription.id.in_(subscription_ids))
    ).all()
    return {sub_id: status for sub_id, status in rows}


def reached_status(
    session: Session, entity_id: str, status: str, *, actor: str | None = None
) -> bool:
    """Whether the audit log records ``entity_id`` moving to ``status`` (by ``actor``)."""
    conditions = [AuditLog.entity_id == entity_id, AuditLog.to_status == status]
    if actor is not None:
        conditions.append(AuditLog.actor == actor)
    return bool(session.scalar(select(func.count()).where(*conditions)))
