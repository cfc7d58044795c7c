"""How an alert reads: its terms, and where it stands in the current period."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from kakin.services.alerts import AlertDetails


class AlertOut(BaseModel):
    """An alert. Money is in the currency's minor unit, usage in the metric's unit.

    ``levels`` are the thresholds as absolute values; ``current`` the watched value now;
    ``fired`` the thresholds fired this period (``cap:<value>``: the hard cap reached);
    ``cap_reached``: usage of the metric is refused for the rest of the period.
    """

    object: Literal["alert"] = "alert"
    id: str
    customer_id: str
    subscription_id: str | None
    name: str
    watches: str
    metric: str | None
    currency: str | None
    budget: str | None
    thresholds: list[dict[str, str]]
    levels: list[str]
    recurring: dict[str, str] | None
    hard_cap: str | None
    current: str | None
    period_start: datetime | None
    period_end: datetime | None
    fired: list[str]
    next_threshold: str | None
    cap_reached: bool
    fired_at: dict[str, datetime] = Field(
        default_factory=dict, description="when each threshold in ``fired`` fired"
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, details: AlertDetails) -> AlertOut:
        return cls(**details.__dict__)


class AlertList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AlertOut]
