"""Exchange rates for the analytics' reporting currency: entered by an admin, read by
the roles that read the analytics. Never fetched from anywhere."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import KEY, DepsDep, requester
from api.errors import RESPONSES
from api.requests.exchange_rates import ExchangeRateSet
from kakin.services import exchange_rates
from kakin.services.api_keys import KeyInfo
from kakin.views.exchange_rates import ExchangeRateList, ExchangeRateOut

router = APIRouter(prefix="/v1", responses=RESPONSES, tags=["analytics"])

CurrencyFilter = Annotated[str | None, Query(max_length=10, description="only this currency")]


@router.put("/exchange-rates", response_model=ExchangeRateOut)
def set_exchange_rate(body: ExchangeRateSet, deps: DepsDep, key: KeyInfo = KEY) -> ExchangeRateOut:
    """Enter the rate of a pair from a date: 1 `currency` = `rate` `reporting_currency`.
    Again for the same pair and date, it replaces that rate (a PUT: repeating it changes
    nothing more). Reports asked with `reporting_currency` convert each bucket with the
    latest rate effective on or before its first day."""
    rate = exchange_rates.set_rate(
        deps.sessions, currency=body.currency, reporting_currency=body.reporting_currency,
        rate=body.rate, effective_from=body.effective_from, entered_by=requester(key),
    )  # fmt: skip
    return ExchangeRateOut.of(rate)


@router.get("/exchange-rates", response_model=ExchangeRateList)
def list_exchange_rates(
    deps: DepsDep,
    currency: CurrencyFilter = None,
    reporting_currency: CurrencyFilter = None,
    _: KeyInfo = KEY,
) -> ExchangeRateList:
    """Every rate entered, by reporting currency, currency and effective date."""
    found = exchange_rates.list_rates(
        deps.sessions, currency=currency, reporting_currency=reporting_currency
    )
    return ExchangeRateList(data=[ExchangeRateOut.of(rate) for rate in found])
