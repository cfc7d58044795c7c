"""Subscriptions in the console: the list, starting one, and a subscription's page with
its workflow's live status, its invoices, its history and the support actions.

Every action takes the HTTP API's own path: the API's request model checks the form
(``api/requests/subscriptions.py``), the same service or workflow call does the work
(``api/routers/subscriptions*.py``, ``api/routers/invoices.py``,
``api/workflow_calls.py``), and the actor is the staff member (``staff:<email>``), as
the API's is its key. Support and admin act; finance reads the page without the forms
and a POST of theirs is a 403 (``require_staff``).

The console asks a reason for every action, also for the two whose message carries
none (resume, retry now): ``audit.record_request`` keeps that one, with the address.
A form that is wrong changes nothing and comes back with the error beside its field; a
refusal (resuming an active subscription) comes back with the service's own sentence.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from temporalio.client import Client

from api.console.auth import (
    AnyStaff,
    ConsoleDenied,
    SignedIn,
    Support,
    console_of,
    form_of,
    locale_of,
    origin_of,
)
from api.console.messages import translator
from api.console.refusals import REFUSALS, FormErrors, refusal
from api.console.rendering import render, see_other
from api.console.words import subscriptions as subscription_words
from api.deps import Deps, deps_of
from api.errors import SERVICE_ERRORS, ApiError
from api.lookups import require_customer, require_price
from api.requests.common import ReasonedRequest
from api.requests.invoices import InvoiceActionCreate
from api.requests.subscriptions import (
    CancelCreate,
    GraceCreate,
    PauseCreate,
    PlanChangeCreate,
    SubscriptionCreate,
)
from api.routers.invoices import check_in_collection
from api.routers.subscription_actions import do_preview
from api.routers.subscriptions import do_start_subscription, live_status
from api.workflow_calls import run_update
from kakin.platform.temporal_ui import ui_link
from kakin.services import audit, catalog, customers, invoices, payments
from kakin.services import subscriptions as subscription_service
from kakin.services.staff import StaffRole
from kakin.views.audit import AuditEntryOut
from kakin.views.catalog import PriceOut
from kakin.views.customers import CustomerOut
from kakin.views.invoices import InvoiceOut
from kakin.views.subscriptions import PlanChangePreview, SubscriptionSummary
from models.payloads import InvoiceStatus, StatusView, SubscriptionStatus

router = APIRouter(include_in_schema=False)

LIST = "/console/subscriptions"
NEW = "/console/subscriptions/new"
PAGE_SIZE = 25
STATUSES = tuple(SubscriptionStatus)
# What the page shows beside the subscription (newest first).
INVOICES_SHOWN = 24
HISTORY_SHOWN = 30
PRICES_READ = 100  # the plans offered in a form's list


def _path(subscription_id: str) -> str:
    return f"{LIST}/{subscription_id}"


def can_act(me: SignedIn) -> bool:
    return me.staff.role in (StaffRole.SUPPORT, StaffRole.ADMIN)


def _field_errors(error: ValidationError, words: dict[str, str]) -> dict[str, str]:
    """The form's fields a request model refused, each with the console's sentence for
    it (``words``: field -> sentence; the model's own English stays out of the page)."""
    refused: dict[str, str] = {}
    for problem in error.errors():
        field = str(problem["loc"][0]) if problem["loc"] else ""
        refused.setdefault(field, words.get(field, words.get("", "")))
    return refused


def _parse(model: type[BaseModel], fields: dict[str, Any], words: dict[str, str]) -> Any:
    """``model(**fields)``, or a ``FormErrors`` naming each refused field."""
    try:
        return model(**fields)
    except ValidationError as error:
        raise FormErrors(_field_errors(error, words)) from None


# -- the list -----------------------------------------------------------------------------


@router.get(LIST)
async def subscription_list(request: Request, me: AnyStaff) -> Response:
    status = request.query_params.get("status", "")
    status = status if status in STATUSES else ""
    after = request.query_params.get("after") or None
    try:
        rows, more = await run_in_threadpool(
            subscription_service.list_subscriptions, deps_of(request).sessions,
            SubscriptionSummary.of, limit=PAGE_SIZE, starting_after=after, status=status or None,
        )  # fmt: skip
    except SERVICE_ERRORS:  # a cursor that names no subscription: the first page
        return see_other(f"{LIST}?status={status}" if status else LIST)
    return render(
        request, "subscriptions.html.j2", rows=rows, more=more, chosen=status,
        statuses=STATUSES, can_act=can_act(me), after=after,
    )  # fmt: skip


# -- starting one -------------------------------------------------------------------------


def _offered_prices(deps: Deps, currency: str | None = None) -> list[PriceOut]:
    """The plans a form offers: the active prices (in ``currency`` when given)."""
    prices, _ = catalog.list_prices(
        deps.sessions, PriceOut.of, limit=PRICES_READ, starting_after=None
    )
    return [p for p in prices if p.active and currency in (None, p.currency)]


def _customer_or_none(deps: Deps, customer_id: str) -> CustomerOut | None:
    if not customer_id:
        return None
    try:
        return customers.get_customer(deps.sessions, customer_id, CustomerOut.of)
    except SERVICE_ERRORS:
        return None


async def _new_page(
    request: Request, form: dict[str, str], *, status: int = 200,
    errors: dict[str, str] | None = None,
) -> Response:  # fmt: skip
    deps = deps_of(request)
    customer = await run_in_threadpool(_customer_or_none, deps, form.get("customer_id", ""))
    prices = await run_in_threadpool(_offered_prices, deps, customer.currency if customer else None)
    return render(
        request, "subscription_new.html.j2", status=status, form=form, errors=errors or {},
        customer=customer, prices=prices,
    )  # fmt: skip


@router.get(NEW)
async def new_subscription_page(request: Request, me: Support) -> Response:
    form = {
        "customer_id": request.query_params.get("customer", ""),
        "price_id": request.query_params.get("price", ""),
        "quantity": "1",
        "trial_days": "0",
    }
    return await _new_page(request, form)


def _check_parts(deps: Deps, body: SubscriptionCreate) -> dict[str, str]:
    """The customer and the price the form names, each checked on its own so an unknown
    one is reported beside its field (the start checks them again)."""
    errors: dict[str, str] = {}
    for field, check, value in (
        ("customer_id", require_customer, body.customer_id),
        ("price_id", require_price, body.price_id),
    ):
        try:
            check(deps.sessions, value)
        except SERVICE_ERRORS as error:
            errors[field] = refusal(error)[1]
    return errors


@router.post(NEW)
async def start_subscription(request: Request, me: Support) -> Response:
    form = {k: v.strip() for k, v in (await form_of(request)).items() if k != "csrf_token"}
    t = translator(locale_of(request, me.staff))
    fields = {
        name: form.get(name, "") for name in ("customer_id", "price_id", "quantity", "trial_days")
    }
    fields["quantity"] = fields["quantity"] or "1"
    fields["trial_days"] = fields["trial_days"] or "0"
    words = {
        "customer_id": t("subs.error.customer"),
        "price_id": t("subs.error.price"),
        "quantity": t("subs.error.quantity"),
        "trial_days": t("subs.error.trial_days"),
        "": t("subs.error.form"),
    }
    deps = deps_of(request)
    try:
        body: SubscriptionCreate = _parse(SubscriptionCreate, fields, words)
    except FormErrors as wrong:
        return await _new_page(request, form, status=422, errors=wrong.fields)
    errors = await run_in_threadpool(_check_parts, deps, body)
    if errors:
        return await _new_page(request, form, status=422, errors=errors)
    try:
        started = await do_start_subscription(deps, body)
    except REFUSALS as error:
        status, message = refusal(error)
        # A price the customer cannot be billed in (another currency, archived).
        field = "price_id" if status == 422 else ""
        return await _new_page(request, form, status=status, errors={field: message})
    return see_other(f"{_path(started.id)}?done=start")


# -- a subscription's page ----------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """What the page reads from the database beside the live status."""

    subscription: SubscriptionSummary
    invoices: list[InvoiceOut]
    history: list[AuditEntryOut]
    prices: list[PriceOut]  # the plans it could change to


def _stored(deps: Deps, subscription_id: str) -> Stored:
    sessions = deps.sessions
    try:
        subscription = subscription_service.get_subscription(
            sessions, subscription_id, SubscriptionSummary.of
        )
    except SERVICE_ERRORS:
        raise ConsoleDenied(404, "error.not_found") from None
    billed, _ = invoices.list_invoices(
        sessions, InvoiceOut.of, limit=INVOICES_SHOWN, starting_after=None,
        subscription_id=subscription_id,
    )  # fmt: skip
    history, _ = audit.list_entries_shaped(
        sessions, AuditEntryOut.of, limit=HISTORY_SHOWN, subscription_id=subscription_id
    )
    prices = [
        p
        for p in _offered_prices(deps, subscription.currency)
        if p.id != subscription.price_id
        and (p.interval, p.interval_count) == (subscription.interval, subscription.interval_count)
    ]
    return Stored(subscription, billed, history, prices)


async def _subscription_page(
    request: Request,
    me: SignedIn,
    subscription_id: str,
    *,
    status: int = 200,
    action: str = "",
    errors: dict[str, str] | None = None,
    refused: str = "",
    form: dict[str, str] | None = None,
) -> Response:
    """The page; after a wrong form or a refusal, ``action``'s form keeps what was typed
    and shows ``errors`` beside its fields, or ``refused`` above it."""
    deps = deps_of(request)
    stored = await run_in_threadpool(_stored, deps, subscription_id)
    live = await live_status(deps, subscription_id)
    settings = deps.settings
    done = request.query_params.get("done", "") if status == 200 else ""
    return render(
        request,
        "subscription.html.j2",
        status=status,
        sub=stored.subscription,
        live=live,
        invoices=stored.invoices,
        history=stored.history,
        prices=stored.prices,
        temporal_link=ui_link(
            settings.temporal_ui_url,
            settings.temporal_namespace,
            workflow_id=stored.subscription.workflow_id,
        ),
        can_act=can_act(me),
        action=action,
        errors=errors or {},
        refused=refused,
        form=form or {},
        done=done if done in DONE else "",
        tz=stored.subscription.time_zone,
        known_actions=subscription_words.ACTIONS,
    )


@router.get(LIST + "/{subscription_id}")
async def subscription_page(request: Request, subscription_id: str, me: AnyStaff) -> Response:
    return await _subscription_page(request, me, subscription_id)


# -- the actions -----------------------------------------------------------------------------

DONE = ("start", "cancel", "cancel_at_period_end", "pause", "resume", "change_plan", "grace",
        "retry", "waive")  # fmt: skip


async def _act(
    request: Request,
    me: SignedIn,
    subscription_id: str,
    action: str,
    parse: Callable[[dict[str, str], Callable[..., str]], Any],
    work: Callable[[Deps, Any], Awaitable[str]],
) -> Response:
    """Check the form with ``parse`` (a request model), then ``work``; back to the page
    with a notice saying what was done (``work``'s answer), or with what was wrong."""
    form = {k: v for k, v in (await form_of(request)).items() if k != "csrf_token"}
    t = translator(locale_of(request, me.staff))
    try:
        body = parse(form, t)
    except FormErrors as wrong:
        return await _subscription_page(
            request, me, subscription_id, status=422, action=action, errors=wrong.fields,
            form=form,
        )  # fmt: skip
    try:
        done = await work(deps_of(request), body)
    except REFUSALS as error:
        status, message = refusal(error)
        return await _subscription_page(
            request, me, subscription_id, status=status, action=action, refused=message,
            form=form,
        )  # fmt: skip
    return see_other(f"{_path(subscription_id)}?done={done}")


def _reason_words(t: Callable[..., str]) -> dict[str, str]:
    return {"reason": t("subs.error.reason"), "": t("subs.error.form")}


class _Reasoned(ReasonedRequest):
    """A reason alone, checked as every reasoned request is (resume and retry now
    carry none of their own: the console keeps it in the audit log)."""

    REASON_FOR = "the request"


def _record(request: Request, me: SignedIn, entity: tuple[str, str], action: str,
            reason: str) -> Callable[[], None]:  # fmt: skip
    """Write down a reason the message itself cannot carry (``audit.record_request``)."""
    deps = deps_of(request)

    def write() -> None:
        audit.record_request(
            deps.sessions, entity_type=entity[0], entity_id=entity[1], action=action,
            actor=me.staff.actor, reason=reason, occurred_at=console_of(request).clock(),
            details=origin_of(request).details(),
        )  # fmt: skip

    return write


@router.post(LIST + "/{subscription_id}/cancel")
async def cancel(request: Request, subscription_id: str, me: Support) -> Response:
    def parse(form: dict[str, str], t: Callable[..., str]) -> CancelCreate:
        at_end = form.get("when", "") == "period_end"
        fields = {"reason": form.get("reason", ""), "at_period_end": at_end}
        result: CancelCreate = _parse(CancelCreate, fields, _reason_words(t))
        return result

    async def work(deps: Deps, body: CancelCreate) -> str:
        # As the API's do_cancel: refused when already canceled, then the signal.
        await run_in_threadpool(
            subscription_service.check_not_canceled, deps.sessions, subscription_id, already=True
        )
        client = await deps.connected()
        async with subscription_service.workflow_errors(subscription_id, "cancellation"):
            await subscription_service.cancel_subscription(
                client, subscription_id, requested_by=me.staff.actor, **body.model_dump()
            )
        return "cancel_at_period_end" if body.at_period_end else "cancel"

    return await _act(request, me, subscription_id, "cancel", parse, work)


@router.post(LIST + "/{subscription_id}/pause")
async def pause(request: Request, subscription_id: str, me: Support) -> Response:
    def parse(form: dict[str, str], t: Callable[..., str]) -> PauseCreate:
        result: PauseCreate = _parse(PauseCreate, {"reason": form.get("reason", "")},
                                     _reason_words(t))  # fmt: skip
        return result

    async def work(deps: Deps, body: PauseCreate) -> str:
        def send(client: Client) -> Awaitable[StatusView]:
            return subscription_service.pause_subscription(
                client, subscription_id, reason=body.reason, requested_by=me.staff.actor
            )

        await run_update(deps, subscription_id, "pause", send)
        return "pause"

    return await _act(request, me, subscription_id, "pause", parse, work)


def _reason_only(form: dict[str, str], t: Callable[..., str]) -> _Reasoned:
    result: _Reasoned = _parse(_Reasoned, {"reason": form.get("reason", "")}, _reason_words(t))
    return result


@router.post(LIST + "/{subscription_id}/resume")
async def resume(request: Request, subscription_id: str, me: Support) -> Response:
    async def work(deps: Deps, body: _Reasoned) -> str:
        def send(client: Client) -> Awaitable[StatusView]:
            return subscription_service.resume_subscription(
                client, subscription_id, requested_by=me.staff.actor
            )

        await run_update(deps, subscription_id, "resume", send)
        record = _record(request, me, ("subscription", subscription_id), "resume_requested",
                         body.reason)  # fmt: skip
        await run_in_threadpool(record)
        return "resume"

    return await _act(request, me, subscription_id, "resume", _reason_only, work)


@router.post(LIST + "/{subscription_id}/grace")
async def grace(request: Request, subscription_id: str, me: Support) -> Response:
    def parse(form: dict[str, str], t: Callable[..., str]) -> GraceCreate:
        words = _reason_words(t) | {"days": t("subs.error.days")}
        fields = {"days": form.get("days", "").strip() or None, "reason": form.get("reason", "")}
        result: GraceCreate = _parse(GraceCreate, fields, words)
        return result

    async def work(deps: Deps, body: GraceCreate) -> str:
        def send(client: Client) -> Awaitable[StatusView]:
            return subscription_service.grant_grace(
                client, subscription_id, requested_by=me.staff.actor, **body.model_dump()
            )

        await run_update(deps, subscription_id, "grace period", send)
        return "grace"

    return await _act(request, me, subscription_id, "grace", parse, work)


async def _outstanding(deps: Deps, subscription_id: str, invoice_id: str, done: str) -> str:
    """The invoice the form names, once it is the one in dunning (as the API checks)."""
    if not invoice_id:
        raise ApiError(409, "There is no invoice in collection; nothing is overdue")
    owner = await check_in_collection(deps, invoice_id, done)
    if owner != subscription_id:
        raise ApiError(409, f"Invoice {invoice_id!r} belongs to another subscription")
    return invoice_id


@router.post(LIST + "/{subscription_id}/retry")
async def retry(request: Request, subscription_id: str, me: Support) -> Response:
    invoice_id = (await form_of(request)).get("invoice_id", "")

    async def work(deps: Deps, body: _Reasoned) -> str:
        await _outstanding(deps, subscription_id, invoice_id, "retried")
        client = await deps.connected()
        async with subscription_service.workflow_errors(subscription_id, "retry"):
            await payments.retry_payment_now(client, subscription_id, requested_by=me.staff.actor)
        record = _record(request, me, ("invoice", invoice_id), "retry_requested", body.reason)
        await run_in_threadpool(record)
        return "retry"

    return await _act(request, me, subscription_id, "retry", _reason_only, work)


@router.post(LIST + "/{subscription_id}/waive")
async def waive(request: Request, subscription_id: str, me: Support) -> Response:
    form = await form_of(request)
    invoice_id = form.get("invoice_id", "")
    uncollectible = form.get("mark_as") == "uncollectible"
    mark_as = InvoiceStatus.UNCOLLECTIBLE if uncollectible else InvoiceStatus.VOID

    def parse(form: dict[str, str], t: Callable[..., str]) -> InvoiceActionCreate:
        fields = {"reason": form.get("reason", "")}
        result: InvoiceActionCreate = _parse(InvoiceActionCreate, fields, _reason_words(t))
        return result

    async def work(deps: Deps, body: InvoiceActionCreate) -> str:
        done = "marked uncollectible" if uncollectible else "voided"
        await _outstanding(deps, subscription_id, invoice_id, done)

        def send(client: Client) -> Awaitable[StatusView]:
            return subscription_service.waive_invoice(
                client, subscription_id, reason=body.reason, requested_by=me.staff.actor,
                mark_as=mark_as, invoice_id=invoice_id,  # refused if another took its place
            )  # fmt: skip

        await run_update(deps, subscription_id, "write-off" if uncollectible else "void", send)
        return "waive"

    return await _act(request, me, subscription_id, "waive", parse, work)


# -- changing the plan: a preview first, then the change ---------------------------------


async def _preview_page(
    request: Request, subscription_id: str, price_id: str, *, status: int = 200,
    errors: dict[str, str] | None = None, refused: str = "", reason: str = "",
) -> Response:  # fmt: skip
    deps = deps_of(request)
    stored = await run_in_threadpool(_stored, deps, subscription_id)
    preview: PlanChangePreview | None = None
    new_price: PriceOut | None = None
    try:
        preview = await run_in_threadpool(do_preview, deps, subscription_id, price_id)
        new_price = await run_in_threadpool(catalog.get_price, deps.sessions, price_id, PriceOut.of)
    except SERVICE_ERRORS as error:
        status, refused = (status if status != 200 else refusal(error)[0]), refusal(error)[1]
    return render(
        request, "subscription_change.html.j2", status=status, sub=stored.subscription,
        preview=preview, new_price=new_price, price_id=price_id, errors=errors or {},
        refused=refused, reason=reason, tz=stored.subscription.time_zone,
    )  # fmt: skip


@router.get(LIST + "/{subscription_id}/change-plan")
async def change_plan_preview(request: Request, subscription_id: str, me: Support) -> Response:
    """What the change would charge now (the API's preview), and the form to confirm it."""
    price_id = request.query_params.get("price_id", "")
    if not price_id:
        return see_other(_path(subscription_id))
    return await _preview_page(request, subscription_id, price_id)


@router.post(LIST + "/{subscription_id}/change-plan")
async def change_plan(request: Request, subscription_id: str, me: Support) -> Response:
    form = await form_of(request)
    t = translator(locale_of(request, me.staff))
    price_id, reason = form.get("price_id", ""), form.get("reason", "")
    try:
        # The API takes a plan change without a reason (services change plans too);
        # staff give one, checked as every staff reason is.
        _parse(_Reasoned, {"reason": reason}, _reason_words(t))
        body: PlanChangeCreate = _parse(
            PlanChangeCreate, {"price_id": price_id, "reason": reason}, _reason_words(t)
        )
    except FormErrors as wrong:
        return await _preview_page(
            request, subscription_id, price_id, status=422, errors=wrong.fields, reason=reason
        )
    deps = deps_of(request)
    try:

        def send(client: Client) -> Awaitable[StatusView]:
            return subscription_service.change_plan(
                client, deps.sessions, subscription_id, requested_by=me.staff.actor,
                **body.model_dump(),
            )  # fmt: skip

        await run_update(deps, subscription_id, "plan change", send)
    except REFUSALS as error:
        status, message = refusal(error)
        return await _preview_page(
            request, subscription_id, price_id, status=status, refused=message, reason=reason
        )
    return see_other(f"{_path(subscription_id)}?done=change_plan")
