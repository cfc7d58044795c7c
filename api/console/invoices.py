"""Invoices in the console: the list with its filters, an invoice's page (its lines, tax,
payments, credit notes, the document the customer gets and its PDF), and the support
actions on it: void, write off, credit note.

Every action takes the HTTP API's own path: void and write-off are ``api.routers.
invoices.waive`` (only the invoice a subscription's workflow is collecting, through its
``waive_invoice`` update), a credit note is ``api.routers.documents.do_credit`` (the
``credit_notes`` service, refunded at Stripe or kept as customer credit), and the PDF is
``documents.pdf_response``; the actor is the staff member (``staff:<email>``), as the
API's is its key. Every role reads; support and admin act (as the API's keys may), and a
finance member's POST is a 403 (``require_staff``).

A credit form that is wrong (an amount that is not a number, not above zero, or more
than the invoice's creditable remainder) comes back with the error beside its field and
stores nothing; a refusal comes back with the service's own sentence above the form.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from api.console.auth import (
    AnyStaff,
    ConsoleDenied,
    SignedIn,
    Support,
    console_of,
    form_of,
    locale_of,
)
from api.console.messages import translator
from api.console.refusals import REFUSALS, FormErrors, refusal
from api.console.rendering import render, see_other
from api.deps import Deps, deps_of
from api.errors import SERVICE_ERRORS
from api.requests.invoices import CreditNoteCreate, InvoiceActionCreate
from api.routers.documents import do_credit, pdf_response
from api.routers.invoices import waive
from billing.money import exponent, format_amount
from kakin.services import credit_notes, customers
from kakin.services import invoices as invoice_service
from kakin.services.credit_notes import Creditable
from kakin.services.staff import StaffRole
from kakin.views.credit_notes import CreditNoteOut
from kakin.views.customers import CustomerOut
from kakin.views.invoices import InvoiceDetail, InvoiceOut, PaymentOut
from models.payloads import InvoiceStatus
from models.tables import Invoice

router = APIRouter(include_in_schema=False)

LIST = "/console/invoices"
PAGE_SIZE = 25
STATUSES = tuple(InvoiceStatus)
CREDIT_REASONS = ("duplicate", "fraudulent", "order_change", "product_unsatisfactory")
METHODS = ("refund", "credit")
DONE = ("void", "write_off", "credit")
NONE = "'none'"


def _path(invoice_id: str) -> str:
    return f"{LIST}/{invoice_id}"


def can_act(me: SignedIn) -> bool:
    return me.staff.role in (StaffRole.SUPPORT, StaffRole.ADMIN)


# -- the list -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Listed:
    """One row of the list: the invoice, whose it is, what is left to pay."""

    invoice: InvoiceOut
    customer_name: str
    time_zone: str
    amount_due: int
    overdue: bool


@dataclass(frozen=True)
class Filters:
    """The list's filters as the query string gives them (each "" when not set)."""

    status: str = ""
    overdue: bool = False
    customer: str = ""
    period_from: str = ""
    period_to: str = ""

    def query(self, **more: str) -> str:
        """The query string of these filters (and ``more``), for links that keep them."""
        pairs = {
            "status": self.status, "overdue": "1" if self.overdue else "",
            "customer": self.customer, "from": self.period_from, "to": self.period_to, **more,
        }  # fmt: skip
        kept = {k: v for k, v in pairs.items() if v}
        return f"?{urlencode(kept)}" if kept else ""


def _day(text: str) -> date | None:
    """A ``YYYY-MM-DD`` day; ValueError for anything else."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(text)
    return date.fromisoformat(text)


def _filters(request: Request) -> tuple[Filters, dict[str, date | None], dict[str, str]]:
    """The filters asked for, their days, and a field's error for a day not understood."""
    query = request.query_params
    status = query.get("status", "")
    filters = Filters(
        status=status if status in STATUSES else "",
        overdue=query.get("overdue", "") == "1",
        customer=query.get("customer", "").strip()[:60],
        period_from=query.get("from", "").strip()[:10],
        period_to=query.get("to", "").strip()[:10],
    )
    days: dict[str, date | None] = {}
    errors: dict[str, str] = {}
    for field, text in (("from", filters.period_from), ("to", filters.period_to)):
        try:
            days[field] = _day(text) if text else None
        except ValueError:
            days[field], errors[field] = None, "inv.filter.bad_date"
    return filters, days, errors


@router.get(LIST)
async def invoice_list(request: Request, me: AnyStaff) -> Response:
    filters, days, errors = _filters(request)
    deps, now = deps_of(request), console_of(request).clock()
    zone = deps.settings.reporting_time_zone
    period_from, period_until = invoice_service.period_bounds(days["from"], days["to"], zone)
    after = request.query_params.get("after") or None

    def listed(row: Invoice) -> Listed:
        customer = row.customer
        return Listed(
            invoice=InvoiceOut.of(row), customer_name=customer.name,
            time_zone=customer.time_zone, amount_due=row.amount_due,
            overdue=invoice_service.is_overdue(row, now),
        )  # fmt: skip

    try:
        rows, more = await run_in_threadpool(
            invoice_service.list_invoices, deps.sessions, listed, limit=PAGE_SIZE,
            starting_after=after, status=filters.status or None,
            customer_id=filters.customer or None, overdue_at=now if filters.overdue else None,
            period_from=period_from, period_until=period_until,
        )  # fmt: skip
    except SERVICE_ERRORS:  # a cursor that names no invoice: the first page
        return see_other(LIST + filters.query())
    return render(
        request, "invoices.html.j2", rows=rows, more=more, after=after, filters=filters,
        errors=errors, statuses=STATUSES, zone=zone,
        next_query=filters.query(after=rows[-1].invoice.id) if more and rows else "",
        first_query=filters.query(),
    )  # fmt: skip


# -- an invoice's page --------------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """What an invoice's page reads."""

    invoice: InvoiceDetail
    customer: CustomerOut
    payments: list[PaymentOut]
    notes: list[CreditNoteOut]
    creditable: Creditable
    has_document: bool
    overdue: bool


def _shown(deps: Deps, invoice_id: str, now: datetime) -> Shown:
    sessions = deps.sessions
    try:
        invoice, has_document, overdue = invoice_service.get_invoice(
            sessions, invoice_id,
            lambda row: (InvoiceDetail.with_lines(row), bool(row.html),
                         invoice_service.is_overdue(row, now)),
        )  # fmt: skip
    except SERVICE_ERRORS:
        raise ConsoleDenied(404, "error.not_found") from None
    return Shown(
        invoice=invoice,
        customer=customers.get_customer(sessions, invoice.customer_id, CustomerOut.of),
        payments=invoice_service.invoice_payments(sessions, invoice_id, PaymentOut.of),
        notes=credit_notes.list_credit_notes(sessions, invoice_id, CreditNoteOut.model_validate),
        creditable=credit_notes.creditable(sessions, invoice_id),
        has_document=has_document,
        overdue=overdue,
    )


async def _invoice_page(
    request: Request,
    me: SignedIn,
    invoice_id: str,
    *,
    status: int = 200,
    action: str = "",
    errors: dict[str, str] | None = None,
    refused: str = "",
    form: dict[str, str] | None = None,
) -> Response:
    """The page; after a wrong form or a refusal, ``action``'s form keeps what was typed
    and shows ``errors`` beside its fields, or ``refused`` above it."""
    deps, now = deps_of(request), console_of(request).clock()
    shown = await run_in_threadpool(_shown, deps, invoice_id, now)
    done = request.query_params.get("done", "") if status == 200 else ""
    creditable = shown.creditable
    return render(
        request, "invoice.html.j2", status=status, inv=shown.invoice, customer=shown.customer,
        payments=shown.payments, notes=shown.notes, creditable=creditable,
        has_document=shown.has_document, overdue=shown.overdue, can_act=can_act(me),
        action=action, errors=errors or {}, refused=refused, form=form or {},
        done=done if done in DONE else "", tz=shown.customer.time_zone,
        reasons=CREDIT_REASONS, methods=METHODS,
        default_method="refund" if creditable.refundable else "credit",
    )  # fmt: skip


@router.get(LIST + "/{invoice_id}")
async def invoice_page(request: Request, invoice_id: str, me: AnyStaff) -> Response:
    return await _invoice_page(request, me, invoice_id)


def document_policy(html: str) -> str:
    """The invoice document's own policy: nothing but its inline styles (by hash), no
    script, framed only by the console (its page shows it), sandboxed."""
    styles = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(css.encode()).digest()).decode() + "'"
        for css in re.findall(r"<style>(.*?)</style>", html, flags=re.DOTALL)
    )
    return "; ".join(
        (
            "default-src 'none'",
            f"style-src {styles or NONE}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'self'",
            "sandbox",
        )
    )


@router.get(LIST + "/{invoice_id}/document")
async def invoice_document(request: Request, invoice_id: str, me: AnyStaff) -> Response:
    """The invoice as the API's ``/html`` serves it: the page kept when it was issued."""
    try:
        html = await run_in_threadpool(
            invoice_service.get_invoice, deps_of(request).sessions, invoice_id,
            lambda row: row.html,
        )  # fmt: skip
    except SERVICE_ERRORS:
        raise ConsoleDenied(404, "error.not_found") from None
    if not html:
        raise ConsoleDenied(404, "error.not_found")
    headers = {"Content-Security-Policy": document_policy(html), "X-Frame-Options": "SAMEORIGIN"}
    return HTMLResponse(html, headers=headers)


@router.get(LIST + "/{invoice_id}/pdf")
async def invoice_pdf(request: Request, invoice_id: str, me: AnyStaff) -> Response:
    """The invoice's PDF, as the API's ``/pdf`` makes it."""
    try:
        return await run_in_threadpool(pdf_response, deps_of(request), invoice_id)
    except SERVICE_ERRORS:
        raise ConsoleDenied(404, "error.not_found") from None


# -- the actions -----------------------------------------------------------------------------


async def _act(
    request: Request,
    me: SignedIn,
    invoice_id: str,
    action: str,
    parse: Callable[[dict[str, str], Callable[..., str]], Any],
    work: Callable[[Deps, Any], Awaitable[str]],
) -> Response:
    """Check the form with ``parse``, then ``work``; back to the page with a notice
    saying what was done (``work``'s answer), or with what was wrong."""
    form = {k: v for k, v in (await form_of(request)).items() if k != "csrf_token"}
    t = translator(locale_of(request, me.staff))
    try:
        body = parse(form, t)
        done = await work(deps_of(request), body)
    except FormErrors as wrong:
        return await _invoice_page(
            request, me, invoice_id, status=422, action=action, errors=wrong.fields, form=form
        )
    except REFUSALS as error:
        status, message = refusal(error)
        return await _invoice_page(
            request, me, invoice_id, status=status, action=action, refused=message, form=form
        )
    return see_other(f"{_path(invoice_id)}?done={done}#done")


def _reason(form: dict[str, str], t: Callable[..., str]) -> InvoiceActionCreate:
    try:
        return InvoiceActionCreate(reason=form.get("reason", ""))
    except ValidationError:
        raise FormErrors({"reason": t("inv.error.reason")}) from None


def _waive(request: Request, me: SignedIn, invoice_id: str, mark_as: InvoiceStatus) -> Any:
    done = "void" if mark_as == InvoiceStatus.VOID else "write_off"

    async def work(deps: Deps, body: InvoiceActionCreate) -> str:
        await waive(
            deps, invoice_id, reason=body.reason, requested_by=me.staff.actor, mark_as=mark_as
        )
        return done

    return _act(request, me, invoice_id, "waive", _reason, work)


@router.post(LIST + "/{invoice_id}/void")
async def void(request: Request, invoice_id: str, me: Support) -> Response:
    response: Response = await _waive(request, me, invoice_id, InvoiceStatus.VOID)
    return response


@router.post(LIST + "/{invoice_id}/write-off")
async def write_off(request: Request, invoice_id: str, me: Support) -> Response:
    response: Response = await _waive(request, me, invoice_id, InvoiceStatus.UNCOLLECTIBLE)
    return response


def amount_example(currency: str) -> str:
    """An amount as a person types it in ``currency``: 1000 (JPY), 12.50 (USD)."""
    places = exponent(currency)
    return "1000" if places == 0 else "12." + "5".ljust(places, "0")


def minor_amount(text: str, currency: str) -> int | None:
    """An amount typed in major units (``3,000``, ``12.50``) in minor units; None when
    empty. ValueError: not a number, or more decimals than the currency has."""
    cleaned = text.replace(",", "").replace(" ", "").strip()
    if not cleaned:
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(text) from None
    if not value.is_finite():
        raise ValueError(text)
    scaled = value.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(text)
    return int(scaled)


@dataclass(frozen=True)
class CreditContext:
    """What the credit form is checked against, read before it is."""

    currency: str
    creditable: Creditable
    lines_amount: int | None  # what the lines chosen come to (None: none chosen)
    lines_refused: bool  # lines the invoice does not charge for were named


def chosen_lines(form: dict[str, str]) -> list[int]:
    """The positions of the lines the form ticks (``line_<position>``)."""
    names = (name.removeprefix("line_") for name in form if name.startswith("line_"))
    return sorted({int(n) for n in names if n.isdigit() and len(n) < 5})


def _credit_form(
    form: dict[str, str], t: Callable[..., str], *, context: CreditContext, locale: str
) -> CreditNoteCreate:
    """The credit form as the API's request, or the fields it gets wrong (an amount
    beyond what ``credit_notes.creditable`` allows says so here; the issue checks again).

    An amount, or lines (their amount with tax, ``credit_notes.credit_for_lines``), or
    neither: all that remains."""
    currency, creditable = context.currency, context.creditable

    def money(amount: int) -> str:
        return format_amount(amount, currency, locale=locale)

    errors: dict[str, str] = {}
    method = form.get("method", "")
    typed = form.get("amount", "").strip()
    amount: int | None = None
    if context.lines_refused:
        errors["lines"] = t("inv.error.lines")
    elif context.lines_amount is not None and typed:
        errors["amount"] = t("inv.error.amount_or_lines")
    elif context.lines_amount is not None:
        amount = context.lines_amount
    else:
        try:
            amount = minor_amount(typed, currency)
        except ValueError:
            errors["amount"] = t("inv.error.amount_nan", example=amount_example(currency))
    field = "lines" if context.lines_amount is not None else "amount"
    if amount is not None and amount <= 0:
        errors[field] = t("inv.error.amount_positive")
    elif not errors:
        wanted = creditable.amount if amount is None else amount
        if wanted > creditable.amount:
            errors[field] = t("inv.error.amount_over", amount=money(creditable.amount))
        elif method == "refund" and wanted > creditable.refundable:
            errors[field] = t("inv.error.refund_over", amount=money(creditable.refundable))
    words = {
        "reason": t("inv.error.credit_reason"),
        "method": t("inv.error.method"),
        "memo": t("inv.error.memo"),
        "amount": t("inv.error.amount_positive"),
    }
    try:
        body = CreditNoteCreate(
            reason=form.get("reason", ""),  # type: ignore[arg-type]
            method=method,  # type: ignore[arg-type]
            amount=amount if not errors else None,
            memo=form.get("memo", "").strip(),
        )
    except ValidationError as error:
        for problem in error.errors():
            name = str(problem["loc"][0]) if problem["loc"] else ""
            errors.setdefault(name, words.get(name, t("inv.error.form")))
    if errors:
        raise FormErrors(errors)
    return body


@router.post(LIST + "/{invoice_id}/credit-notes")
async def credit_note(request: Request, invoice_id: str, me: Support) -> Response:
    deps = deps_of(request)
    locale = locale_of(request, me.staff)
    positions = chosen_lines(await form_of(request))

    def read() -> CreditContext:
        sessions = deps.sessions
        try:
            currency = invoice_service.get_invoice(sessions, invoice_id, lambda row: row.currency)
        except SERVICE_ERRORS:
            raise ConsoleDenied(404, "error.not_found") from None
        lines_amount, refused = None, False
        if positions:
            try:
                lines_amount = credit_notes.credit_for_lines(sessions, invoice_id, positions)
            except SERVICE_ERRORS:
                refused = True
        return CreditContext(
            currency=currency, creditable=credit_notes.creditable(sessions, invoice_id),
            lines_amount=lines_amount, lines_refused=refused,
        )  # fmt: skip

    context = await run_in_threadpool(read)

    def parse(form: dict[str, str], t: Callable[..., str]) -> CreditNoteCreate:
        return _credit_form(form, t, context=context, locale=locale)

    async def work(deps: Deps, body: CreditNoteCreate) -> str:
        await run_in_threadpool(do_credit, deps, invoice_id, body, me.staff.actor)
        return "credit"

    return await _act(request, me, invoice_id, "credit", parse, work)
