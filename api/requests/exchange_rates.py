"""The body of ``PUT /v1/exchange-rates``."""

from __future__ import annotations

from datetime import date

from pydantic import Field, field_validator

from api.requests.common import CURRENCY_LENGTH, Request, check_currency


class ExchangeRateSet(Request):
    """1 ``currency`` = ``rate`` ``reporting_currency`` (major units) from ``effective_from``."""

    currency: str = Field(max_length=CURRENCY_LENGTH, description="the currency converted: USD")
    reporting_currency: str = Field(
        max_length=CURRENCY_LENGTH, description="the currency it is converted into: JPY"
    )
    rate: str = Field(
        min_length=1, max_length=40,
        description='a decimal string above 0, e.g. "150.12" (1 USD = 150.12 JPY); never a float',
    )  # fmt: skip
    effective_from: date = Field(
        description="the first day it applies, on the reporting calendar (2027-01-01)"
    )

    _currencies = field_validator("currency", "reporting_currency")(check_currency)
