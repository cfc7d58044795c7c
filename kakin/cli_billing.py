"""``kakin`` commands for usage-based billing: metrics, usage, taxes, coupons, credit notes.

They call the same functions as the HTTP API (kakin.catalog, kakin.usage,
kakin.credit_notes), so a rule holds the same at a terminal as over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import webbrowser
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from activities.invoice_builder import current_usage, upcoming_draft
from billing.rounding import RoundingMode
from kakin import catalog, credit_notes, service, wiring
from kakin.settings import get_settings
from kakin.usage import UsageEventIn, ingest
from models import repositories as repo
from models.tables import Price


def _cli() -> Any:
    from kakin import cli  # the table and money helpers; imported late: cli imports us

    return cli


def _sessions() -> Any:
    return wiring.session_factory(get_settings())


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


def _price_create(args: argparse.Namespace) -> int:
    price_id = catalog.create_price(
        _sessions(),
        product_name=args.product,
        currency=args.currency,
        unit_amount=args.unit_amount,
        interval=args.interval,
        interval_count=args.interval_count,
        pricing_model=args.model,
        unit_amount_decimal=args.unit_amount_decimal,
        package_size=args.package_size,
        tiers=args.tier or None,
        metric_code=args.metric,
        tax_rate_ids=args.tax_rate or [],
    )
    print(price_id)
    return 0


def _metric_create(args: argparse.Namespace) -> int:
    print(
        catalog.create_metric(
            _sessions(),
            code=args.code,
            name=args.name or args.code,
            aggregation=args.aggregation,
            property=args.property,
        )
    )
    return 0


def _tax_rate_create(args: argparse.Namespace) -> int:
    print(
        catalog.create_tax_rate(
            _sessions(),
            name=args.name,
            percentage=args.percentage,
            inclusive=args.inclusive,
            jurisdiction=args.jurisdiction,
            reduced=args.reduced,
        )
    )
    return 0


def _coupon_create(args: argparse.Namespace) -> int:
    print(
        catalog.create_coupon(
            _sessions(),
            code=args.code,
            name=args.name or args.code,
            duration=args.duration,
            percent_off=args.percent_off,
            amount_off=args.amount_off,
            currency=args.currency,
            duration_in_periods=args.periods,
            redeem_by=args.redeem_by,
            max_redemptions=args.max_redemptions,
        )
    )
    return 0


def _coupon_redeem(args: argparse.Namespace) -> int:
    print(catalog.redeem_coupon(_sessions(), subscription_id=args.subscription, code=args.code))
    return 0


def _item_add(args: argparse.Namespace) -> int:
    print(
        catalog.add_item(
            _sessions(),
            subscription_id=args.subscription,
            price_id=args.price,
            quantity=args.quantity,
        )
    )
    return 0


def _usage_report(args: argparse.Namespace) -> int:
    """One event from the options, or JSON lines from ``--file`` (``-`` for stdin)."""
    if args.file:
        stream = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
        with stream:
            raw = [json.loads(line) for line in stream if line.strip()]
    else:
        if not (args.event_id and args.metric):
            raise service.InvalidRequestError("give --event-id and --metric, or --file")
        properties = dict(item.split("=", 1) for item in args.property or [])
        raw = [{"event_id": args.event_id, "metric": args.metric,
                "timestamp": args.timestamp or datetime.now(UTC).isoformat(),
                "customer_id": args.customer, "subscription_id": args.subscription,
                "properties": properties}]  # fmt: skip
    events = []
    for item in raw:
        try:
            events.append(
                UsageEventIn(
                    event_id=str(item["event_id"]),
                    metric=str(item["metric"]),
                    timestamp=datetime.fromisoformat(item["timestamp"]),
                    properties=dict(item.get("properties") or {}),
                    customer_id=item.get("customer_id"),
                    subscription_id=item.get("subscription_id"),
                )
            )
        except (KeyError, TypeError, ValueError) as error:
            raise service.InvalidRequestError(f"event {item!r} is malformed: {error}") from None
    status = 0
    for start in range(0, len(events), 1000):
        for result in ingest(_sessions(), events[start : start + 1000]):
            line = f"{result.status:9}  {result.event_id}"
            print(f"{line}  {result.reason}".rstrip())
            status = 1 if result.status == "rejected" else status
    return status


def _usage_show(args: argparse.Namespace) -> int:
    cli = _cli()
    with _sessions()() as session:
        subscription = repo.subscription(session, args.subscription)
        lines = current_usage(session, subscription)
        currency, customer = subscription.price.currency, subscription.customer
        start, end = subscription.current_period_start, subscription.current_period_end
    if args.json:
        cli._print_json(
            {
                "subscription_id": args.subscription,
                "period_start": start,
                "period_end": end,
                "currency": currency,
                "lines": [
                    {
                        "description": x.description,
                        "quantity": x.usage_quantity,
                        "amount": x.amount,
                        "details": x.details,
                    }
                    for x in lines
                ],
                "amount": sum(x.amount for x in lines),
            }
        )
        return 0
    zone = customer.time_zone
    print(f"period  {cli._when(start, zone)} – {cli._when(end, zone)} ({zone})")
    rows = [[x.description, x.usage_quantity or "", cli._money(x.amount, currency, customer)]
            for x in lines]  # fmt: skip
    print(cli._table(["metered price", "usage so far", "cost so far"], rows, right=(1, 2)))
    print(f"total so far  {cli._money(sum(x.amount for x in lines), currency, customer)}")
    return 0


def _invoices_upcoming(args: argparse.Namespace) -> int:
    import starter

    settings = get_settings()

    async def ask() -> Any:
        client = await wiring.temporal_client(settings)
        return await service.subscription_status(client, args.subscription)

    view = asyncio.run(ask())
    cli = _cli()
    with _sessions()() as session:
        subscription = repo.subscription(session, args.subscription)
        if view.next_period_start is None or view.next_period_end is None:
            raise service.InvalidRequestError(f"{args.subscription} has no upcoming invoice")
        draft = upcoming_draft(
            session,
            subscription,
            next_start=view.next_period_start,
            next_end=view.next_period_end,
            pending_price=session.get(Price, view.pending_price_id)
            if view.pending_price_id
            else None,
            rounding=RoundingMode(settings.tax_rounding),
        )
        customer, totals = subscription.customer, draft.totals
    if args.json:
        cli._print_json(
            {
                "subscription_id": args.subscription,
                "period_start": view.next_period_start,
                "period_end": view.next_period_end,
                "currency": draft.currency,
                "lines": [vars(line) for line in draft.lines],
                "taxes": draft.tax_breakdown,
                "total": totals.total,
                "credit_applied": totals.credit_applied,
                "amount_due": totals.amount_due,
            }
        )
    else:

        def money(amount: int) -> str:
            return str(cli._money(amount, draft.currency, customer))

        rows = [[x.description, x.usage_quantity or str(x.quantity), money(x.amount)]
                for x in draft.lines]  # fmt: skip
        print(cli._table(["description", "qty", "amount"], rows, right=(1, 2)))
        for item in draft.tax_breakdown:
            print(f"{item['name']} {item['percentage']}%  on {money(item['taxable'])}: "
                  f"{money(item['tax'])}")  # fmt: skip
        print(f"total {money(totals.total)}  due {money(totals.amount_due)}")
    starter.exit_process(0)  # temporalio#300: end a client process without its teardown
    return 0


def _invoices_pdf(args: argparse.Namespace) -> int:
    from activities.billing import invoice_pdf
    from activities.rendering import make_template_env

    with _sessions()() as session:
        invoice = repo.invoice(session, args.invoice_id)
        pdf = invoice_pdf(invoice, wiring.seller(get_settings()), make_template_env())
        name = invoice.number or invoice.id
    path = Path(args.output or Path(tempfile.gettempdir()) / f"kakin-invoice-{name}.pdf")
    path.write_bytes(pdf)
    print(path)
    if args.open:
        webbrowser.open(path.resolve().as_uri())
    return 0


def _credit_note_create(args: argparse.Namespace) -> int:
    settings = get_settings()
    note = credit_notes.issue_credit_note(
        _sessions(), wiring.stripe_gateway(settings), invoice_id=args.invoice_id,
        reason=args.reason, method=args.method, actor=f"cli:{args.requested_by}",
        amount=args.amount, memo=args.memo,
    )  # fmt: skip
    print(note)
    return 0


def add_commands(commands: Any, invoices: Any) -> None:
    """Register the commands on the ``kakin`` parser (and on its ``invoices`` group)."""
    price = commands.add_parser("price", help="prices").add_subparsers(dest="action", required=True)
    create = price.add_parser("create", help="create a product and its price (any model)")
    create.add_argument("--product", required=True, help="product name")
    create.add_argument("--currency", default="JPY", help="ISO 4217 (default JPY)")
    create.add_argument("--unit-amount", type=int, default=0, help="minor units; flat per seat")
    create.add_argument("--interval", default="month", choices=["day", "week", "month", "year"])
    create.add_argument("--interval-count", type=int, default=1)
    create.add_argument(
        "--model", default="flat", choices=["flat", "per_unit", "graduated", "volume", "package"]
    )
    create.add_argument("--unit-amount-decimal", help='per unit or package, e.g. "0.015"')
    create.add_argument("--package-size", type=int)
    create.add_argument("--tier", type=_tier, action="append", help="UP_TO:UNIT[:FLAT], repeat")
    create.add_argument("--metric", help="a metric code: the price is billed on usage")
    create.add_argument("--tax-rate", action="append", help="a tax rate id (txr_...), repeat")
    create.set_defaults(handler=_price_create)

    metric = commands.add_parser("metric", help="billable metrics").add_subparsers(
        dest="action", required=True
    )
    create = metric.add_parser("create", help="define what usage events add up to")
    create.add_argument("--code", required=True)
    create.add_argument("--name")
    create.add_argument(
        "--aggregation", required=True, choices=["count", "sum", "max", "unique_count", "latest"]
    )
    create.add_argument("--property", help="the event property aggregated (not for count)")
    create.set_defaults(handler=_metric_create)

    tax = commands.add_parser("tax-rate", help="tax rates").add_subparsers(
        dest="action", required=True
    )
    create = tax.add_parser("create", help="a tax rate, e.g. 消費税 10%%")
    create.add_argument("--name", required=True)
    create.add_argument("--percentage", required=True)
    create.add_argument("--inclusive", action="store_true")
    create.add_argument("--reduced", action="store_true", help="Japan's reduced rate (※)")
    create.add_argument("--jurisdiction", default="")
    create.set_defaults(handler=_tax_rate_create)

    coupon = commands.add_parser("coupon", help="coupons").add_subparsers(
        dest="action", required=True
    )
    create = coupon.add_parser("create", help="a percentage or fixed-amount coupon")
    create.add_argument("--code", required=True)
    create.add_argument("--name")
    create.add_argument("--duration", required=True, choices=["once", "repeating", "forever"])
    create.add_argument("--percent-off")
    create.add_argument("--amount-off", type=int)
    create.add_argument("--currency")
    create.add_argument("--periods", type=int, help="with repeating: how many invoices")
    create.add_argument("--redeem-by", type=datetime.fromisoformat, help="ISO time with zone")
    create.add_argument("--max-redemptions", type=int)
    create.set_defaults(handler=_coupon_create)
    redeem = coupon.add_parser("redeem", help="apply a coupon from the next invoice")
    redeem.add_argument("subscription")
    redeem.add_argument("code")
    redeem.set_defaults(handler=_coupon_redeem)

    item = commands.add_parser("item", help="prices a subscription holds besides its plan")
    item_actions = item.add_subparsers(dest="action", required=True)
    add = item_actions.add_parser("add", help="add a metered price or an add-on")
    add.add_argument("subscription")
    add.add_argument("price")
    add.add_argument("--quantity", type=int, default=1)
    add.set_defaults(handler=_item_add)

    usage = commands.add_parser("usage", help="usage events").add_subparsers(
        dest="action", required=True
    )
    report = usage.add_parser("report", help="report usage (one event, or JSON lines)")
    report.add_argument("--file", help="JSON lines, one event each ('-': stdin)")
    report.add_argument("--event-id")
    report.add_argument("--metric")
    report.add_argument("--customer")
    report.add_argument("--subscription")
    report.add_argument("--timestamp", help="ISO time with zone (default: now)")
    report.add_argument("--property", action="append", help="NAME=VALUE, repeat")
    report.set_defaults(handler=_usage_report)
    show = usage.add_parser("show", help="the open period's usage and its cost so far")
    show.add_argument("subscription")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_usage_show)

    upcoming = invoices.add_parser("upcoming", help="the invoice the next renewal will create")
    upcoming.add_argument("subscription")
    upcoming.add_argument("--json", action="store_true")
    upcoming.set_defaults(handler=_invoices_upcoming)
    pdf = invoices.add_parser("pdf", help="write the invoice as PDF")
    pdf.add_argument("invoice_id")
    pdf.add_argument("--output", help="file to write (default: a temporary file)")
    pdf.add_argument("--open", action="store_true")
    pdf.set_defaults(handler=_invoices_pdf)

    credit = commands.add_parser("credit-note", help="credit notes").add_subparsers(
        dest="action", required=True
    )
    create = credit.add_parser("create", help="credit a paid invoice (refund or credit)")
    create.add_argument("invoice_id")
    create.add_argument(
        "--reason", required=True,
        choices=["duplicate", "fraudulent", "order_change", "product_unsatisfactory"],
    )  # fmt: skip
    create.add_argument("--method", required=True, choices=["refund", "credit"])
    create.add_argument("--amount", type=int, help="minor units (default: all that remains)")
    create.add_argument("--memo", default="")
    create.add_argument("--requested-by", required=True, help="who asks, e.g. support:ken")
    create.set_defaults(handler=_credit_note_create)
