"""How a credit note reads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kakin.views.common import FromRow


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
