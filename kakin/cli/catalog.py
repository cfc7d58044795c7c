"""``kakin price|metric|tax-rate|coupon|item``: the catalog and what a subscription holds.

They call the same functions as the HTTP API (kakin.services.catalog), so a rule holds
the same at a terminal as over HTTP.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from datetime import datetime
from typing import Any

from kakin.cli.output import command_group, sessions
from kakin.services import catalog


def _tier(text: str) -> dict[str, Any]:
    """``UP_TO:UNIT_AMOUNT[:FLAT]``; ``inf`` for the open last tier (``1000:0``, ``inf:0.5``)."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(f"{text!r} is not UP_TO:UNIT_AMOUNT[:FLAT_FEE]")
    up_to = None if parts[0] in ("inf", "") else parts[0]
    flat = parts[2] if len(parts) == 3 else "0"
    if not flat.isdigit():
        raise argparse.ArgumentTypeError(f"the flat fee in {text!r} is whole minor units")
    return {"up_to": up_to, "unit_amount": parts[1], "flat_amount": int(flat)}


def _creates(make: Callable[..., str]) -> Callable[[argparse.Namespace], int]:
    """The handler of a ``... create`` command: it prints the id ``make(sessions(),
    **options)`` returns, the options being the command's own, each named (its
    ``dest``) as ``make`` takes it. A ``--name`` left out is the ``--code``."""
    takes = inspect.signature(make).parameters

    def handler(args: argparse.Namespace) -> int:
        options = {name: value for name, value in vars(args).items() if name in takes}
        if "code" in options and not options.get("name"):
            options["name"] = options["code"]
        print(make(sessions(), **options))
        return 0

    return handler


def _coupon_redeem(args: argparse.Namespace) -> int:
    print(catalog.redeem_coupon(sessions(), subscription_id=args.subscription, code=args.code))
    return 0


def _item_add(args: argparse.Namespace) -> int:
    print(
        catalog.add_item(
            sessions(),
            subscription_id=args.subscription,
            price_id=args.price,
            quantity=args.quantity,
        )
    )
    return 0


def add_commands(commands: Any) -> None:
    price = command_group(commands, "price", "prices")
    create = price.add_parser("create", help="create a product and its price (any model)")
    create.add_argument(
        "--product", dest="product_name", metavar="PRODUCT", required=True, help="product name"
    )
    create.add_argument("--currency", default="JPY", help="ISO 4217 (default JPY)")
    create.add_argument("--unit-amount", type=int, default=0, help="minor units; flat per seat")
    create.add_argument("--interval", default="month", choices=["day", "week", "month", "year"])
    create.add_argument("--interval-count", type=int, default=1)
    create.add_argument(
        "--model",
        dest="pricing_model",
        default="flat",
        choices=["flat", "per_unit", "graduated", "volume", "package"],
    )
    create.add_argument("--unit-amount-decimal", help='per unit or package, e.g. "0.015"')
    create.add_argument("--package-size", type=int)
    create.add_argument(
        "--tier", dest="tiers", metavar="TIER", type=_tier, action="append",
        help="UP_TO:UNIT[:FLAT], repeat",
    )  # fmt: skip
    create.add_argument(
        "--metric", dest="metric_code", metavar="METRIC",
        help="a metric code: the price is billed on usage",
    )  # fmt: skip
    create.add_argument(
        "--tax-rate", dest="tax_rate_ids", metavar="TAX_RATE", action="append",
        help="a tax rate id (txr_...), repeat",
    )  # fmt: skip
    create.set_defaults(handler=_creates(catalog.create_price))

    metric = command_group(commands, "metric", "billable metrics")
    create = metric.add_parser("create", help="define what usage events add up to")
    create.add_argument("--code", required=True)
    create.add_argument("--name")
    create.add_argument(
        "--aggregation", required=True, choices=["count", "sum", "max", "unique_count", "latest"]
    )
    create.add_argument("--property", help="the event property aggregated (not for count)")
    create.set_defaults(handler=_creates(catalog.create_metric))

    tax = command_group(commands, "tax-rate", "tax rates")
    create = tax.add_parser("create", help="a tax rate, e.g. 消費税 10%%")
    create.add_argument("--name", required=True)
    create.add_argument("--percentage", required=True)
    create.add_argument("--inclusive", action="store_true")
    create.add_argument("--reduced", action="store_true", help="Japan's reduced rate (※)")
    create.add_argument("--jurisdiction", default="")
    create.set_defaults(handler=_creates(catalog.create_tax_rate))

    coupon = command_group(commands, "coupon", "coupons")
    create = coupon.add_parser("create", help="a percentage or fixed-amount coupon")
    create.add_argument("--code", required=True)
    create.add_argument("--name")
    create.add_argument("--duration", required=True, choices=["once", "repeating", "forever"])
    create.add_argument("--percent-off")
    create.add_argument("--amount-off", type=int)
    create.add_argument("--currency")
    create.add_argument(
        "--periods", dest="duration_in_periods", metavar="PERIODS", type=int,
        help="with repeating: how many invoices",
    )  # fmt: skip
    create.add_argument("--redeem-by", type=datetime.fromisoformat, help="ISO time with zone")
    create.add_argument("--max-redemptions", type=int)
    create.set_defaults(handler=_creates(catalog.create_coupon))
    redeem = coupon.add_parser("redeem", help="apply a coupon from the next invoice")
    redeem.add_argument("subscription")
    redeem.add_argument("code")
    redeem.set_defaults(handler=_coupon_redeem)

    item = command_group(commands, "item", "prices a subscription holds besides its plan")
    add = item.add_parser("add", help="add a metered price or an add-on")
    add.add_argument("subscription")
    add.add_argument("price")
    add.add_argument("--quantity", type=int, default=1)
    add.set_defaults(handler=_item_add)
