"""The customer's own billing page (issue 15), at the path of ``KAKIN_BILLING_PAGE_URL``
(``/billing`` by default), grown out of the card-update page (``api/payment_page.py``,
which keeps its own path so the links already emailed keep working).

Reached by a signed, expiring link: the same ``subscription``/``expires``/``token``
query as the card-update link (``kakin.adapters.links``), in every email kakin sends and,
on request, in an email of its own. No staff login and no cookie: every form on the page
carries the link's fields back, and each request is checked again. An altered link is
refused with nothing of the customer shown; an expired but genuine one offers to email a
fresh link to the address on file (never to an address typed in).

The routes, under the base path:

- ``GET  {base}``: the page: this period's bill so far (the upcoming invoice, exactly as
  ``GET /v1/subscriptions/{id}/upcoming-invoice`` answers) drawn against the last invoice
  and the budget, the usage so far (``GET /v1/subscriptions/{id}/usage``), invoices,
  payments, the card on file with the update form, and cancel at period end.
- ``GET  {base}/invoices/{invoice_id}``: an invoice of this customer as PDF (as the API's).
- ``POST {base}/card``, ``POST {base}/cancel``, ``POST {base}/link``,
  ``POST {base}/budget`` (set or change), ``POST {base}/budget/remove``: the forms; each
  answers with a redirect to the page (a 303, so a reload does not post again).
- ``GET  {base}/static/billing.css``: its stylesheet (the CSP admits no inline style).

Every figure comes from the services the API calls; this module only reads, checks the
link and renders. The budget is the subscription's bill-so-far alert
(``alerts.subscription_budget``): it counts the period's bill before tax, discounts
included, so with a budget the chart draws this period by that measure (the service's
own figure) against the budget's line and says so; without one it draws invoice totals.
Cancelling is the API's ``cancel`` signal with ``at_period_end`` true, the actor
``customer:<customer id>`` and the customer's reason in the audit log, offered when
``KAKIN_PORTAL_ALLOW_CANCEL`` allows it (by default in test mode only).
"""

from __future__ import annotations

import asyncio
import logging
import time
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from api.billing_words import WORDS, translator
from api.charts import Band, Chart, Units, band_chart
from api.console.headers import ConsoleHeaders
from api.deps import Deps, deps_of
from api.errors import ApiError
from api.forms import preferred_locale, read_form
from api.payment_page import replace_card
from api.requests.subscriptions import CancelCreate
from api.routers.subscriptions import live_status
from api.routers.usage import upcoming_invoice, usage_so_far
from billing.money import exponent, to_major, to_minor
from kakin import runtime as wiring
from kakin.adapters import links
from kakin.adapters.rendering import DEFAULT_TEMPLATES_DIR
from kakin.adapters.stripe_gateway import CardSummary
from kakin.platform.settings import Settings
from kakin.services import alerts as alert_service
from kakin.services import customers as customer_service
from kakin.services import invoices as invoice_service
from kakin.services import subscriptions as subscription_service
from kakin.services.alerts import AlertDetails
from kakin.services.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    ServiceError,
    UnavailableError,
)
from kakin.services.invoice_documents import invoice_pdf
from kakin.views.invoices import InvoiceOut, PaymentOut, UpcomingInvoice
from kakin.views.usage import CurrentUsage
from models.tables import Invoice, Subscription

log = logging.getLogger("kakin.api.billing_page")

STYLESHEET = DEFAULT_TEMPLATES_DIR / "billing" / "billing.css"
SECTION_SIZE = 24  # invoices and payments shown (two years of monthly bills)


@dataclass(frozen=True)
class Account:
    """The subscription and its customer, as the page shows them."""

    subscription_id: str
    customer_id: str
    name: str
    email: str
    locale: str
    time_zone: str
    currency: str
    plan: str
    status: str
    cancel_at_period_end: bool
    period_start: datetime | None
    period_end: datetime | None

    @classmethod
    def of(cls, row: Subscription) -> Account:
        customer, price = row.customer, row.price
        plan = price.product.name + (f" · {price.nickname}" if price.nickname else "")
        return cls(
            subscription_id=row.id, customer_id=customer.id, name=customer.name,
            email=customer.email, locale=customer.locale, time_zone=customer.time_zone or "UTC",
            currency=price.currency, plan=plan, status=row.status,
            cancel_at_period_end=row.cancel_at_period_end,
            period_start=row.current_period_start, period_end=row.current_period_end,
        )  # fmt: skip


@dataclass(frozen=True)
class Shown:
    """What the page reads from the database (the Temporal reads come after)."""

    account: Account
    invoices: list[InvoiceOut]
    payments: list[PaymentOut]
    card: CardSummary | None
    card_unknown: bool
    usage: CurrentUsage
    budget: AlertDetails | None
    alerts: list[AlertDetails]  # the others: on the subscription, or customer-wide


# -- the link -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """The signed fields a request carried, and what is wrong with them (None: nothing)."""

    subscription_id: str
    expires: str
    token: str
    problem: str | None

    @property
    def query(self) -> str:
        fields = {"subscription": self.subscription_id, "expires": self.expires,
                  "token": self.token}  # fmt: skip
        return urlencode(fields)


def read_link(deps: Deps, values: dict[str, str]) -> Link:
    """The link's fields from a query or a form (bounded: an id is at most 40 characters)."""
    subscription_id = values.get("subscription", "")[:40]
    expires, token = values.get("expires", "")[:20], values.get("token", "")[:64]
    problem = links.problem(
        subscription_id, expires, token, secret=deps.settings.link_secret, now=time.time()
    )
    return Link(subscription_id, expires, token, problem)


def read_account(deps: Deps, subscription_id: str) -> Account | None:
    try:
        return subscription_service.get_subscription(deps.sessions, subscription_id, Account.of)
    except NotFoundError:
        return None


# -- rendering ------------------------------------------------------------------------------


def render(
    request: Request, template: str, *, locale: str, status: int = 200, **context: Any
) -> HTMLResponse:
    settings = deps_of(request).settings
    templates: jinja2.Environment = request.app.state.templates
    html = templates.get_template(f"billing/{template}").render(
        t=translator(locale), locale=locale, seller_name=settings.seller_name,
        base=base_path(settings), **context,
    )  # fmt: skip
    return HTMLResponse(html, status_code=status)


def refused(request: Request, link: Link, account: Account | None) -> HTMLResponse:
    """The page for a link that cannot be used: nothing of the customer on it, and for an
    expired genuine link, the button that emails a fresh one to the address on file."""
    expired = link.problem == "expired" and account is not None
    # The customer's language is known only for a genuine link; else the browser's.
    locale = account.locale if expired and account else preferred_locale(request)
    return render(
        request, "refused.html.j2", locale=locale, status=403, expired=expired,
        link=link if expired else None, missing=False,
    )  # fmt: skip


def bill_chart(
    t: Any, account: Account, upcoming: UpcomingInvoice | None, last: InvoiceOut | None,
    budget: AlertDetails | None,
) -> Chart | None:  # fmt: skip
    """This period's bill so far against the last invoice, and the budget's line, drawn
    from the figures the page was given (``api.charts``).

    A budget counts the bill before tax, discounts included (what a ``bill`` alert
    watches): with one, the chart is this period's bill by that measure (the alert's own
    figure) against the budget's line, like with like; the last invoice is left out, its
    total being tax included. Without one, the bands are invoice totals, tax included
    (what the customer pays).
    """
    if upcoming is None:
        return None
    units = Units(currency=upcoming.currency, locale=account.locale)
    if budget is None or budget.budget is None:
        bands = [Band("so_far", t("chart.so_far"), upcoming.total)]
        if last is not None:
            bands.append(Band("last", t("chart.last"), last.total))
        return band_chart(t("chart.title"), bands, units, series="bill")
    so_far = (
        int(Decimal(budget.current))
        if budget.current is not None
        else upcoming.total - upcoming.tax_total
    )
    bands = [Band("so_far", t("chart.this_period"), so_far)]
    line = Band("budget", t("chart.budget"), int(Decimal(budget.budget)))
    return band_chart(t("chart.title_budget"), bands, units, series="bill", line=line)


@dataclass(frozen=True)
class Level:
    """One threshold of an alert as the page lists it."""

    percent: str | None  # "80" of the budget; None: an absolute value
    value: int | str  # minor units (money), or the metric's quantity
    fired_at: datetime | None
    beyond: str = ""  # fired past the thresholds: "recurring" (the step), or "earlier"


def levels_of(alert: AlertDetails) -> list[Level]:
    """The alert's thresholds in order, each with when it fired this period; then what
    fired this period at other values: the recurring step past the last, or a threshold
    of the budget before the customer changed it."""
    money = alert.currency is not None

    def amount(value: str) -> int | str:
        return int(Decimal(value)) if money else value

    shown = [
        Level(term.get("percent"), amount(value), alert.fired_at.get(value))
        for term, value in zip(alert.thresholds, alert.levels, strict=False)
    ]
    beyond = [key for key in alert.fired if key not in alert.levels and key in alert.fired_at]
    past = "recurring" if alert.recurring else "earlier"
    shown += [
        Level(None, amount(key), alert.fired_at[key], beyond=past)
        for key in beyond
        if not key.startswith("cap")
    ]
    return shown


def read_alerts(deps: Deps, account: Account) -> tuple[AlertDetails | None, list[AlertDetails]]:
    """The budget and the customer's other alerts (the subscription's and customer-wide)."""
    sessions = deps.sessions
    budget = alert_service.subscription_budget(sessions, account.subscription_id)
    others = [
        *alert_service.list_alerts(sessions, subscription_id=account.subscription_id),
        *alert_service.list_alerts(sessions, customer_id=account.customer_id),
    ]
    return budget, [item for item in others if budget is None or item.id != budget.id]


def read_page(deps: Deps, subscription_id: str) -> Shown:
    sessions = deps.sessions
    account = subscription_service.get_subscription(sessions, subscription_id, Account.of)
    first: dict[str, Any] = {"limit": SECTION_SIZE, "starting_after": None}
    invoices, _ = customer_service.list_customer_invoices(
        sessions, account.customer_id, InvoiceOut.of, **first
    )
    payments, _ = customer_service.list_customer_payments(
        sessions, account.customer_id, PaymentOut.of, **first
    )
    try:
        card = customer_service.card_on_file(sessions, deps.stripe, account.customer_id)
        card_unknown = False
    except UnavailableError:
        card, card_unknown = None, True
    budget, alerts = read_alerts(deps, account)
    return Shown(
        account=account,
        # A draft is not the customer's yet: only issued invoices are theirs to see.
        invoices=[i for i in invoices if i.status != "draft" and i.number],
        payments=payments, card=card, card_unknown=card_unknown,
        usage=usage_so_far(deps, subscription_id),
        budget=budget, alerts=alerts,
    )  # fmt: skip


async def bill_so_far(deps: Deps, subscription_id: str) -> tuple[UpcomingInvoice | None, bool]:
    """The upcoming invoice and whether it could be read (False: Temporal did not answer)."""
    try:
        return await upcoming_invoice(deps, subscription_id), True
    except ApiError as error:
        if error.status == 409:  # the subscription ended: nothing more to bill
            return None, True
        return None, False
    except ConflictError:  # it ends at the period end with no usage left to bill
        return None, True
    except ServiceError:
        return None, False


async def show(request: Request) -> Response:
    deps = deps_of(request)
    link = read_link(deps, dict(request.query_params))
    account = await run_in_threadpool(read_account, deps, link.subscription_id)
    if link.problem or account is None:
        return refused(request, link, account)
    shown = await run_in_threadpool(read_page, deps, link.subscription_id)
    # Both ask the workflow; side by side, a Temporal that does not answer costs one wait.
    (upcoming, answered), live = await asyncio.gather(
        bill_so_far(deps, link.subscription_id), live_status(deps, link.subscription_id)
    )
    account = shown.account
    t = translator(account.locale)
    budget = shown.budget
    last = next((i for i in shown.invoices if i.status in ("paid", "open")), None)
    ending = account.cancel_at_period_end or bool(live and live.cancel_at_period_end)
    period_end = (live.current_period_end if live else None) or account.period_end
    state = live.status if live else account.status
    notice = {
        "card": "card.updated", "cancel": "cancel.requested", "budget": "budget.saved",
        "budget_removed": "budget.removed",
    }.get(request.query_params.get("done", ""))  # fmt: skip
    return render(
        request, "page.html.j2", locale=account.locale, a=account, shown=shown,
        upcoming=upcoming, answered=answered, chart=bill_chart(t, account, upcoming, last, budget),
        budget=budget, levels_of=levels_of, ending=ending, period_end=period_end, state=state,
        can_cancel=deps.settings.portal_cancel and not ending and state != "canceled",
        link=link, notice=notice, problem=problem_of(request),
        test_mode=not deps.stripe.live_mode, known=WORDS["en"].keys(),
        budget_major=None if budget is None or budget.budget is None
        else to_major(int(Decimal(budget.budget)), account.currency),
        numbers={invoice.id: invoice.number for invoice in shown.invoices},
    )  # fmt: skip


BUDGET_PROBLEMS = ("budget.needed", "budget.not_a_number", "budget.negative", "budget.zero",
                   "budget.too_precise", "budget.too_large", "budget.refused",
                   "budget.unavailable")  # fmt: skip
PROBLEMS = ("card.not_a_test_card", "card.live", "card.unavailable", "cancel.reason_needed",
            "cancel.refused", "cancel.unavailable", *BUDGET_PROBLEMS)  # fmt: skip


def problem_of(request: Request) -> str | None:
    """The key of what went wrong with the last form (only these: no text from a URL)."""
    key = request.query_params.get("problem", "")
    return key if key in PROBLEMS else None


# -- the forms ------------------------------------------------------------------------------


async def _posted(request: Request) -> tuple[dict[str, str], Link, Account | None]:
    deps = deps_of(request)
    form = read_form(await request.body()) or {}
    link = read_link(deps, form)
    account = await run_in_threadpool(read_account, deps, link.subscription_id)
    return form, link, account


def back(request: Request, link: Link, **outcome: str) -> RedirectResponse:
    """303 to the page, with what happened (``done=card``) or what went wrong."""
    at = outcome.pop("at", "")  # the section to come back to
    query = link.query + ("&" + urlencode(outcome) if outcome else "")
    anchor = f"#{at}" if at else ""
    return RedirectResponse(
        f"{base_path(deps_of(request).settings)}?{query}{anchor}", status_code=303
    )


async def card(request: Request) -> Response:
    form, link, account = await _posted(request)
    if link.problem or account is None:
        return refused(request, link, account)
    failed = await replace_card(
        deps_of(request), account.subscription_id, form.get("card_number", ""),
        locale=account.locale,
    )  # fmt: skip
    if failed is not None:  # the words are the page's; the status says which
        status = failed[0]
        problem = "card.unavailable" if status == 503 else "card.not_a_test_card"
        return back(
            request, link, problem="card.live" if deps_of(request).stripe.live_mode else problem
        )
    return back(request, link, done="card")


async def cancel(request: Request) -> Response:
    form, link, account = await _posted(request)
    if link.problem or account is None:
        return refused(request, link, account)
    deps = deps_of(request)
    if not deps.settings.portal_cancel:
        return back(request, link, problem="cancel.refused")
    try:
        # The API's own request body: the same rule for what a reason must be.
        body = CancelCreate(reason=form.get("reason", ""), at_period_end=True)
    except ValidationError:
        return back(request, link, problem="cancel.reason_needed")
    try:
        await run_in_threadpool(
            subscription_service.check_not_canceled, deps.sessions, account.subscription_id,
            already=True,
        )  # fmt: skip
        client = await deps.connected()
        async with subscription_service.workflow_errors(account.subscription_id, "cancellation"):
            await subscription_service.cancel_subscription(
                client, account.subscription_id,
                requested_by=f"customer:{account.customer_id}", **body.model_dump(),
            )  # fmt: skip
    except (UnavailableError, ApiError):
        return back(request, link, problem="cancel.unavailable")
    except ServiceError as error:  # already canceled, or the workflow has ended
        log.info("cancel of %s refused: %s", account.subscription_id, error)
        return back(request, link, problem="cancel.refused")
    return back(request, link, done="cancel")


def read_budget(text: str, currency: str) -> int | str:
    """The budget typed in the form, in minor units; or the key of what is wrong with it.

    In the currency's major unit as people write it: ``3980``, ``3,980``, ``３９８０``,
    ``¥3,980``, ``12.50``, ``$12.50``.
    """
    typed = unicodedata.normalize("NFKC", text).strip()
    for mark in (",", " ", "¥", "円", "$", "€", "£"):
        typed = typed.replace(mark, "")
    typed = typed.replace("−", "-")
    if not typed:
        return "budget.needed"
    try:
        number = Decimal(typed)
    except ArithmeticError:
        return "budget.not_a_number"
    if not number.is_finite():
        return "budget.not_a_number"
    if number < 0:
        return "budget.negative"
    if number == 0:
        return "budget.zero"
    if number != round(number, exponent(currency)):
        return "budget.too_precise"
    minor = to_minor(number, currency)
    return minor if minor < 10**15 else "budget.too_large"


async def set_budget(request: Request) -> Response:
    """Set or change the budget: the API's alert service, with the customer as the actor."""
    form, link, account = await _posted(request)
    if link.problem or account is None:
        return refused(request, link, account)
    amount = read_budget(form.get("amount", "")[:40], account.currency)
    if isinstance(amount, str):  # nothing is stored from a wrong form
        return back(request, link, problem=amount, at="budget")
    try:
        await run_in_threadpool(
            alert_service.set_budget, deps_of(request).sessions, account.subscription_id,
            amount, actor=f"customer:{account.customer_id}",
        )  # fmt: skip
    except (InvalidRequestError, ConflictError) as error:  # e.g. the subscription ended
        log.info("budget of %s refused: %s", account.subscription_id, error)
        return back(request, link, problem="budget.refused", at="budget")
    except ServiceError as error:
        log.info("budget of %s not set: %s", account.subscription_id, error)
        return back(request, link, problem="budget.unavailable", at="budget")
    return back(request, link, done="budget", at="budget")


async def remove_budget(request: Request) -> Response:
    _, link, account = await _posted(request)
    if link.problem or account is None:
        return refused(request, link, account)
    await run_in_threadpool(
        alert_service.remove_budget, deps_of(request).sessions, account.subscription_id,
        actor=f"customer:{account.customer_id}",
    )  # fmt: skip
    return back(request, link, done="budget_removed", at="budget")


async def send_link(request: Request) -> Response:
    """Email a fresh link to the customer's address on file (the expired link's page)."""
    _, link, account = await _posted(request)
    # A genuine link, current or expired: its customer asks for a new one.
    if link.problem == "invalid" or account is None:
        return refused(request, link, account)
    deps = deps_of(request)
    t = translator(account.locale)
    try:
        await run_in_threadpool(
            wiring.send_billing_link, deps.settings, deps.sessions, account.subscription_id,
            requested_at=datetime.now(UTC),
        )  # fmt: skip
    except Exception as error:  # the provider is down: say so, the customer tries again
        log.warning("billing link for %s not sent: %s", account.subscription_id, error)
        return render(request, "sent.html.j2", locale=account.locale, status=503,
                      message=t("link.unavailable"), error=True)  # fmt: skip
    return render(
        request, "sent.html.j2", locale=account.locale,
        message=t("link.sent", email=masked(account.email)), error=False,
    )  # fmt: skip


def masked(email: str) -> str:
    """``t***@example.com``: enough for the customer to recognise their address."""
    name, at, domain = email.partition("@")
    return f"{name[:1]}***{at}{domain}"


# -- the invoice PDFs -----------------------------------------------------------------------


async def invoice_document(request: Request, invoice_id: str) -> Response:
    deps = deps_of(request)
    link = read_link(deps, dict(request.query_params))
    account = await run_in_threadpool(read_account, deps, link.subscription_id)
    if link.problem or account is None:
        return refused(request, link, account)
    found = await run_in_threadpool(_pdf, request, deps, account, invoice_id[:40])
    if found is None:  # not this customer's invoice (or none such): nothing is said of it
        return render(request, "refused.html.j2", locale=account.locale, status=404,
                      expired=False, link=None, missing=True)  # fmt: skip
    pdf, name = found
    return Response(
        pdf, media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}.pdf"'},
    )  # fmt: skip


def _pdf(
    request: Request, deps: Deps, account: Account, invoice_id: str
) -> tuple[bytes, str] | None:
    """The invoice's PDF as the API serves it, if it is this customer's and issued."""
    seller = wiring.seller(deps.settings)
    templates: jinja2.Environment = request.app.state.templates

    def shape(invoice: Invoice) -> tuple[bytes, str] | None:
        if invoice.customer_id != account.customer_id or not invoice.number:
            return None
        return invoice_pdf(invoice, seller, templates), invoice.number

    try:
        return invoice_service.get_invoice(deps.sessions, invoice_id, shape)
    except NotFoundError:
        return None


async def stylesheet() -> Response:
    return Response(
        STYLESHEET.read_bytes(), media_type="text/css",
        headers={"Cache-Control": "public, max-age=3600"},
    )  # fmt: skip


# -- wiring ---------------------------------------------------------------------------------


def base_path(settings: Settings) -> str:
    return "/" + settings.billing_page_url.split("://", 1)[-1].split("/", 1)[-1].rstrip("/")


def mount(app: FastAPI, settings: Settings) -> None:
    """Serve the page at the path of ``KAKIN_BILLING_PAGE_URL``, with the console's
    security headers (nothing from another origin, no framing, no caching)."""
    base = base_path(settings)
    pages = APIRouter(tags=["customer pages"], include_in_schema=False)
    pages.add_api_route(base, show, methods=["GET"], response_class=HTMLResponse)
    pages.add_api_route(f"{base}/card", card, methods=["POST"])
    pages.add_api_route(f"{base}/cancel", cancel, methods=["POST"])
    pages.add_api_route(f"{base}/link", send_link, methods=["POST"])
    pages.add_api_route(f"{base}/budget", set_budget, methods=["POST"])
    pages.add_api_route(f"{base}/budget/remove", remove_budget, methods=["POST"])
    pages.add_api_route(f"{base}/invoices/{{invoice_id}}", invoice_document, methods=["GET"])
    pages.add_api_route(f"{base}/static/billing.css", stylesheet, methods=["GET"])
    app.include_router(pages)
    app.add_middleware(ConsoleHeaders, prefix=base)
