"""``kakin invoices list|show|html|upcoming|pdf``: reading invoices."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import webbrowser
from pathlib import Path
from typing import Any

from billing.rounding import RoundingMode
from kakin import runtime
from kakin.adapters.rendering import make_template_env
from kakin.cli.output import (
    fetch_page,
    format_money,
    format_table,
    format_when,
    listing,
    pad_to,
    page_limit,
    print_json,
    print_more,
    sessions,
    text_width,
)
from kakin.platform.settings import get_settings
from kakin.services import reads, subscriptions
from kakin.services.errors import InvalidRequestError, NotFoundError
from kakin.services.invoice_documents import invoice_pdf
from kakin.services.invoices import upcoming_draft
from kakin.views.invoices import InvoiceDetail, InvoiceOut
from models.payloads import InvoiceStatus
from models.tables import Invoice


def _load_invoice(session: Any, invoice_id: str) -> Invoice:
    try:
        return reads.get_invoice(session, invoice_id)
    except NotFoundError as error:
        raise InvalidRequestError(str(error)) from None


def _invoices_list(args: argparse.Namespace) -> int:
    with sessions()() as session:
        rows, more = fetch_page(
            lambda: reads.list_invoices(
                session,
                limit=page_limit(args),
                starting_after=args.starting_after,
                status=args.status,
                customer_id=args.customer,
                subscription_id=args.subscription,
            )
        )
        if args.json:
            data = [InvoiceOut.of(row).model_dump(mode="json") for row in rows]
            print_json({"object": "list", "data": data, "has_more": more})
            return 0
        table = [
            [
                row.number or "-",
                row.id,
                row.status,
                format_money(row.total, row.currency, row.customer),
                format_money(row.amount_paid, row.currency, row.customer),
                f"{format_when(row.period_start, row.customer.time_zone)} – "
                f"{format_when(row.period_end, row.customer.time_zone)}",
                row.customer.name,
                row.subscription_id,
            ]
            for row in rows
        ]
    if table:
        headers = ["number", "id", "status", "total", "paid", "period", "customer", "subscription"]
        print(format_table(headers, table, right=(3, 4)))
    print_more(len(table), more, "invoices")
    return 0


def _invoices_show(args: argparse.Namespace) -> int:
    with sessions()() as session:
        row = _load_invoice(session, args.invoice_id)
        customer, zone = row.customer, row.customer.time_zone
        if args.json:
            data = InvoiceDetail.with_lines(row).model_dump(mode="json")
            data["customer"] = {"id": customer.id, "name": customer.name, "locale": customer.locale}
            data["amount_due"] = row.amount_due
            print_json(data)
            return 0

        def money(amount: int) -> str:
            return format_money(amount, row.currency, customer)

        lines = [
            [
                line.description,
                money(line.unit_amount),
                str(line.quantity),
                money(line.amount),
                f"{format_when(line.period_start, zone)} – {format_when(line.period_end, zone)}",
            ]
            for line in row.lines
        ]
        period = f"{format_when(row.period_start, zone)} – {format_when(row.period_end, zone)}"
        facts = [
            ["invoice", f"{row.number or '(not finalized)'}  {row.id}"],
            ["status", row.status],
            ["customer", f"{customer.name} <{customer.email}>  {customer.id}"],
            ["subscription", row.subscription_id],
            ["period", f"{period} ({zone})"],
            ["issued", format_when(row.issued_at, zone, time=True)],
            ["finalized", format_when(row.finalized_at, zone, time=True)],
            ["paid at", format_when(row.paid_at, zone, time=True)],
        ]
        totals = [
            ["subtotal", money(row.subtotal)],
            ["total", money(row.total)],
            ["paid", money(row.amount_paid)],
            ["due", money(row.amount_due)],
        ]
    label = max(text_width(f[0]) for f in facts)
    for name, value in facts:
        print(f"{pad_to(name, label)}  {value}")
    print()
    if lines:
        print(
            format_table(
                ["description", "unit price", "qty", "amount", "period"], lines, right=(1, 2, 3)
            )
        )
    else:
        print("(no lines)")
    print()
    amount = max(text_width(t[1]) for t in totals)
    for name, value in totals:
        print(f"{pad_to(name, label)}  {pad_to(value, amount, right=True)}")
    return 0


def _invoices_html(args: argparse.Namespace) -> int:
    with sessions()() as session:
        row = _load_invoice(session, args.invoice_id)
        if not row.html:
            raise InvalidRequestError(f"invoice {row.id!r} has not been rendered yet")
        html, name = row.html, row.number or row.id
    path = Path(tempfile.gettempdir()) / f"kakin-invoice-{name}.html"
    path.write_text(html, encoding="utf-8")
    print(path)
    if args.open:
        webbrowser.open(path.resolve().as_uri())
    return 0


def _invoices_upcoming(args: argparse.Namespace) -> int:
    settings = get_settings()

    async def ask() -> Any:
        client = await runtime.temporal_client(settings)
        return await subscriptions.subscription_status(client, args.subscription)

    view = asyncio.run(ask())
    with sessions()() as session:
        subscription = reads.get_subscription(session, args.subscription)
        if view.next_period_start is None or view.next_period_end is None:
            raise InvalidRequestError(f"{args.subscription} has no upcoming invoice")
        draft = upcoming_draft(
            session,
            subscription,
            next_start=view.next_period_start,
            next_end=view.next_period_end,
            pending_price=reads.find_price(session, view.pending_price_id)
            if view.pending_price_id
            else None,
            rounding=RoundingMode(settings.tax_rounding),
        )
        customer, totals = subscription.customer, draft.totals
    if args.json:
        print_json(
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
            return str(format_money(amount, draft.currency, customer))

        rows = [[x.description, x.usage_quantity or str(x.quantity), money(x.amount)]
                for x in draft.lines]  # fmt: skip
        print(format_table(["description", "qty", "amount"], rows, right=(1, 2)))
        for item in draft.tax_breakdown:
            print(f"{item['name']} {item['percentage']}%  on {money(item['taxable'])}: "
                  f"{money(item['tax'])}")  # fmt: skip
        print(f"total {money(totals.total)}  due {money(totals.amount_due)}")
    runtime.exit_process(0)  # temporalio#300: end a client process without its teardown
    return 0


def _invoices_pdf(args: argparse.Namespace) -> int:
    with sessions()() as session:
        invoice = reads.get_invoice(session, args.invoice_id)
        pdf = invoice_pdf(invoice, runtime.seller(get_settings()), make_template_env())
        name = invoice.number or invoice.id
    path = Path(args.output or Path(tempfile.gettempdir()) / f"kakin-invoice-{name}.pdf")
    path.write_bytes(pdf)
    print(path)
    if args.open:
        webbrowser.open(path.resolve().as_uri())
    return 0


def add_commands(commands: Any) -> None:
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
    upcoming = invoices.add_parser("upcoming", help="the invoice the next renewal will create")
    upcoming.add_argument("subscription")
    upcoming.add_argument("--json", action="store_true")
    upcoming.set_defaults(handler=_invoices_upcoming)
    pdf = invoices.add_parser("pdf", help="write the invoice as PDF")
    pdf.add_argument("invoice_id")
    pdf.add_argument("--output", help="file to write (default: a temporary file)")
    pdf.add_argument("--open", action="store_true")
    pdf.set_defaults(handler=_invoices_pdf)
