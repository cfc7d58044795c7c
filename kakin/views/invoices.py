"""How an invoice reads: stored (with its lines, tax per rate and balance), upcoming
(the same shape, computed now), and its payments."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from kakin.services.invoice_drafts import Draft, DraftLine
from kakin.views.common import FromRow, columns
from models.tables import Invoice, InvoiceLine

LINE_KINDS = (
    "``subscription`` (the plan and add-ons, in advance; ``details.price_id`` says "
    "which price), ``usage`` (metered, in "
    "arrears: ``usage_quantity`` holds the units), ``discount``, ``proration`` (a plan "
    "change: the credit for unused time is negative) or ``rounding`` (a three-decimal "
    "currency's amount due down to what Stripe charges)"
)
CREDIT_APPLIED = (
    "the customer's balance used: credit spent, or negative, a debit carried from an "
    "earlier invoice"
)
CARRIED_FORWARD = "below Stripe's minimum charge: not charged, added to the next invoice"


class InvoiceOut(FromRow):
    object: Literal["invoice"] = "invoice"
    id: str
    number: str | None
    subscription_id: str
    customer_id: str
    status: str
    currency: str
    subtotal: int
    total: int
    amount_paid: int
    period_start: datetime
    period_end: datetime
    issued_at: datetime
    finalized_at: datetime | None
    paid_at: datetime | None


class PaymentOut(FromRow):
    object: Literal["payment"] = "payment"
    id: int
    invoice_id: str
    attempt: int
    amount: int
    currency: str
    status: str
    decline_code: str | None
    failure_message: str | None
    attempted_at: datetime


class LineFields(BaseModel):
    """The fields of an invoice line, stored or upcoming (each shape names its own)."""

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


class InvoiceLineOut(LineFields):
    """One line, the same shape as a line of the upcoming invoice."""

    @classmethod
    def of(cls, row: InvoiceLine) -> InvoiceLineOut:
        details = dict(row.details or {})
        # Stored in details for the tax arithmetic (billing.invoice_math); a field here.
        ids = details.pop("tax_rate_ids", None)
        if ids is None:
            ids = [row.tax_rate_id] if row.tax_rate_id else []
        return cls(**columns(row, cls, tax_rate_ids=list(ids), details=details))


class LineOut(LineFields):
    """One line, the same shape as a finalized invoice's (``InvoiceLineOut``)."""

    @classmethod
    def of(cls, line: DraftLine) -> LineOut:
        return cls(**columns(line, cls, tax_rate_ids=list(line.tax_rate_ids)))


class TaxOut(BaseModel):
    """One tax rate's block of a qualified invoice: what it applies to and its tax."""

    tax_rate_id: str
    name: str
    percentage: str
    inclusive: bool
    reduced: bool
    taxable: int
    tax: int

    @classmethod
    def of(cls, item: dict[str, Any]) -> TaxOut:
        return cls(**{k: v for k, v in item.items() if k in cls.model_fields})


class InvoiceDetail(InvoiceOut):
    """An invoice with its lines, tax per rate and balance: the upcoming invoice's shape."""

    lines: list[InvoiceLineOut]
    discount_total: int
    tax_total: int
    credit_applied: int = Field(description=CREDIT_APPLIED)
    carried_forward: int = Field(description=CARRIED_FORWARD)
    amount_due: int
    taxes: list[TaxOut]

    @classmethod
    def with_lines(cls, row: Invoice) -> InvoiceDetail:
        lines = [InvoiceLineOut.of(line) for line in row.lines]
        taxes = [TaxOut.of(item) for item in row.tax_breakdown or []]
        return cls(**columns(row, cls, lines=lines, taxes=taxes))


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
    credit_applied: int = Field(description=CREDIT_APPLIED)
    carried_forward: int = Field(description=CARRIED_FORWARD)
    amount_due: int
    taxes: list[TaxOut]

    @classmethod
    def of(
        cls,
        subscription_id: str,
        start: datetime,
        end: datetime,
        draft: Draft,
        *,
        issued_at: datetime | None = None,
    ) -> UpcomingInvoice:
        """``issued_at``: the start of the period (a renewal's), unless given (the last
        period's usage, issued when the subscription ends)."""
        totals = draft.totals
        return cls(
            subscription_id=subscription_id,
            customer_id=draft.customer_id,
            currency=draft.currency,
            period_start=start,
            period_end=end,
            issued_at=issued_at or start,
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


class RetryAccepted(BaseModel):
    object: Literal["payment_retry"] = "payment_retry"
    invoice_id: str
    subscription_id: str
    retrying: Literal[True] = True
