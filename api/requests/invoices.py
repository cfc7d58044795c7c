"""What support asks of an invoice: writing it off, and crediting a paid one."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from api.requests.common import MAX_AMOUNT, Amount, ReasonedRequest, Request


class InvoiceActionCreate(ReasonedRequest):
    REASON_FOR = "writing the invoice off"


class CreditNoteCreate(Request):
    reason: Literal["duplicate", "fraudulent", "order_change", "product_unsatisfactory"]
    method: Literal["refund", "credit"] = Field(
        description="refund through Stripe, or keep as credit the next invoices use first"
    )
    amount: Amount | None = Field(
        default=None, gt=0, le=MAX_AMOUNT, description="omit for the whole remainder"
    )
    memo: str = Field(default="", max_length=500)
