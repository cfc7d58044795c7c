"""``kakin customer create`` and ``kakin customers list``."""

from __future__ import annotations

import argparse
from typing import Any

from kakin import runtime
from kakin.cli.output import (
    fetch_page,
    format_table,
    format_when,
    listing,
    page_limit,
    print_json,
    print_more,
    sessions,
)
from kakin.platform.settings import get_settings
from kakin.services import reads
from kakin.services.customers import create_customer
from kakin.views.customers import CustomerOut


def _customer_create(args: argparse.Namespace) -> int:
    settings = get_settings()
    customer_id = create_customer(
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


def _customers_list(args: argparse.Namespace) -> int:
    with sessions()() as session:
        rows, more = fetch_page(
            lambda: reads.list_customers(
                session, limit=page_limit(args), starting_after=args.starting_after
            )
        )
        if args.json:
            data = [CustomerOut.of(row).model_dump(mode="json") for row in rows]
            print_json({"object": "list", "data": data, "has_more": more})
            return 0
        table = [
            [
                row.id,
                row.name,
                row.email,
                row.currency,
                row.locale,
                row.time_zone,
                "yes" if row.stripe_payment_method_id else "no",
                format_when(row.created_at, row.time_zone),
            ]
            for row in rows
        ]
    if table:
        headers = ["id", "name", "email", "currency", "locale", "time zone", "card", "created"]
        print(format_table(headers, table))
    print_more(len(table), more, "customers")
    return 0


def add_commands(commands: Any) -> None:
    customer = commands.add_parser("customer", help="customers").add_subparsers(
        dest="action", required=True
    )
    create = customer.add_parser("create", help="create a customer (and its Stripe customer)")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--currency", default="JPY")
    create.add_argument("--locale", default="ja", help="ja or en: language of invoices and emails")
    create.add_argument("--time-zone", default="Asia/Tokyo")
    create.add_argument("--card", help="a Stripe test card number (test mode only)")
    create.set_defaults(handler=_customer_create)


def add_read_commands(commands: Any) -> None:
    customers = commands.add_parser("customers", help="read customers").add_subparsers(
        dest="action", required=True
    )
    listed = customers.add_parser("list", help="customers, newest first")
    listing(listed)
    listed.set_defaults(handler=_customers_list)
