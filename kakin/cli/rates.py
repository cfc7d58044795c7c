"""``kakin rates set|list``: the exchange rates of the analytics' reporting currency.

Rates are entered here (or with ``PUT /v1/exchange-rates``) and never fetched:
``kakin rates set USD JPY 150.12 --from 2027-01-01`` says 1 USD = 150.12 JPY from
2027-01-01 on the reporting calendar, until the pair's next rate.
"""

from __future__ import annotations

import argparse
from typing import Any

from kakin.cli.output import command_group, format_table, format_when, print_json, sessions
from kakin.services import exchange_rates
from kakin.services.exchange_rates import ExchangeRate
from kakin.views.exchange_rates import ExchangeRateList, ExchangeRateOut


def said(rate: ExchangeRate) -> str:
    """The rate as a sentence reads it: ``1 USD = 150.12 JPY``."""
    return f"1 {rate.currency} = {rate.rate} {rate.reporting_currency}"


def _set(args: argparse.Namespace) -> int:
    rate = exchange_rates.set_rate(
        sessions(), currency=args.currency, reporting_currency=args.reporting_currency,
        rate=args.rate, effective_from=args.from_, entered_by=args.entered_by,
    )  # fmt: skip
    print(f"{said(rate)} from {rate.effective_from} (entered by {rate.entered_by})")
    return 0


def _list(args: argparse.Namespace) -> int:
    found = exchange_rates.list_rates(
        sessions(), currency=args.currency, reporting_currency=args.reporting_currency
    )
    if args.json:
        print_json(
            ExchangeRateList(data=[ExchangeRateOut.of(r) for r in found]).model_dump(mode="json")
        )
        return 0
    if not found:
        print(
            "no exchange rates: enter one with `kakin rates set USD JPY 150.12 --from 2027-01-01`"
        )
        return 0
    rows = [
        [said(r), f"{r.effective_from}", r.entered_by, f"{format_when(r.entered_at, time=True)}Z"]
        for r in found
    ]
    print(format_table(["rate", "from", "entered by", "entered at"], rows))
    return 0


def add_commands(commands: Any) -> None:
    rates = command_group(commands, "rates", "exchange rates for the reporting currency")
    put = rates.add_parser("set", help="enter (or replace) a rate: 1 CURRENCY = RATE REPORTING")
    put.add_argument("currency", help="the currency converted, e.g. USD")
    put.add_argument("reporting_currency", help="the currency it is converted into, e.g. JPY")
    put.add_argument("rate", help="a decimal above 0, e.g. 150.12 (1 USD = 150.12 JPY)")
    put.add_argument(
        "--from", dest="from_", required=True,
        help="the first day it applies (KAKIN_REPORTING_TIME_ZONE), e.g. 2027-01-01",
    )  # fmt: skip
    put.add_argument("--entered-by", default="cli", help="who enters it, e.g. finance:aiko")
    put.set_defaults(handler=_set)
    listed = rates.add_parser("list", help="every rate entered")
    listed.add_argument("--currency", help="only rates of this currency")
    listed.add_argument("--reporting-currency", help="only rates into this currency")
    listed.add_argument("--json", action="store_true", help="print the HTTP API's body")
    listed.set_defaults(handler=_list)
