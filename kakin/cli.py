"""The ``kakin`` command: run the embedded stack, the worker, and day-to-day operations."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import unicodedata
import webbrowser
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import starter
from billing.money import format_amount
from kakin import api_keys, cli_billing, service, wiring
from kakin.codec import EncryptionKeyError
from kakin.settings import ConfigurationError, get_settings
from models import repositories as repo
from models.db import migrate
from models.payloads import InvoiceStatus, SubscriptionStatus
from models.repositories import NotFoundError
from models.tables import Customer, Invoice


def _migrate(_: argparse.Namespace) -> int:
    url = get_settings().database_url
    migrate(url)
    print(f"database at {url} is at the newest revision")
    return 0


def _worker(args: argparse.Namespace) -> int:
    import worker

    # The connection options, before or after `worker`, become python worker.py's.
    options = {"--temporal-address": args.temporal_address, "--namespace": args.namespace,
               "--task-queue": args.task_queue}  # fmt: skip
    return worker.main([part for name, value in options.items() if value for part in (name, value)])


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


# -- reading the database: invoices, customers, subscriptions ------------------------

MAX_LIMIT = 100


def _width(text: str) -> int:
    """Columns a string takes in a terminal (CJK characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _pad(text: str, width: int, *, right: bool = False) -> str:
    gap = " " * max(0, width - _width(text))
    return gap + text if right else text + gap


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[int] = ()
) -> str:
    """An aligned plain-text table; the columns numbered in ``right`` are right-aligned."""
    widths = [max([_width(h), *(_width(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            _pad(cell, widths[i], right=i in right) for i, cell in enumerate(cells)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _when(value: datetime | None, zone: str = "UTC", *, time: bool = False) -> str:
    if value is None:
        return "-"
    local = value.astimezone(_zone(zone))
    return f"{local:%Y-%m-%d %H:%M}" if time else f"{local:%Y-%m-%d}"


def _money(amount: int, currency: str, customer: Customer | None) -> str:
    return format_amount(amount, currency, locale=customer.locale if customer else "en")


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _limit(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= MAX_LIMIT:
        raise service.InvalidRequestError(f"--limit must be between 1 and {MAX_LIMIT}")
    return int(args.limit)


def _page(fetch: Any) -> tuple[list[Any], bool]:
    try:
        rows, more = fetch()
    except repo.InvalidCursorError as error:
        raise service.InvalidRequestError(str(error)) from None
    return list(rows), bool(more)


def _more(shown: int, more: bool, what: str) -> None:
    if not shown:
        print(f"no {what}")
    elif more:
        print(f"(the newest {shown} {what}; more with --limit or --starting-after)")


def _load_invoice(session: Any, invoice_id: str) -> Invoice:
    try:
        return repo.invoice(session, invoice_id)
    except NotFoundError as error:
        raise service.InvalidRequestError(str(error)) from None


def _invoices_list(args: argparse.Namespace) -> int:
    from api.schemas import InvoiceOut

    with wiring.session_factory(get_settings())() as session:
        rows, more = _page(
            lambda: repo.invoices(
                session,
                limit=_limit(args),
                starting_after=args.starting_after,
                status=args.status,
                customer_id=args.customer,
                subscription_id=args.subscription,
            )
        )
        if args.json:
            data = [InvoiceOut.of(row).model_dump(mode="json") for row in rows]
            _print_json({"object": "list", "data": data, "has_more": more})
            return 0
        table = [
            [
                row.number or "-",
                row.id,
                row.status,
                _money(row.total, row.currency, row.customer),
                _money(row.amount_paid, row.currency, row.customer),
                f"{_when(row.period_start, row.customer.time_zone)} – "
                f"{_when(row.period_end, row.customer.time_zone)}",
                row.customer.name,
                row.subscription_id,
            ]
            for row in rows
        ]
    if table:
        headers = ["number", "id", "status", "total", "paid", "period", "customer", "subscription"]
        print(_table(headers, table, right=(3, 4)))
    _more(len(table), more, "invoices")
    return 0


def _invoices_show(args: argparse.Namespace) -> int:
    from api.schemas import InvoiceDetail

    with wiring.session_factory(get_settings())() as session:
        row = _load_invoice(session, args.invoice_id)
        customer, zone = row.customer, row.customer.time_zone
        if args.json:
            data = InvoiceDetail.with_lines(row).model_dump(mode="json")
            data["customer"] = {"id": customer.id, "name": customer.name, "locale": customer.locale}
            data["amount_due"] = row.amount_due
            _print_json(data)
            return 0

        def money(amount: int) -> str:
            return _money(amount, row.currency, customer)

        lines = [
            [
                line.description,
                money(line.unit_amount),
                str(line.quantity),
                money(line.amount),
                f"{_when(line.period_start, zone)} – {_when(line.period_end, zone)}",
            ]
            for line in row.lines
        ]
        facts = [
            ["invoice", f"{row.number or '(not finalized)'}  {row.id}"],
            ["status", row.status],
            ["customer", f"{customer.name} <{customer.email}>  {customer.id}"],
            ["subscription", row.subscription_id],
            ["period", f"{_when(row.period_start, zone)} – {_when(row.period_end, zone)} ({zone})"],
            ["issued", _when(row.issued_at, zone, time=True)],
            ["finalized", _when(row.finalized_at, zone, time=True)],
            ["paid at", _when(row.paid_at, zone, time=True)],
        ]
        totals = [
            ["subtotal", money(row.subtotal)],
            ["total", money(row.total)],
            ["paid", money(row.amount_paid)],
            ["due", money(row.amount_due)],
        ]
    label = max(_width(f[0]) for f in facts)
    for name, value in facts:
        print(f"{_pad(name, label)}  {value}")
    print()
    if lines:
        print(
            _table(["description", "unit price", "qty", "amount", "period"], lines, right=(1, 2, 3))
        )
    else:
        print("(no lines)")
    print()
    amount = max(_width(t[1]) for t in totals)
    for name, value in totals:
        print(f"{_pad(name, label)}  {_pad(value, amount, right=True)}")
    return 0


def _invoices_html(args: argparse.Namespace) -> int:
    with wiring.session_factory(get_settings())() as session:
        row = _load_invoice(session, args.invoice_id)
        if not row.html:
            raise service.InvalidRequestError(f"invoice {row.id!r} has not been rendered yet")
        html, name = row.html, row.number or row.id
    path = Path(tempfile.gettempdir()) / f"kakin-invoice-{name}.html"
    path.write_text(html, encoding="utf-8")
    print(path)
    if args.open:
        webbrowser.open(path.resolve().as_uri())
    return 0


def _customers_list(args: argparse.Namespace) -> int:
    from api.schemas import CustomerOut

    with wiring.session_factory(get_settings())() as session:
        rows, more = _page(
            lambda: repo.page(
                session, Customer, limit=_limit(args), starting_after=args.starting_after
            )
        )
        if args.json:
            data = [CustomerOut.of(row).model_dump(mode="json") for row in rows]
            _print_json({"object": "list", "data": data, "has_more": more})
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
                _when(row.created_at, row.time_zone),
            ]
            for row in rows
        ]
    if table:
        headers = ["id", "name", "email", "currency", "locale", "time zone", "card", "created"]
        print(_table(headers, table))
    _more(len(table), more, "customers")
    return 0


def _subscriptions_list(args: argparse.Namespace) -> int:
    from api.schemas import SubscriptionOut

    with wiring.session_factory(get_settings())() as session:
        rows, more = _page(
            lambda: repo.subscriptions(
                session,
                limit=_limit(args),
                starting_after=args.starting_after,
                status=args.status,
                customer_id=args.customer,
            )
        )
        if args.json:
            data = [SubscriptionOut.of(row).model_dump(mode="json") for row in rows]
            _print_json({"object": "list", "data": data, "has_more": more})
            return 0
        table = []
        for row in rows:
            price, customer = row.price, row.customer
            every = (
                price.interval
                if price.interval_count == 1
                else (f"{price.interval_count} {price.interval}s")
            )
            amount = _money(price.unit_amount * row.quantity, price.currency, customer)
            table.append(
                [
                    row.id,
                    row.status + (" (ends)" if row.cancel_at_period_end else ""),
                    customer.name,
                    f"{price.product.name} ×{row.quantity}"
                    if row.quantity > 1
                    else price.product.name,
                    f"{amount} / {every}",
                    _when(row.current_period_end, customer.time_zone),
                    _when(row.created_at, customer.time_zone),
                ]
            )
    if table:
        headers = ["id", "status", "customer", "plan", "amount", "period end", "created"]
        print(_table(headers, table, right=(4,)))
    _more(len(table), more, "subscriptions")
    return 0


def _moment(text: str) -> datetime:
    """An ISO 8601 time for --since/--until; a date alone is midnight UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    return value if len(text) > 10 else value.replace(tzinfo=ZoneInfo("UTC"))


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if _width(text) <= width else text[: width - 1] + "…"


def _audit_list(args: argparse.Namespace) -> int:
    from api.routers.audit import AuditEntryOut
    from kakin import audit

    with wiring.session_factory(get_settings())() as session:
        rows, more = audit.list_entries(
            session,
            limit=_limit(args),
            starting_after=args.starting_after,
            subscription_id=args.subscription,
            customer_id=args.customer,
            actor=args.actor,
            action=args.audit_action,
            since=args.since,
            until=args.until,
        )
        if args.json:
            data = [AuditEntryOut.of(row).model_dump(mode="json") for row in rows]
            _print_json({"object": "list", "data": data, "has_more": more})
            return 0
        table = [
            [
                str(row.id),
                _when(row.occurred_at, time=True) + "Z",
                f"{row.entity_type} {row.entity_id}",
                row.action,
                f"{row.from_status or '-'} → {row.to_status}" if row.to_status else "",
                row.actor,
                _short(row.reason),
            ]
            for row in rows
        ]
    if table:
        headers = ["id", "occurred (UTC)", "what", "action", "status", "actor", "reason"]
        print(_table(headers, table, right=(0,)))
    _more(len(table), more, "audit entries")
    return 0


def _api(args: argparse.Namespace) -> int:
    from api.app import build_app

    settings = starter.settings_from(args)  # the API signals and queries Temporal too
    wiring.serve_http(build_app(settings), host=args.host, port=args.port)
    return 0


def _codec_server(args: argparse.Namespace) -> int:
    from kakin.codec_server import build_codec_app

    wiring.serve_http(build_codec_app(get_settings()), host=args.host, port=args.port)
    return 0


def _encryption_key(args: argparse.Namespace) -> int:
    from kakin.codec import new_key_entry

    print(new_key_entry(args.id))
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

    worker = commands.add_parser("worker", help="run a worker")
    starter.add_connection_options(worker, after_command=True)
    worker.set_defaults(handler=_worker)
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

    def listing(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--limit", type=int, default=20, help=f"at most {MAX_LIMIT}")
        parser.add_argument("--starting-after", help="the last id of the previous page")
        parser.add_argument("--json", action="store_true", help="print JSON")

    invoices = commands.add_parser("invoices", help="read invoices").add_subparsers(
        dest="action", required=True
    )
    listed = invoices.add_parser("list", help="invoices, newest first")
    listed.add_argument("--customer", help="only this customer's (cus_...)")
    listed.add_argument("--subscription", help="only this subscription's (sub_...)")
    listed.add_argument("--status", choices=[s.value for s in InvoiceStatus])
    listing(listed)
    listed.set_defaults(handler=_invoices_list)
    show = invoices.add_parser("show", help="one invoice with its lines and totals")
    show.add_argument("invoice_id")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_invoices_show)
    html = invoices.add_parser("html", help="write the rendered invoice to a file")
    html.add_argument("invoice_id")
    html.add_argument("--open", action="store_true", help="open it in a web browser")
    html.set_defaults(handler=_invoices_html)
    cli_billing.add_commands(commands, invoices)

    customers = commands.add_parser("customers", help="read customers").add_subparsers(
        dest="action", required=True
    )
    listed = customers.add_parser("list", help="customers, newest first")
    listing(listed)
    listed.set_defaults(handler=_customers_list)

    subscriptions = commands.add_parser(
        "subscriptions", help="read subscriptions (stored rows)"
    ).add_subparsers(dest="action", required=True)
    listed = subscriptions.add_parser("list", help="subscriptions, newest first")
    listed.add_argument("--status", choices=[s.value for s in SubscriptionStatus])
    listed.add_argument("--customer", help="only this customer's (cus_...)")
    listing(listed)
    listed.set_defaults(handler=_subscriptions_list)

    audit = commands.add_parser("audit", help="read the audit log").add_subparsers(
        dest="action", required=True
    )
    listed = audit.add_parser("list", help="who did what and why, newest first")
    listed.add_argument(
        "--subscription", help="a subscription's entries and its invoices' (sub_...)"
    )
    listed.add_argument(
        "--customer", help="a customer's, its subscriptions' and invoices' (cus_...)"
    )
    listed.add_argument("--actor", help="e.g. support:ken; an API key's by api-key:<key id>")
    listed.add_argument("--action", dest="audit_action", help="e.g. canceled, paused, paid")
    listed.add_argument(
        "--since", type=_moment, help="occurred at or after (ISO 8601; a date is UTC)"
    )
    listed.add_argument("--until", type=_moment, help="occurred before (ISO 8601; a date is UTC)")
    listed.add_argument("--limit", type=int, default=20, help=f"at most {MAX_LIMIT}")
    listed.add_argument("--starting-after", type=int, help="the last id of the previous page")
    listed.add_argument("--json", action="store_true", help="print the HTTP API's JSON")
    listed.set_defaults(handler=_audit_list)

    api = commands.add_parser("api", help="run the HTTP API")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    starter.add_connection_options(api, after_command=True)
    api.set_defaults(handler=_api)

    codec_server = commands.add_parser(
        "codec-server", help="decrypt payloads for the Temporal UI (support and admin keys)"
    )
    codec_server.add_argument("--host", default="127.0.0.1")
    codec_server.add_argument("--port", type=int, default=8081)
    codec_server.set_defaults(handler=_codec_server)
    encryption_key = commands.add_parser(
        "encryption-key", help="print a new payload-encryption key entry (id:base64)"
    )
    encryption_key.add_argument("--id", help="the key id (default: k<date>-<random>)")
    encryption_key.set_defaults(handler=_encryption_key)

    starter.add_subscription_commands(commands)
    starter.add_connection_options(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        if args.command in ("start", "cancel", "pause", "resume", "status", "update-card"):
            starter.exit_process(asyncio.run(starter.run_command(args)))
        return int(args.handler(args))
    except (service.InvalidRequestError, EncryptionKeyError, ConfigurationError) as error:
        # A bad KAKIN_* setting is one line naming it, from every command (not a traceback).
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
