"""SQLAlchemy 2 tables. Money is ``BigInteger`` minor units; times are aware UTC.

Exactly-once lives here as much as in code: every side effect has a ``business_key``
with a unique constraint, so a retried activity finds the row its first try wrote.
Card numbers are never stored: a customer holds only Stripe's customer and payment
method ids.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware UTC datetimes; gives them back aware on SQLite too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """Wall clock for *recording* times (created_at); never for billing dates."""
    return datetime.now(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    locale: Mapped[str] = mapped_column(String(10), default="en")
    currency: Mapped[str] = mapped_column(String(3))
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255))
    stripe_payment_method_id: Mapped[str | None] = mapped_column(String(255))
    # Tax rates applied to this customer's lines whose price names none (ids of tax_rates).
    tax_rate_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Product(Base):
    __tablename__ = "products"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Price(Base):
    __tablename__ = "prices"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"))
    nickname: Mapped[str] = mapped_column(String(200), default="")
    currency: Mapped[str] = mapped_column(String(3))
    unit_amount: Mapped[int] = mapped_column(BigInteger)
    interval: Mapped[str] = mapped_column(String(8))
    interval_count: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # flat | per_unit | graduated | volume | package (billing/rating.py). A price with a
    # metric is metered: billed in arrears on the period's usage; others in advance.
    pricing_model: Mapped[str] = mapped_column(String(20), default="flat")
    metric_id: Mapped[str | None] = mapped_column(ForeignKey("billable_metrics.id"))
    # Per-unit and package prices may be finer than the minor unit ("0.015" yen per
    # call); kept as a decimal string so nothing rounds before the invoice total.
    unit_amount_decimal: Mapped[str | None] = mapped_column(String(40))
    package_size: Mapped[int | None] = mapped_column(Integer)
    # [{"up_to": "1000" | null, "unit_amount": "0.5", "flat_amount": 0}, ...]
    tiers: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    tax_rate_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    product: Mapped[Product] = relationship()
    metric: Mapped[BillableMetric | None] = relationship()


class BillableMetric(Base):
    """What usage events of one code add up to over a period (billing/metering.py)."""

    __tablename__ = "billable_metrics"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    code: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    aggregation: Mapped[str] = mapped_column(String(20))  # count|sum|max|unique_count|latest
    # The event property aggregated; None for count.
    property: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TaxRate(Base):
    __tablename__ = "tax_rates"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))  # 消費税, VAT, Sales tax
    percentage: Mapped[str] = mapped_column(String(12))  # a decimal string: "10", "8"
    inclusive: Mapped[bool] = mapped_column(Boolean, default=False)
    jurisdiction: Mapped[str] = mapped_column(String(100), default="")
    # Japan's reduced rate (軽減税率, 8% on food and newspapers): its lines carry ※.
    reduced: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Coupon(Base):
    __tablename__ = "coupons"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    code: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    percent_off: Mapped[str | None] = mapped_column(String(12))  # decimal string
    amount_off: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))  # with amount_off
    duration: Mapped[str] = mapped_column(String(10))  # once | repeating | forever
    duration_periods: Mapped[int | None] = mapped_column(Integer)  # with repeating
    redeem_by: Mapped[datetime | None] = mapped_column(UTCDateTime())
    max_redemptions: Mapped[int | None] = mapped_column(Integer)
    times_redeemed: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Subscription(Base):
    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    price_id: Mapped[str] = mapped_column(ForeignKey("prices.id"))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(20), index=True)
    billing_cycle_anchor: Mapped[datetime | None] = mapped_column(UTCDateTime())
    current_period_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    current_period_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    trial_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_reason: Mapped[str] = mapped_column(Text, default="")
    workflow_id: Mapped[str] = mapped_column(String(100), unique=True)
    test_clock: Mapped[bool] = mapped_column(Boolean, default=False)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    customer: Mapped[Customer] = relationship()
    price: Mapped[Price] = relationship()
    items: Mapped[list[SubscriptionItem]] = relationship(
        order_by="SubscriptionItem.created_at", cascade="all, delete-orphan"
    )
    discounts: Mapped[list[SubscriptionDiscount]] = relationship(
        order_by="SubscriptionDiscount.redeemed_at", cascade="all, delete-orphan"
    )


class SubscriptionItem(Base):
    """A price a subscription holds besides its plan (``price_id``): metered charges."""

    __tablename__ = "subscription_items"
    __table_args__ = (UniqueConstraint("subscription_id", "price_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    price_id: Mapped[str] = mapped_column(ForeignKey("prices.id"))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    price: Mapped[Price] = relationship()


class SubscriptionDiscount(Base):
    """A coupon redeemed on a subscription. How many periods it has covered is read
    from the invoices that carry it, so a retried invoice never uses a period twice."""

    __tablename__ = "subscription_discounts"
    __table_args__ = (UniqueConstraint("subscription_id", "coupon_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    coupon_id: Mapped[str] = mapped_column(ForeignKey("coupons.id"))
    redeemed_at: Mapped[datetime] = mapped_column(UTCDateTime())

    coupon: Mapped[Coupon] = relationship()


class UsageEvent(Base):
    """One usage event, accepted once per (customer, event id).

    ``value`` is the aggregated property scaled by 10**6 (``billing.metering``): exact
    integer sums and maxima in SQL on PostgreSQL and SQLite alike, where a NUMERIC
    column would be a float on SQLite.
    """

    __tablename__ = "usage_events"
    __table_args__ = (
        UniqueConstraint("customer_id", "event_id"),
        Index("ix_usage_events_period", "subscription_id", "metric_id", "timestamp"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(String(255))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"))
    metric_id: Mapped[str] = mapped_column(ForeignKey("billable_metrics.id"))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    value: Mapped[int | None] = mapped_column(BigInteger)  # property x 10**6
    group_key: Mapped[str | None] = mapped_column(String(255))  # for unique_count
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Invoice(Base):
    __tablename__ = "invoices"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # invoice:<subscription id>:<period index> -- one invoice per period, however
    # often the activity that creates it is retried.
    business_key: Mapped[str] = mapped_column(String(200), unique=True)
    # Gapless and sequential, assigned in the same transaction that finalizes.
    number: Mapped[str | None] = mapped_column(String(40), unique=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[int] = mapped_column(BigInteger, default=0)
    discount_total: Mapped[int] = mapped_column(BigInteger, default=0)
    tax_total: Mapped[int] = mapped_column(BigInteger, default=0)  # exclusive and inclusive
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    # The customer's balance used by this invoice: credit (from credit notes) spent, or
    # negative, a debit carried from an earlier invoice. Charged: total - credit.
    credit_applied: Mapped[int] = mapped_column(BigInteger, default=0)
    # Positive but below Stripe's minimum charge (billing.stripe_rules): not charged,
    # moved to the customer's balance as a debit that the next invoice collects.
    carried_forward: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    # Per tax rate: [{"tax_rate_id", "name", "percentage", "inclusive", "reduced",
    # "taxable", "tax"}] -- the qualified invoice's subtotal and tax per rate.
    tax_breakdown: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # The seller's registration number (T + 13 digits) as it was when finalized.
    registration_number: Mapped[str] = mapped_column(String(20), default="")
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime] = mapped_column(UTCDateTime())
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    html: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    lines: Mapped[list[InvoiceLine]] = relationship(
        back_populates="invoice", order_by="InvoiceLine.position", cascade="all, delete-orphan"
    )
    customer: Mapped[Customer] = relationship()
    subscription: Mapped[Subscription] = relationship()

    @property
    def amount_due(self) -> int:
        return self.total - self.credit_applied - self.carried_forward - self.amount_paid


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(500))
    unit_amount: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime] = mapped_column(UTCDateTime())
    # subscription (the plan and add-ons, in advance) | usage (in arrears) | proration
    # | discount | rounding (to the step Stripe charges the currency in)
    kind: Mapped[str] = mapped_column(String(20), default="subscription")
    # Metered quantity as a decimal string ("12.5"); ``quantity`` holds seats.
    usage_quantity: Mapped[str | None] = mapped_column(String(60))
    tax_rate_id: Mapped[str | None] = mapped_column(String(40))
    # Tiers, metric, coupon: how the amount was reached, for the reader of the invoice.
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    invoice: Mapped[Invoice] = relationship(back_populates="lines")


class CreditNote(Base):
    """Money given back on a finalized invoice: refunded through Stripe or kept as credit."""

    __tablename__ = "credit_notes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)  # series CN, gapless
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)  # tax included
    tax_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    # duplicate | fraudulent | order_change | product_unsatisfactory (as Stripe)
    reason: Mapped[str] = mapped_column(String(40))
    memo: Mapped[str] = mapped_column(Text, default="")  # for the customer: why, in words
    method: Mapped[str] = mapped_column(String(10))  # refund | credit
    status: Mapped[str] = mapped_column(String(20))  # pending_refund | refunded | credited
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255))
    actor: Mapped[str] = mapped_column(String(200))
    # Per tax group and rate (billing.credit_notes): a return invoice (返還インボイス)
    # shows the credited amount and tax per rate, and the next note splits the rest.
    breakdown: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    invoice: Mapped[Invoice] = relationship()


class CreditTransaction(Base):
    """A customer's balance, as a ledger: + from credit notes, - used by invoices.

    A negative balance is a debit: an invoice below Stripe's minimum charge moved its
    amount here (``carried:<invoice key>``), and the next invoice adds it.
    """

    __tablename__ = "credit_transactions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # credit:<credit note id> or applied:<invoice id> -- one entry per business event.
    business_key: Mapped[str] = mapped_column(String(200), unique=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    credit_note_id: Mapped[str | None] = mapped_column(String(40))
    invoice_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class InvoiceNumberSequence(Base):
    """One row per series; locked while a number is taken, so numbers have no gaps."""

    __tablename__ = "invoice_number_sequences"

    series: Mapped[str] = mapped_column(String(20), primary_key=True)
    next_value: Mapped[int] = mapped_column(BigInteger)


class PaymentAttempt(Base):
    __tablename__ = "payment_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # charge:<invoice id>:<attempt> -- a dunning retry is a new attempt (new key); a
    # retried activity is the same attempt and finds this row.
    business_key: Mapped[str] = mapped_column(String(200), unique=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20))  # pending | succeeded | declined
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    decline_code: Mapped[str | None] = mapped_column(String(100))
    failure_message: Mapped[str | None] = mapped_column(Text)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class EmailMessage(Base):
    __tablename__ = "emails"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # email:<kind>:<invoice or subscription>:<step> -- one email per business event.
    business_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    subscription_id: Mapped[str | None] = mapped_column(String(40), index=True)
    invoice_id: Mapped[str | None] = mapped_column(String(40), index=True)
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    locale: Mapped[str] = mapped_column(String(10))
    # pending | sending (handed to the provider, not yet confirmed) | sent
    status: Mapped[str] = mapped_column(String(20))
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entity_type: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str] = mapped_column(String(40), index=True)
    action: Mapped[str] = mapped_column(String(60))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())  # billing time
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiKey(Base):
    """A key for the HTTP API. Only the SHA-256 of the secret is stored, never the secret.

    The key reads ``kk_<role>_<random>``; ``prefix`` (its first characters) is shown in
    listings so people can tell keys apart without the secret.
    """

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))  # service | support | admin
    prefix: Mapped[str] = mapped_column(String(40))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IdempotencyKey(Base):
    """An ``Idempotency-Key`` an API key has used, and the response it got.

    The row is inserted (and committed) *before* the work runs, with no response yet:
    the unique pair (API key, Idempotency-Key) makes a concurrent duplicate fail at
    the insert, so the work runs once. The response is stored when the work is done,
    and a replay with the same key and body gets it back unchanged.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("api_key_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
    key: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(500))
    request_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of the request body
    response_status: Mapped[int | None] = mapped_column(Integer)  # None: still processing
    response_body: Mapped[Any] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookEvent(Base):
    """A Stripe event, stored once by its id; processed_at is set once its signals went out.

    An event stored but not processed (Temporal was down) is processed again when
    Stripe redelivers it; a processed one is a replay and changes nothing. A delivery
    processes it only while it holds the claim (``claim_token`` until ``claimed_until``):
    a concurrent copy waits, and a claim left by a crashed process runs out.
    ``outcome`` says what the event did (or why it did nothing).
    """

    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # Stripe's evt_...
    type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[Any] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claim_token: Mapped[str | None] = mapped_column(String(40))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(String(200))


class LedgerRow(Base):
    """The billing ledger: one append-only row per change that moves money or MRR.

    Written in the same transaction as the change it records, so the figures can never
    disagree with the invoices and subscriptions. ``event_key`` names the change (like a
    business key) and is unique: a retried activity finds its first try's row. The
    columns are ``billing.analytics.ledger.LedgerEntry``'s fields, a public contract
    (outgoing webhooks carry them): add columns, never rename. Here rather than in a
    module of its own so that importing ``models.tables`` always brings every table.
    """

    __tablename__ = "billing_ledger"
    __table_args__ = (
        Index("ix_billing_ledger_currency_occurred_at", "currency", "occurred_at"),
        Index("ix_billing_ledger_subscription_id_id", "subscription_id", "id"),
        # The analytics reads (models.repositories.analytics), migration 0009.
        Index("ix_billing_ledger_currency_kind", "currency", "kind"),
        Index("ix_billing_ledger_invoice_id", "invoice_id"),
        # The entries booked since a moment (kakin.services.analytics_cache), 0012.
        Index("ix_billing_ledger_currency_recorded_at", "currency", "recorded_at"),
    )

    # SQLite numbers rows only for an INTEGER primary key.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())  # billing time
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())  # the same clock
    customer_id: Mapped[str] = mapped_column(String(40), index=True)
    subscription_id: Mapped[str] = mapped_column(String(40), default="")
    invoice_id: Mapped[str] = mapped_column(String(40), default="")
    currency: Mapped[str] = mapped_column(String(10))
    amount: Mapped[int] = mapped_column(BigInteger, default=0)
    mrr_before: Mapped[int] = mapped_column(BigInteger, default=0)
    mrr_after: Mapped[int] = mapped_column(BigInteger, default=0)
    status_before: Mapped[str] = mapped_column(String(20), default="")
    status_after: Mapped[str] = mapped_column(String(20), default="")
    actor: Mapped[str] = mapped_column(String(200), default="system")
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    decline_code: Mapped[str] = mapped_column(String(64), default="")
    dunning_step: Mapped[str] = mapped_column(String(40), default="")
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    details: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    corrects: Mapped[int] = mapped_column(BigInteger, default=0)


class ExchangeRateRow(Base):
    """A rate the operator entered: 1 ``currency`` = ``rate`` ``reporting_currency``,
    from ``effective_from`` (a date on the reporting calendar) until the next one.

    Never fetched: the figures convert only with rates someone typed in. ``rate`` is the
    exact decimal string entered (``"150.12"``), never a float. Setting a rate again for
    the same pair and date replaces it, and ``entered_by``/``entered_at`` then say who
    replaced it and when.
    """

    __tablename__ = "exchange_rates"
    __table_args__ = (
        UniqueConstraint(
            "currency", "reporting_currency", "effective_from",
            name="uq_exchange_rates_pair_effective_from",
        ),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    currency: Mapped[str] = mapped_column(String(3))
    reporting_currency: Mapped[str] = mapped_column(String(3))
    rate: Mapped[str] = mapped_column(String(40))
    effective_from: Mapped[date] = mapped_column(Date)
    entered_by: Mapped[str] = mapped_column(String(200))
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
