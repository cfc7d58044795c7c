"""The ``kakin`` command: run the embedded stack, the worker, and day-to-day operations."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

import starter
from kakin import api_keys, service, wiring
from kakin.settings import get_settings
from models.db import migrate
from models.repositories import NotFoundError


def _migrate(_: argparse.Namespace) -> int:
    url = get_settings().database_url
    migrate(url)
    print(f"database at {url} is at the newest revision")
    return 0


def _worker(_: argparse.Namespace) -> int:
    import worker

    worker.main()
    return 0


def _up(args: argparse.Namespace) -> int:
    from kakin.up import run_up

    return run_up(
        data_dir=args.data_dir,
        temporal_port=args.temporal_port,
        ui_port=args.ui_port,
        stripe_port=args.stripe_port,
        api_port=args.api_port,
        demo=not args.no_demo,
        exit_after_demo=args.exit_after_demo,
    )


def _customer_create(args: argparse.Namespace) -> int:
    settings = get_settings()
    customer_id = service.create_customer(
        wiring.session_factory(settings),
        wiring.stripe_gateway(settings),
        email=args.email,
        name=args.name,
        currency=args.currency,
        locale=args.locale,
        time_zone=args.time_zone,
        card_number=args.card,
    )
    print(customer_id)
    return 0


def _price_create(args: argparse.Namespace) -> int:
    price_id = service.create_price(
        wiring.session_factory(get_settings()),
        product_name=args.product,
        currency=args.currency,
        unit_amount=args.unit_amount,
        interval=args.interval,
        interval_count=args.interval_count,
    )
    print(price_id)
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    try:
        created = api_keys.create_key(
            wiring.session_factory(get_settings()), name=args.name, role=args.role
        )
    except ValueError as error:
        raise service.InvalidRequestError(str(error)) from None
    print(f"created {created.info.id} ({created.info.role}) for {created.info.name}")
    print("the key, shown this once only (kakin keeps just its hash):")
    print(created.secret)
    return 0


def _keys_list(_: argparse.Namespace) -> int:
    keys = api_keys.list_keys(wiring.session_factory(get_settings()))
    if not keys:
        print("no API keys: create one with `kakin keys create --name N --role R`")
    for key in keys:
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}Z" if key.revoked_at else "active"
        used = f"{key.last_used_at:%Y-%m-%d %H:%M}Z" if key.last_used_at else "never"
        print(
            f"{key.id}  {key.role:<7}  {key.prefix}...  {state:<24}  last used {used}  {key.name}"
        )
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    try:
        key = api_keys.revoke_key(wiring.session_factory(get_settings()), args.key_id)
    except NotFoundError as error:
        raise service.InvalidRequestError(str(error)) from None
    print(f"revoked {key.id} ({key.role}, {key.name})")
    return 0


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import build_app

    uvicorn.run(build_app(get_settings()), host=args.host, port=args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kakin", description="kakin (課金) subscription billing")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run the embedded stack and play the demo")
    up.add_argument("--data-dir", type=Path, default=Path("var"))
    up.add_argument("--temporal-port", type=int, default=7233)
    up.add_argument("--ui-port", type=int, default=8233)
    up.add_argument("--stripe-port", type=int, default=8420)
    up.add_argument("--api-port", type=int, default=8000, help="the HTTP API and card-update page")
    up.add_argument("--no-demo", action="store_true", help="start everything, play nothing")
    up.add_argument("--exit-after-demo", action="store_true", help="stop when the demo has played")
    up.set_defaults(handler=_up)

    commands.add_parser("worker", help="run a worker").set_defaults(handler=_worker)
    commands.add_parser("migrate", help="migrate the database").set_defaults(handler=_migrate)

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

    price = commands.add_parser("price", help="prices").add_subparsers(dest="action", required=True)
    create = price.add_parser("create", help="create a product with a flat-rate price")
    create.add_argument("--product", required=True)
    create.add_argument("--currency", default="JPY")
    create.add_argument("--unit-amount", type=int, required=True, help="in minor units (JPY: yen)")
    create.add_argument("--interval", default="month", choices=["day", "week", "month", "year"])
    create.add_argument("--interval-count", type=int, default=1)
    create.set_defaults(handler=_price_create)

    keys = commands.add_parser("keys", help="API keys for the HTTP API").add_subparsers(
        dest="action", required=True
    )
    create = keys.add_parser("create", help="create a key (printed once, stored hashed)")
    create.add_argument("--name", required=True, help="who uses it, e.g. 'shop backend'")
    create.add_argument("--role", required=True, choices=[r.value for r in api_keys.Role])
    create.set_defaults(handler=_keys_create)
    keys.add_parser("list", help="list keys (never their secrets)").set_defaults(handler=_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key; it is refused from then on")
    revoke.add_argument("key_id")
    revoke.set_defaults(handler=_keys_revoke)

    api = commands.add_parser("api", help="run the HTTP API")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.set_defaults(handler=_api)

    starter.add_subscription_commands(commands)
    starter.add_connection_options(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    if args.command in ("start", "cancel", "pause", "resume", "status", "update-card"):
        starter.exit_process(asyncio.run(starter.run_command(args)))
    try:
        return int(args.handler(args))
    except service.InvalidRequestError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
