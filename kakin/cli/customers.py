"""``kakin customer create`` and ``kakin customers list``."""

from __future__ import annotations

import argparse
from typing import Any

from kakin import runtime
from kakin.cli.output import command_group, format_when, listing, print_list
from kakin.platform.settings import get_settings
from kakin.services import customers
from kakin.views.customers import CustomerOut
from models.tables import Customer


def _customer_create(args: argparse.Namespace) -> int:
    settings = get_settings()
    customer_id = customers.create_customer(
        runtime.session_factory(settings),
        runtime.stripe_gateway(settings),
        email=args.email,
        name=args.name,
        currency=args.currency,
        locale=args.locale,
        time_zone=args.time_zone,
        card_number=args.card,
    )
    print(customer_id)
    return 0


def _customer_row(row: Customer) -> dict[str, str]:
    return {
        "id": row.id,
        "name": row.name,
        "email": row.email,
        "currency": row.currency,
        "locale": row.locale,
        "time zone": row.time_zone,
        "card": "yes" if row.stripe_payment_method_id else "no",
        "created": format_when(row.created_at, row.time_zone),
    }


def _customers_list(args: argparse.Namespace) -> int:
    return print_list(
        args, customers.list_customers, view=CustomerOut, row_of=_customer_row, what="customers"
    )


def add_commands(commands: Any) -> None:
    customer = command_group(commands, "customer", "customers")
    create = customer.add_parser("create", help="create a customer (and its Stripe customer)")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--currency", default="JPY")
    create.add_argument("--locale", default="ja", help="ja or en: language of invoices and emails")
    create.add_argument("--time-zone", default="Asia/Tokyo")
    create.add_argument("--card", help="a Stripe test card number (test mode only)")
    create.set_defaults(handler=_customer_create)


def add_read_commands(commands: Any) -> None:
    group = command_group(commands, "customers", "read customers")
    listed = group.add_parser("list", help="customers, newest first")
    listing(listed)
    listed.set_defaults(handler=_customers_list)
