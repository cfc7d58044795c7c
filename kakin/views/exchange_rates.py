"""How an exchange rate reads (``/v1/exchange-rates``, ``kakin rates list --json``, and
the rates a report's converted block lists)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

from kakin.services.exchange_rates import ExchangeRate


class ExchangeRateOut(BaseModel):
    """1 ``currency`` = ``rate`` ``reporting_currency`` (major units), from
    ``effective_from`` until the pair's next rate."""

    object: Literal["exchange_rate"] = "exchange_rate"
    currency: str = Field(description="the currency converted (ISO 4217)")
    reporting_currency: str = Field(description="the currency it is converted into")
    rate: Decimal = Field(description='the exact decimal entered, e.g. "150.12"')
    effective_from: date = Field(description="the first day it applies, on the reporting calendar")
    entered_by: str = Field(description="who entered it (an API key, or cli)")
    entered_at: datetime

    @classmethod
    def of(cls, rate: ExchangeRate) -> ExchangeRateOut:
        return cls(currency=rate.currency, reporting_currency=rate.reporting_currency,
                   rate=rate.rate, effective_from=rate.effective_from,
                   entered_by=rate.entered_by, entered_at=rate.entered_at)  # fmt: skip


class ExchangeRateList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ExchangeRateOut]
    has_more: bool = Field(default=False, description="always false: every rate is listed")
