"""Bodies of the usage, tax, coupon, credit-note and upcoming-invoice endpoints.

Amounts are integers in the currency's minor unit; quantities and percentages that
may be fractional are decimal strings ("12.5", "0.015"), never floats.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from api.schemas import (
    CURRENCY_LENGTH,
    LINE_KINDS,
    MAX_AMOUNT,
    Amount,
    FromRow,
    Moment,
    Request,
    TaxOut,
    check_currency,
)
from billing.rounding import parse_decimal
from kakin.services.invoice_drafts import Draft, DraftLine
from kakin.services.usage import MAX_BATCH, EventResult

PROPERTY_KEY_LENGTH = 100
PROPERTIES_BYTES = 4096

Aggregation = Literal["count", "sum", "max", "unique_count", "latest"]
PricingModel = Literal["flat", "per_unit", "graduated", "volume", "package"]


def check_decimal(value: str | None) -> str | None:
    if value is not None:
        parse_decimal(value, what="the value")  # ValueError says what is wrong
    return value


# -- usage -------------------------------------------------------------------------------


class UsageEventBody(Request):
    event_id: str = Field(min_length=1, max_length=255, description="counted once per customer")
    metric: str = Field(min_length=1, max_length=100, description="the billable metric's code")
    timestamp: Moment
    properties: dict[str, Any] = Field(
        default_factory=dict,
        max_length=50,
        description="at most 50 keys of 1 to 100 characters, 4 KiB as JSON",
    )
    customer_id: str | None = Field(default=None, max_length=40)
    subscription_id: str | None = Field(default=None, max_length=40)

    @field_validator("properties")
    @classmethod
    def _properties(cls, value: dict[str, Any]) -> dict[str, Any]:
        if any(not key or len(key) > PROPERTY_KEY_LENGTH for key in value):
            raise ValueError(f"keys must be 1 to {PROPERTY_KEY_LENGTH} characters long")
        if len(json.dumps(value, ensure_ascii=False).encode()) > PROPERTIES_BYTES:
            raise ValueError(f"they are larger than {PROPERTIES_BYTES // 1024} KiB as JSON")
        return value


class UsageBatch(Request):
    """``{"events": [...]}`` with 1 to 1,000 events; a single event object also works."""

    events: list[UsageEventBody] = Field(min_length=1, max_length=MAX_BATCH)

    @model_validator(mode="before")
    @classmethod
    def _one_event(cls, data: Any) -> Any:
        # A lone event is a batch of one: one shape to validate, one set of messages.
        if isinstance(data, dict) and "events" not in data and "event_id" in data:
            return {"events": [data]}
        return data


class UsageResult(BaseModel):
    event_id: str
    status: Literal["accepted", "duplicate", "rejected"]
    reason: str = ""
    subscription_id: str | None = None

    @classmethod
    def of(cls, result: EventResult) -> UsageResult:
        return cls(
            event_id=result.event_id,
            status=result.status,
            reason=result.reason,
            subscription_id=result.subscription_id,
        )


class UsageReceipt(BaseModel):
    """Per event: accepted, a duplicate (already counted), or rejected with the reason."""

    accepted: int
    duplicates: int
    rejected: int
    results: list[UsageResult]


class LineOut(BaseModel):
    """One line, the same shape as a finalized invoice's (``api.schemas.InvoiceLineOut``)."""

    description: str
    kind: str = Field(description=LINE_KINDS)
    amount: int
    period_start: datetime
    period_end: datetime
    unit_amount: int
    quantity: int = Field(description="seats; a usage line's units are in usage_quantity")
    usage_quantity: str | None = Field(description="a usage line's units, a decimal string")
    tax_rate_ids: list[str]
    details: dict[str, Any] = Field(description="tiers, metric, coupon: how it was reached")

    @classmethod
    def of(cls, line: DraftLine) -> LineOut:
        return cls(
            description=line.description,
            kind=line.kind,
            amount=line.amount,
            period_start=line.period_start,
            period_end=line.period_end,
            unit_amount=line.unit_amount,
            quantity=line.quantity,
            usage_quantity=line.usage_quantity,
            tax_rate_ids=list(line.tax_rate_ids),
            details=line.details,
        )


class CurrentUsage(BaseModel):
    """The open period's usage so far and what it costs so far (before discounts and tax)."""

    subscription_id: str
    currency: str
    period_start: datetime | None
    period_end: datetime | None
    lines: list[LineOut]
    amount: int


class UpcomingInvoice(BaseModel):
    """The invoice the next renewal will create, computed now and stored nowhere.

    The same shape as a finalized invoice (``GET /v1/invoices/{id}``), field for field;
    what only a stored invoice has (id, number, finalized_at, paid_at) is null.
    """

    object: Literal["invoice"] = "invoice"
    id: None = None
    number: None = None
    subscription_id: str
    customer_id: str
    status: Literal["draft"] = Field(default="draft", description="as it will be created")
    currency: str
    subtotal: int
    total: int
    amount_paid: int = 0
    period_start: datetime
    period_end: datetime
    issued_at: datetime = Field(description="when the renewal will issue it")
    finalized_at: None = None
    paid_at: None = None
    lines: list[LineOut]
    discount_total: int
    tax_total: int
    credit_applied: int = Field(
        description="the customer's balance used: credit spent, or negative, a debit "
        "carried from an earlier invoice"
    )
    carried_forward: int = Field(
        description="below Stripe's minimum charge: not charged, added to the next invoice"
    )
    amount_due: int
    taxes: list[TaxOut]

    @classmethod
    def of(
        cls, subscription_id: str, start: datetime, end: datetime, draft: Draft
    ) -> UpcomingInvoice:
        totals = draft.totals
        return cls(
            subscription_id=subscription_id,
            customer_id=draft.customer_id,
            currency=draft.currency,
            period_start=start,
            period_end=end,
            issued_at=start,
            lines=[LineOut.of(line) for line in draft.lines],
            subtotal=totals.subtotal,
            discount_total=totals.discount_total,
            tax_total=totals.exclusive_tax + totals.inclusive_tax,
            total=totals.total,
            credit_applied=totals.credit_applied,
            carried_forward=draft.carried_forward,
            amount_due=totals.amount_due,
            taxes=[TaxOut.of(item) for item in draft.tax_breakdown],
        )


# -- metrics, tax rates, coupons, items ---------------------------------------------------


class MetricCreate(Request):
    code: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    name: str = Field(min_length=1, max_length=200)
    aggregation: Aggregation
    property: str | None = Field(default=None, min_length=1, max_length=100)


class MetricOut(FromRow):
    id: str
    code: str
    name: str
    aggregation: str
    property: str | None
    created_at: datetime


class TaxRateCreate(Request):
    name: str = Field(min_length=1, max_length=100, description="printed: 消費税, VAT")
    percentage: str = Field(max_length=20, description='a decimal string, e.g. "10" or "8"')
    inclusive: bool = False
    jurisdiction: str = Field(default="", max_length=100)
    reduced: bool = Field(default=False, description="Japan's reduced rate (marked ※)")

    _percentage = field_validator("percentage")(check_decimal)


class TaxRateOut(FromRow):
    id: str
    name: str
    percentage: str
    inclusive: bool
    jurisdiction: str
    reduced: bool
    active: bool
    created_at: datetime


class CouponCreate(Request):
    code: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(min_length=1, max_length=200)
    duration: Literal["once", "repeating", "forever"]
    percent_off: str | None = Field(default=None, max_length=20)
    amount_off: Amount | None = Field(default=None, gt=0, le=MAX_AMOUNT)
    currency: str | None = Field(default=None, max_length=CURRENCY_LENGTH)
    duration_in_periods: int | None = Field(default=None, ge=1, le=1200)
    redeem_by: Moment | None = None
    max_redemptions: int | None = Field(default=None, ge=1, le=1_000_000_000)

    _percent = field_validator("percent_off")(check_decimal)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        return None if value is None else check_currency(value)


class CouponOut(FromRow):
    id: str
    code: str
    name: str
    duration: str
    percent_off: str | None
    amount_off: int | None
    currency: str | None
    duration_periods: int | None
    redeem_by: datetime | None
    max_redemptions: int | None
    times_redeemed: int
    active: bool
    created_at: datetime


class CouponRedeem(Request):
    code: str = Field(min_length=1, max_length=100)


class Redemption(BaseModel):
    id: str
    subscription_id: str
    coupon: str


class ItemCreate(Request):
    price_id: str = Field(min_length=1, max_length=40)
    quantity: int = Field(default=1, ge=1, le=1_000_000)


class ItemOut(BaseModel):
    id: str
    subscription_id: str
    price_id: str
    quantity: int


# -- credit notes ------------------------------------------------------------------------


class CreditNoteCreate(Request):
    reason: Literal["duplicate", "fraudulent", "order_change", "product_unsatisfactory"]
    method: Literal["refund", "credit"] = Field(
        description="refund through Stripe, or keep as credit the next invoices use first"
    )
    amount: Amount | None = Field(
        default=None, gt=0, le=MAX_AMOUNT, description="omit for the whole remainder"
    )
    memo: str = Field(default="", max_length=500)


class CreditNoteOut(FromRow):
    id: str
    number: str
    invoice_id: str
    customer_id: str
    currency: str
    amount: int
    tax_amount: int
    reason: str
    memo: str
    method: str
    status: str
    stripe_refund_id: str | None
    breakdown: dict[str, Any]
    created_at: datetime
