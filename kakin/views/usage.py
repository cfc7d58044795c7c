"""How usage reads: the receipt for reported events, and the open period so far."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from kakin.views.invoices import LineOut


class UsageResult(BaseModel):
    event_id: str
    status: Literal["accepted", "duplicate", "rejected"]
    reason: str = ""
    subscription_id: str | None = None


class UsageReceipt(BaseModel):
    """Per event: accepted, a duplicate (already counted), or rejected with the reason."""

    accepted: int
    duplicates: int
    rejected: int
    results: list[UsageResult]


class CurrentUsage(BaseModel):
    """The open period's usage so far and what it costs so far (before discounts and tax)."""

    subscription_id: str
    currency: str
    period_start: datetime | None
    period_end: datetime | None
    lines: list[LineOut]
    amount: int
