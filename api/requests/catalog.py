"""Creating prices (of any pricing model), billable metrics, tax rates and coupons."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from api.requests.common import (
    CURRENCY_LENGTH,
    MAX_AMOUNT,
    Amount,
    Id,
    IntervalName,
    Moment,
    Request,
    check_currency,
    check_decimal,
)

Aggregation = Literal["count", "sum", "max", "unique_count", "latest"]
PricingModel = Literal["flat", "per_unit", "graduated", "volume", "package"]


class TierIn(Request):
    up_to: str | None = Field(
        max_length=40, description="the tier's last unit (inclusive); null: no limit"
    )
    unit_amount: str = Field(
        default="0", max_length=40, description="per unit, minor units, may be fractional"
    )
    flat_amount: Amount = Field(
        default=0, ge=0, le=MAX_AMOUNT, description="a flat fee for reaching the tier"
    )


class PriceCreate(Request):
    product_name: str = Field(min_length=1, max_length=200)
    nickname: str = Field(default="", max_length=200)
    currency: str = Field(max_length=CURRENCY_LENGTH)
    unit_amount: Amount = Field(
        default=0, ge=0, le=MAX_AMOUNT, description="in minor units (JPY: yen); flat per seat"
    )
    interval: IntervalName = "month"
    interval_count: int = Field(default=1, ge=1, le=365)
    pricing_model: PricingModel = "flat"
    unit_amount_decimal: str | None = Field(
        default=None, max_length=40, description='per unit or package, e.g. "0.015" yen per call'
    )
    package_size: int | None = Field(default=None, ge=1, le=1_000_000_000)
    tiers: list[TierIn] | None = Field(default=None, min_length=1, max_length=50)
    metric: str | None = Field(
        default=None, max_length=100, description="a metric code: billed in arrears on usage"
    )
    tax_rate_ids: list[Id] = Field(default_factory=list, max_length=5)

    _currency = field_validator("currency")(check_currency)

    def service_arguments(self) -> dict[str, Any]:
        """What ``catalog.create_price`` takes for this body: its tiers as dicts, its
        metric by code (the API and the console both create a price so)."""
        fields = self.model_dump(exclude={"tiers", "metric"})
        tiers = None if self.tiers is None else [tier.model_dump() for tier in self.tiers]
        return {**fields, "tiers": tiers, "metric_code": self.metric}


class MetricCreate(Request):
    code: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    name: str = Field(min_length=1, max_length=200)
    aggregation: Aggregation
    property: str | None = Field(default=None, min_length=1, max_length=100)


class TaxRateCreate(Request):
    name: str = Field(min_length=1, max_length=100, description="printed: 消費税, VAT")
    percentage: str = Field(max_length=20, description='a decimal string, e.g. "10" or "8"')
    inclusive: bool = False
    jurisdiction: str = Field(default="", max_length=100)
    reduced: bool = Field(default=False, description="Japan's reduced rate (marked ※)")

    _percentage = field_validator("percentage")(check_decimal)


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
