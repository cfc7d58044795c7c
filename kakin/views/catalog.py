"""How the catalog reads: products and prices, billable metrics, tax rates, coupons."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from kakin.views.common import FromRow


class ProductOut(FromRow):
    id: str
    name: str


class PriceOut(FromRow):
    object: Literal["price"] = "price"
    id: str
    product: ProductOut
    nickname: str
    currency: str
    unit_amount: int
    interval: str
    interval_count: int
    active: bool
    pricing_model: str
    unit_amount_decimal: str | None
    package_size: int | None
    tiers: list[dict[str, Any]] | None
    metric_id: str | None
    tax_rate_ids: list[str]
    created_at: datetime


class MetricOut(FromRow):
    id: str
    code: str
    name: str
    aggregation: str
    property: str | None
    created_at: datetime


class TaxRateOut(FromRow):
    id: str
    name: str
    percentage: str
    inclusive: bool
    jurisdiction: str
    reduced: bool
    active: bool
    created_at: datetime


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
