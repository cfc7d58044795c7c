"""``kakin invoices list|show|html|upcoming|pdf``: reading invoices."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import webbrowser
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from billing.rounding import RoundingMode
from kakin import runtime
from kakin.adapters.rendering import make_template_env
from kakin.cli.output import (
    command_group,
    format_money,
    format_table,
    format_when,
    listing,
    pad_to,
    print_json,
    print_list,
    sessions,
    text_width,
)
from kakin.platform.settings import get_settings
from kakin.services import invoices, subscriptions
from kakin.services.errors import InvalidRequestError, NotFoundError
from kakin.services.invoice_documents import invoice_pdf
from kakin.views.invoices import InvoiceDetail, InvoiceOut
from models.payloads import InvoiceStatus
from models.tables import Invoice

T = TypeVar("T")


def _invoice(invoice_id: str, shape: Callable[[Invoice], T]) -> T:
    """The invoice shaped inside its session; an unknown id is a bad request here."""
    try:
        return invoices.get_invoice(sessions(), invoice_id, shape)
    except NotFoundError:
        raise InvalidRequestError(f"invoice {invoice_id!r} does not exist") from None


def _period(start: datetime, end: datetime, zone: str) -> str:
    return f"{format_when(start, zone)} – {format_when(end, zone)}"


def _invoice_row(row: Invoice) -> dict[str, str]:
    customer = row.customer
    return {
        "number": row.number or "-",
        "id": row.id,
        "status": row.status,
        "total": format_money(row.total, row.currency, customer),
        "paid": format_money(row.amount_paid, row.currency, customer),
        "period": _period(row.period_start, row.period_end, customer.time_zone),
        "customer": customer.name,
        "subscription": row.subscription_id,
    }


def _invoices_list(args: argparse.Namespace) -> int:
    return print_list(
        args,
        invoices.list_invoices,
        view=InvoiceOut,
        row_of=_invoice_row,
        what="invoices",
        right=["total", "paid"],
        status=args.status,
        customer_id=args.customer,
        subscription_id=args.subscription,
    )


def _invoice_sheet(row: Invoice) -> tuple[list[list[str]], list[list[str]], list[list[str]]]:
    """The facts, the lines and the totals ``kakin invoices show`` prints."""
    customer, zone = row.customer, row.customer.time_zone

    def money(amount: int) -> str:
        return format_money(amount, row.currency, customer)

    lines = [
        [
            line.description,
            money(line.unit_amount),
            str(line.quantity),
            money(line.amount),
            _period(line.period_start, line.period_end, zone),
        ]
        for line in row.lines
    ]
    facts = [
        ["invoice", f"{row.number or '(not finalized)'}  {row.id}"],
        ["status", row.status],
        ["customer", f"{customer.name} <{customer.email}>  {customer.id}"],
        ["subscription", row.subscription_id],
        ["period", f"{_period(row.period_start, row.period_end, zone)} ({zone})"],
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
    return facts, lines, totals


def _invoices_show(args: argparse.Namespace) -> int:
    if args.json:

        def as_json(row: Invoice) -> dict[str, Any]:
            data = InvoiceDetail.with_lines(row).model_dump(mode="json")
            customer = row.customer
            data["customer"] = {"id": customer.id, "name": customer.name, "locale": customer.locale}
            data["amount_due"] = row.amount_due
            return data

        print_json(_invoice(args.invoice_id, as_json))
        return 0
    facts, lines, totals = _invoice(args.invoice_id, _invoice_sheet)
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


def _write(path: Path, content: str | bytes, *, open_it: bool) -> int:
    """Write the document, print where, and open it in a browser if asked."""
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    print(path)
    if open_it:
        webbrowser.open(path.resolve().as_uri())
    return 0


def _invoices_html(args: argparse.Namespace) -> int:
    html, name = _invoice(args.invoice_id, lambda row: (row.html, row.number or row.id))
    if not html:
        raise InvalidRequestError(f"invoice {args.invoice_id!r} has not been rendered yet")
    path = Path(tempfile.gettempdir()) / f"kakin-invoice-{name}.html"
    return _write(path, html, open_it=args.open)


def _invoices_upcoming(args: argparse.Namespace) -> int:
    settings = get_settings()

    async def ask() -> Any:
        client = await runtime.temporal_client(settings)
        return await subscriptions.subscription_status(client, args.subscription)

    view = asyncio.run(ask())
    period = invoices.upcoming_period(view)
    if period is None:
        raise InvalidRequestError(f"{args.subscription} has no upcoming invoice")
    start, end, ends = period
    customer, draft = invoices.upcoming_invoice(
        sessions(),
        args.subscription,
        lambda subscription, draft: (subscription.customer, draft),
        next_start=start,
        next_end=end,
        pending_price_id=view.pending_price_id,
        rounding=RoundingMode(settings.tax_rounding),
        ends=ends,
    )
    totals = draft.totals
    if args.json:
        print_json(
            {
                "subscription_id": args.subscription,
                "period_start": start,
                "period_end": end,
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
    seller, templates = runtime.seller(get_settings()), make_template_env()
    pdf, name = invoices.get_invoice(
        sessions(),
        args.invoice_id,
        lambda row: (invoice_pdf(row, seller, templates), row.number or row.id),
    )
    path = Path(args.output or Path(tempfile.gettempdir()) / f"kakin-invoice-{name}.pdf")
    return _write(path, pdf, open_it=args.open)


def add_commands(commands: Any) -> None:
    group = command_group(commands, "invoices", "read invoices")
    listed = group.add_parser("list", help="invoices, newest first")
    listed.add_argument("--customer", help="only this customer's (cus_...)")
    listed.add_argument("--subscription", help="only this subscription's (sub_...)")
    listed.add_argument("--status", choices=[s.value for s in InvoiceStatus])
    listing(listed)
    listed.set_defaults(handler=_invoices_list)
    show = group.add_parser("show", help="one invoice with its lines and totals")
    show.add_argument("invoice_id")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_invoices_show)
    html = group.add_parser("html", help="write the rendered invoice to a file")
    html.add_argument("invoice_id")
    html.add_argument("--open", action="store_true", help="open it in a web browser")
    html.set_defaults(handler=_invoices_html)
    upcoming = group.add_parser("upcoming", help="the invoice the next renewal will create")
    upcoming.add_argument("subscription")
    upcoming.add_argument("--json", action="store_true")
    upcoming.set_defaults(handler=_invoices_upcoming)
    pdf = group.add_parser("pdf", help="write the invoice as PDF")
    pdf.add_argument("invoice_id")
    pdf.add_argument("--output", help="file to write (default: a temporary file)")
    pdf.add_argument("--open", action="store_true")
    pdf.set_defaults(handler=_invoices_pdf)
