"""How a subscription reads: the stored row, its workflow's live status, and the
answers to what is asked of it (cancel, plan change preview, coupons and items)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, Field

from kakin.views.common import columns
from models.payloads import OutstandingInvoice, StatusView
from models.tables import Subscription

BILLING_TIME = "billing time (differs from wall time under a test clock)"


class SubscriptionOut(BaseModel):
    object: Literal["subscription"] = "subscription"
    id: str
    customer_id: str
    price_id: str
    quantity: int
    status: str
    billing_cycle_anchor: datetime | None
    current_period_start: datetime | None
    current_period_end: datetime | None
    trial_end: datetime | None
    cancel_at_period_end: bool
    canceled_at: datetime | None
    cancel_reason: str
    workflow_id: str
    metadata: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, row: Subscription) -> SubscriptionOut:
        # ``metadata`` on a row is SQLAlchemy's; the column is ``metadata_``.
        return cls(**columns(row, cls, metadata=dict(row.metadata_ or {})))


class SubscriptionSummary(SubscriptionOut):
    """The stored subscription with what a person reads beside it: whose it is, and the
    plan by name and amount (the console's lists and pages)."""

    customer_name: str
    customer_email: str
    time_zone: str  # the customer's: the calendar its dates are shown in
    plan_name: str
    unit_amount: int
    currency: str
    interval: str
    interval_count: int

    @classmethod
    def of(cls, row: Subscription) -> SubscriptionSummary:
        customer, price = row.customer, row.price
        plan = price.product.name + (f" · {price.nickname}" if price.nickname else "")
        return cls(
            **SubscriptionOut.of(row).model_dump(),
            customer_name=customer.name,
            customer_email=customer.email,
            time_zone=customer.time_zone or "UTC",
            plan_name=plan,
            unit_amount=price.unit_amount,
            currency=price.currency,
            interval=price.interval,
            interval_count=price.interval_count,
        )


class OutstandingInvoiceOut(BaseModel):
    invoice_id: str
    number: str | None
    amount_due: int
    currency: str

    @classmethod
    def maybe(cls, outstanding: OutstandingInvoice | None) -> OutstandingInvoiceOut | None:
        return None if outstanding is None else cls(**vars(outstanding))


class LiveStatus(BaseModel):
    """The workflow's answer to the ``status`` query, as it stands now."""

    status: str
    current_period_start: datetime | None
    current_period_end: datetime | None
    next_action: str
    next_action_at: datetime | None
    dunning_step: int | None
    outstanding_invoice: OutstandingInvoiceOut | None
    cancel_at_period_end: bool
    now: datetime = Field(description=BILLING_TIME)

    @classmethod
    def of(cls, view: StatusView) -> Self:
        outstanding = OutstandingInvoiceOut.maybe(view.outstanding_invoice)
        return cls(**columns(view, cls, status=str(view.status), outstanding_invoice=outstanding))


class UsageCapOut(BaseModel):
    """A hard cap on a metric (set on a usage alert): once reached, further usage of the
    metric in the period is refused at ingestion, event by event."""

    alert_id: str
    metric: str
    cap: str
    used: str | None
    reached: bool


class SubscriptionDetail(SubscriptionOut):
    """The stored subscription (every top-level field is the row's) and its live status."""

    live: LiveStatus | None = Field(
        description="the running workflow's status query, which may be a moment ahead of "
        "the stored fields (a cancel it has not recorded yet); null when it cannot be queried"
    )
    usage_caps: list[UsageCapOut] = Field(
        default_factory=list, description="hard caps on its usage, and whether reached"
    )


class StatusHead(BaseModel):
    """The first fields of ``SubscriptionStatusOut``, before the live status's."""

    object: Literal["subscription_status"] = "subscription_status"
    subscription_id: str


# Fields come in reverse MRO order: StatusHead's, then LiveStatus's, then these, which
# is the order the JSON has always had.
class SubscriptionStatusOut(LiveStatus, StatusHead):
    """The workflow's status right after a pause or resume (the ``status`` query's fields)."""

    price_id: str
    pending_price_id: str | None
    next_period_start: datetime | None = Field(
        description="the period the next renewal invoice bills (in advance)"
    )
    next_period_end: datetime | None


class CancelAccepted(BaseModel):
    object: Literal["cancel_request"] = "cancel_request"
    subscription_id: str
    reason: str
    at_period_end: bool
    requested_by: str


class PlanChangePreview(BaseModel):
    """What a change to ``price_id`` would do if asked now."""

    object: Literal["plan_change_preview"] = "plan_change_preview"
    price_id: str
    applies: Literal["now", "at_period_end"] = Field(
        description="now: a dearer price, charged the prorated net at once; "
        "at_period_end: a cheaper or equal one, nothing charged now"
    )
    credit: int = Field(description="unused time on the current price")
    charge: int = Field(description="the same time on the new price")
    net: int = Field(description="charge - credit, charged now")
    currency: str


class Redemption(BaseModel):
    id: str
    subscription_id: str
    coupon: str


class ItemOut(BaseModel):
    id: str
    subscription_id: str
    price_id: str
    quantity: int
