"""Customers in the console: the list with its search, adding one, a customer's page.

Every role reads them (finance too); support and admin add them. Adding one is the HTTP
API's ``POST /v1/customers``: the same request body checks the fields (``CustomerCreate``,
each refusal shown next to its field), the same test-card rule (``check_test_card``), the
same service; the console also names the staff member, whom the service writes to the
audit log with the customer. A customer's page only renders what the services read: its
details, card and balance (``kakin.services.customers``), subscriptions, invoices,
payments, and the timeline (``kakin.services.customer_timeline``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe as stripe_sdk
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import ValidationError

from api.console.auth import (
    AnyStaff,
    ConsoleDenied,
    SignedIn,
    Support,
    check_csrf,
    locale_of,
    origin_of,
)
from api.console.messages import MESSAGES, translator
from api.console.rendering import render, see_other
from api.deps import Deps, deps_of
from api.errors import ApiError
from api.requests.customers import CustomerCreate
from api.routers.customers import check_test_card
from billing.calendar import zone
from kakin.adapters.stripe_gateway import CardSummary
from kakin.services import customers as customer_service
from kakin.services import subscriptions as subscription_service
from kakin.services.customer_timeline import TimelineEntry, customer_timeline
from kakin.services.errors import InvalidRequestError, NotFoundError, UnavailableError
from kakin.services.staff import StaffRole
from kakin.views.customers import CustomerOut, CustomerSubscription
from kakin.views.invoices import InvoiceOut, PaymentOut

router = APIRouter(include_in_schema=False)
LIST = "/console/customers"
NEW = "/console/customers/new"
PAGE_SIZE = 25
SECTION_SIZE = 20  # subscriptions, invoices and payments shown on a customer's page
TIMELINE_SIZE = 50
MAX_SEARCH = 200
CURRENCIES = ("JPY", "USD", "EUR")
# The test cards a beginner picks from (Stripe's, as the API's card_number accepts).
CARD_CHOICES = (
    ("", "customer_new.card_none"),
    ("4242424242424242", "customer_new.card_ok"),
    ("4000000000000341", "customer_new.card_declined"),
)
FIELDS = ("name", "email", "locale", "currency", "time_zone", "card_number")


def customer_path(customer_id: str) -> str:
    return f"{LIST}/{customer_id}"


@dataclass(frozen=True)
class Words:
    """What a customers template says beyond ``t``: labels that fall back to the code
    (a ledger kind or audit action added later still shows), and times in the seller's
    reporting time zone."""

    locale: str
    time_zone: str

    def said(self, key: str, fallback: str) -> str:
        return MESSAGES.get(self.locale, MESSAGES["en"]).get(key, fallback)

    def status(self, status: str) -> str:
        return self.said(f"customers.status.{status}", status.replace("_", " "))

    def what(self, entry: TimelineEntry) -> str:
        if entry.kind:
            return self.said(f"timeline.kind.{entry.kind}", entry.kind)
        return self.said(f"timeline.action.{entry.action}", entry.action.replace("_", " "))

    def actor(self, actor: str) -> str:
        """Who did it: a staff member or an API key as the audit log names them, kakin's
        own parts in words."""
        return self.said(f"timeline.actor.{actor}", actor)

    def when(self, moment: datetime | None) -> str:
        return "-" if moment is None else f"{self._local(moment):%Y-%m-%d %H:%M}"

    def day(self, moment: datetime | None) -> str:
        return "-" if moment is None else f"{self._local(moment):%Y-%m-%d}"

    def _local(self, moment: datetime) -> datetime:
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        return aware.astimezone(zone(self.time_zone))


def _words(request: Request, me: SignedIn) -> Words:
    return Words(
        locale=locale_of(request, me.staff), time_zone=deps_of(request).settings.reporting_time_zone
    )


# -- the list --------------------------------------------------------------------------------


@router.get(LIST)
async def customer_list(request: Request, me: AnyStaff) -> Response:
    text = request.query_params.get("q", "").strip()[:MAX_SEARCH]
    after = request.query_params.get("after") or None
    sessions = deps_of(request).sessions
    try:
        found, more = await run_in_threadpool(
            customer_service.search_customers, sessions, CustomerOut.of, text=text,
            limit=PAGE_SIZE, starting_after=after,
        )  # fmt: skip
    except InvalidRequestError:  # a cursor from a list that has changed: start again
        after = None
        found, more = await run_in_threadpool(
            customer_service.search_customers, sessions, CustomerOut.of, text=text,
            limit=PAGE_SIZE, starting_after=None,
        )  # fmt: skip
    return render(
        request, "customers.html.j2", customers=found, more=more, text=text, paged=bool(after),
        may_add=_may_add(me), words=_words(request, me),
    )  # fmt: skip


def _may_add(me: SignedIn) -> bool:
    return me.staff.role in (StaffRole.SUPPORT, StaffRole.ADMIN)


# -- adding one ------------------------------------------------------------------------------


def _test_mode(deps: Deps) -> bool:
    return not (deps.settings.live_mode or deps.stripe.live_mode)


def _form_page(
    request: Request, *, values: dict[str, str], errors: dict[str, str], status: int = 200,
    problem: str = "",
) -> Response:  # fmt: skip
    return render(
        request, "customer_new.html.j2", status=status, values=values, errors=errors,
        problem=problem, currencies=CURRENCIES, cards=CARD_CHOICES,
        test_mode=_test_mode(deps_of(request)),
    )  # fmt: skip


@router.get(NEW)
async def new_customer_page(request: Request, me: Support) -> Response:
    locale = locale_of(request, me.staff)
    values = {
        "name": "", "email": "", "locale": locale, "currency": "JPY",
        "time_zone": "Asia/Tokyo" if locale == "ja" else "UTC", "card_number": "",
    }  # fmt: skip
    return _form_page(request, values=values, errors={})


def _field_errors(error: ValidationError, t: Any) -> dict[str, str]:
    errors: dict[str, str] = {}
    for problem in error.errors():
        field = str(problem["loc"][0]) if problem["loc"] else ""
        if field in FIELDS and field not in errors:
            errors[field] = t(f"customer_new.invalid.{field}")
    return errors


@router.post(NEW)
async def add_customer(request: Request, me: Support) -> Response:
    form = await check_csrf(request)
    deps = deps_of(request)
    t = translator(locale_of(request, me.staff))
    values = {name: form.get(name, "").strip() for name in FIELDS}
    fields: dict[str, Any] = {name: value for name, value in values.items() if value}
    try:
        body = CustomerCreate(**{"name": "", "email": "", "currency": "", **fields})
        check_test_card(deps, body)
    except ValidationError as error:
        return _form_page(request, values=values, errors=_field_errors(error, t), status=422)
    except ApiError:  # the card: not a test card, or not in test mode
        errors = {"card_number": t("customer_new.invalid.card_number")}
        return _form_page(request, values=values, errors=errors, status=422)
    try:
        customer_id = await run_in_threadpool(
            customer_service.create_customer, deps.sessions, deps.stripe, **body.model_dump(),
            actor=me.staff.actor, origin=origin_of(request),
        )  # fmt: skip
    except InvalidRequestError as error:
        return _form_page(request, values=values, errors={}, status=422, problem=str(error))
    except stripe_sdk.StripeError:
        problem = t("customer_new.stripe_refused")
        return _form_page(request, values=values, errors={}, status=502, problem=problem)
    return see_other(customer_path(customer_id))


# -- a customer's page -----------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerPage:
    """Everything a customer's page shows, each part read through its service."""

    customer: CustomerOut
    card: CardSummary | None
    card_unknown: bool
    balance: int
    subscriptions: list[CustomerSubscription]
    invoices: list[InvoiceOut]
    payments: list[PaymentOut]
    timeline: list[TimelineEntry]
    more: dict[str, bool]


def _read_page(deps: Deps, customer_id: str) -> CustomerPage:
    sessions = deps.sessions
    customer = customer_service.get_customer(sessions, customer_id, CustomerOut.of)
    try:
        card = customer_service.card_on_file(sessions, deps.stripe, customer_id)
        card_unknown = False
    except UnavailableError:
        card, card_unknown = None, True
    balance, _ = customer_service.credit_balance(sessions, customer_id)
    first: dict[str, Any] = {"limit": SECTION_SIZE, "starting_after": None}
    subscriptions, more_subscriptions = subscription_service.list_subscriptions(
        sessions, CustomerSubscription.listed, customer_id=customer_id, **first
    )
    invoices, more_invoices = customer_service.list_customer_invoices(
        sessions, customer_id, InvoiceOut.of, **first
    )
    payments, more_payments = customer_service.list_customer_payments(
        sessions, customer_id, PaymentOut.of, **first
    )
    timeline = customer_timeline(sessions, customer_id, limit=TIMELINE_SIZE)
    return CustomerPage(
        customer=customer, card=card, card_unknown=card_unknown, balance=balance,
        subscriptions=subscriptions, invoices=invoices, payments=payments, timeline=timeline,
        more={"subscriptions": more_subscriptions, "invoices": more_invoices,
              "payments": more_payments, "timeline": len(timeline) >= TIMELINE_SIZE},
    )  # fmt: skip


@router.get(LIST + "/{customer_id}")
async def customer_page(request: Request, customer_id: str, me: AnyStaff) -> Response:
    if len(customer_id) > 40:
        raise ConsoleDenied(404, "error.not_found")
    try:
        shown = await run_in_threadpool(_read_page, deps_of(request), customer_id)
    except NotFoundError:
        raise ConsoleDenied(404, "error.not_found") from None
    numbers = {invoice.id: invoice.number or invoice.id for invoice in shown.invoices}
    return render(
        request, "customer.html.j2", page=shown, c=shown.customer, numbers=numbers,
        words=_words(request, me), size={"section": SECTION_SIZE, "timeline": TIMELINE_SIZE},
        may_start=_may_add(me),  # the roles that start subscriptions are those that add customers
    )  # fmt: skip
