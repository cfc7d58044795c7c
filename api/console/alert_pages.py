"""Alerts in the console: a subscription's and a customer's alerts, with their
thresholds, what fired this period (and when) and the hard caps; support and admin add
one, remove one, or change a cap.

The same service as ``/v1/.../alerts`` (``kakin.services.alerts``, as
``api/routers/alerts.py`` calls it), the body checked by the API's own request models
(``AlertCreate``, ``AlertUpdate``), the staff member (``staff:<email>``) as the actor and
the reason typed in the form in the audit log. Finance reads the page without the forms
and a POST of theirs is a 403 (``require_staff``).

People type money as they read it (``12.50`` dollars, ``3980`` yen): the form converts
it to the minor unit the service keeps (``billing.money.to_minor``); usage is in the
metric's own unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from api.console.auth import AnyStaff, ConsoleDenied, SignedIn, form_of, locale_of, require_staff
from api.console.messages import translator
from api.console.refusals import REFUSALS, refusal
from api.console.rendering import render, see_other
from api.deps import deps_of
from api.errors import SERVICE_ERRORS
from api.requests.alerts import AlertCreate, AlertUpdate
from billing.money import format_amount, to_minor
from kakin.services import alerts as alert_service
from kakin.services import customers
from kakin.services import subscriptions as subscription_service
from kakin.services.alerts import AlertDetails
from kakin.services.alerts_evaluation import CAP
from kakin.services.staff import StaffRole
from kakin.views.customers import CustomerOut
from kakin.views.subscriptions import SubscriptionSummary

router = APIRouter(include_in_schema=False)
Acting = Annotated[SignedIn, Depends(require_staff(StaffRole.SUPPORT))]

SUBSCRIPTION = "/console/subscriptions/{subscription_id}/alerts"
CUSTOMER = "/console/customers/{customer_id}/alerts"
MONEY_WATCHES = ("bill", "forecast")
WATCHES = ("bill", "forecast", "usage")
DONE = ("added", "removed", "cap")


@dataclass(frozen=True)
class Owner:
    """Whose alerts a page shows: a subscription's, or a customer's own."""

    kind: str  # "subscription" or "customer"
    id: str
    title: str
    back: str  # the owner's own page
    currency: str
    time_zone: str

    @property
    def path(self) -> str:
        return f"{self.back}/alerts"

    def scope(self) -> dict[str, str]:
        """The owner as the service's keyword (``subscription_id=`` or ``customer_id=``)."""
        return {f"{self.kind}_id": self.id}


def _owner(sessions: sessionmaker[Session], kind: str, owner_id: str) -> Owner:
    try:
        if kind == "subscription":
            sub = subscription_service.get_subscription(sessions, owner_id, SubscriptionSummary.of)
            title = f"{sub.customer_name} · {sub.plan_name}"
            back = f"/console/subscriptions/{sub.id}"
            return Owner(kind, sub.id, title, back, sub.currency, sub.time_zone)
        customer = customers.get_customer(sessions, owner_id, CustomerOut.of)
    except SERVICE_ERRORS:
        raise ConsoleDenied(404, "error.not_found") from None
    return Owner(kind, customer.id, customer.name, f"/console/customers/{customer.id}",
                 customer.currency, customer.time_zone or "UTC")  # fmt: skip


# -- how an alert reads ---------------------------------------------------------------------


@dataclass(frozen=True)
class Level:
    """One threshold as the page shows it: its amount, and when it fired this period."""

    text: str
    fired_at: datetime | None


@dataclass(frozen=True)
class AlertRow:
    id: str
    name: str
    watches: str
    metric: str | None
    money: bool
    budget: str | None
    levels: list[Level]
    recurring: str | None
    current: str | None
    next_threshold: str | None
    hard_cap: str | None
    cap_value: str  # the cap as typed back into its form (major units for money)
    cap_reached: bool
    cap_reached_at: datetime | None
    period_start: datetime | None
    period_end: datetime | None


def _amount(value: str | None, alert: AlertDetails, locale: str) -> str | None:
    """A stored value (minor units, or the metric's unit) as people read it."""
    if value is None:
        return None
    number = Decimal(value)
    if alert.watches in MONEY_WATCHES and alert.currency:
        return format_amount(int(number.to_integral_value()), alert.currency, locale=locale)
    return f"{number.normalize():,f}"  # in the metric's unit (its code heads the card)


def _row(alert: AlertDetails, locale: str) -> AlertRow:
    def amount(value: str | None) -> str | None:
        return _amount(value, alert, locale)

    recurring = None
    if alert.recurring:
        step = alert.recurring
        recurring = f"{step['percent']}%" if "percent" in step else amount(step.get("value"))
    cap_at = next((at for k, at in alert.fired_at.items() if k.startswith(CAP)), None)
    return AlertRow(
        id=alert.id,
        name=alert.name,
        watches=alert.watches,
        metric=alert.metric,
        money=alert.watches in MONEY_WATCHES,
        budget=amount(alert.budget),
        levels=[Level(amount(v) or v, alert.fired_at.get(v)) for v in alert.levels],
        recurring=recurring,
        current=amount(alert.current),
        next_threshold=amount(alert.next_threshold),
        hard_cap=amount(alert.hard_cap),
        cap_value="" if alert.hard_cap is None else f"{Decimal(alert.hard_cap).normalize():f}",
        cap_reached=alert.cap_reached,
        cap_reached_at=cap_at,
        period_start=alert.period_start,
        period_end=alert.period_end,
    )


# -- the page -------------------------------------------------------------------------------


async def _page(
    request: Request, me: SignedIn, kind: str, owner_id: str, *, status: int = 200,
    action: str = "", error: str = "", form: dict[str, str] | None = None,
) -> Response:  # fmt: skip
    """The page; after a wrong form, ``action``'s form keeps what was typed and says what
    was wrong (``error``) above it."""
    sessions = deps_of(request).sessions
    owner = await run_in_threadpool(_owner, sessions, kind, owner_id)
    found = await run_in_threadpool(alert_service.list_alerts, sessions, **owner.scope())
    locale = locale_of(request, me.staff)
    done = request.query_params.get("done", "") if status == 200 else ""
    return render(
        request, "alerts.html.j2", status=status, owner=owner,
        alerts=[_row(alert, locale) for alert in found], watches=WATCHES,
        can_act=me.staff.role in (StaffRole.SUPPORT, StaffRole.ADMIN), action=action,
        error=error, form=form or {}, done=done if done in DONE else "", tz=owner.time_zone,
    )  # fmt: skip


def _kind(request: Request) -> str:
    """Whose alerts the path names (the routes are the same for both)."""
    return "subscription" if request.url.path.startswith("/console/subscriptions/") else "customer"


async def _show(request: Request, owner_id: str, me: SignedIn) -> Response:
    return await _page(request, me, _kind(request), owner_id)


# -- the forms ------------------------------------------------------------------------------


class _Wrong(Exception):
    """A form field that is not a number (the words key of the sentence to show)."""


def _number(text: str, *, money: bool, currency: str) -> Decimal | int:
    """A typed amount: money in major units to the minor unit, usage as it is."""
    cleaned = text.strip().replace(",", "").replace("，", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise _Wrong from None
    if not value.is_finite():
        raise _Wrong
    if money:
        try:
            return to_minor(value, currency)
        except (ValueError, ArithmeticError):
            raise _Wrong from None
    return value


def _thresholds(text: str, *, money: bool, currency: str) -> list[dict[str, Any]]:
    """``50%, 80%, 100%`` or ``3000, 5000``: each a percent of the budget or an amount."""
    terms: list[dict[str, Any]] = []
    for part in text.replace("、", ",").replace("，", ",").split(","):
        part = part.strip().replace("％", "%")
        if not part:
            continue
        if part.endswith("%"):
            terms.append({"percent": _number(part[:-1], money=False, currency=currency)})
        else:
            terms.append({"value": _number(part, money=money, currency=currency)})
    return terms


def _create_body(form: dict[str, str], owner: Owner) -> AlertCreate:
    watches = form.get("watches", "")
    money = watches in MONEY_WATCHES
    fields: dict[str, Any] = {
        "watches": watches,
        "name": form.get("name", "").strip(),
        "thresholds": _thresholds(form.get("thresholds", ""), money=money, currency=owner.currency),
    }
    if watches == "usage":
        fields["metric"] = form.get("metric", "").strip() or None
    for name in ("budget", "hard_cap"):
        text = form.get(name, "").strip()
        if text and (name == "budget" or (watches == "usage" and owner.kind == "subscription")):
            fields[name] = _number(text, money=money, currency=owner.currency)
    return AlertCreate(**fields)


async def _add(request: Request, owner_id: str, me: SignedIn) -> Response:
    kind = _kind(request)
    form = {k: v for k, v in (await form_of(request)).items() if k != "csrf_token"}
    t = translator(locale_of(request, me.staff))
    sessions = deps_of(request).sessions
    owner = await run_in_threadpool(_owner, sessions, kind, owner_id)
    try:
        body = _create_body(form, owner)
    except (_Wrong, ValidationError):
        return await _page(request, me, kind, owner_id, status=422, action="add",
                           error=t("alerts.error.form"), form=form)  # fmt: skip
    try:
        # As the API's create: a subscription's alert bills in its own currency.
        await run_in_threadpool(
            lambda: alert_service.create_alert(
                sessions, body.spec(), currency=None, actor=me.staff.actor, **owner.scope()
            )
        )
    except REFUSALS as error:
        status, message = refusal(error)
        return await _page(request, me, kind, owner_id, status=status, action="add",
                           error=message, form=form)  # fmt: skip
    return see_other(f"{owner.path}?done=added")


def _reason(form: dict[str, str], t: Any) -> str:
    reason = form.get("reason", "").strip()
    if not reason:
        raise _Wrong(t("alerts.error.reason"))
    return reason


async def _remove(request: Request, owner_id: str, alert_id: str, me: SignedIn) -> Response:
    kind = _kind(request)
    form = {k: v for k, v in (await form_of(request)).items() if k != "csrf_token"}
    t = translator(locale_of(request, me.staff))
    sessions = deps_of(request).sessions
    owner = await run_in_threadpool(_owner, sessions, kind, owner_id)
    action = f"remove-{alert_id}"
    try:
        reason = _reason(form, t)
        await run_in_threadpool(
            lambda: alert_service.delete_alert(
                sessions, alert_id, actor=me.staff.actor, reason=reason, **owner.scope()
            )
        )
    except _Wrong as wrong:
        return await _page(request, me, kind, owner_id, status=422, action=action,
                           error=str(wrong), form=form)  # fmt: skip
    except REFUSALS as error:
        status, message = refusal(error)
        return await _page(request, me, kind, owner_id, status=status, action=action,
                           error=message, form=form)  # fmt: skip
    return see_other(f"{owner.path}?done=removed")


async def _cap(request: Request, owner_id: str, alert_id: str, me: SignedIn) -> Response:
    """A new hard cap (raising one lets refused usage be sent again): audited with the
    old cap, the new one and the reason (``usage_cap_changed``)."""
    kind = _kind(request)
    form = {k: v for k, v in (await form_of(request)).items() if k != "csrf_token"}
    t = translator(locale_of(request, me.staff))
    sessions = deps_of(request).sessions
    owner = await run_in_threadpool(_owner, sessions, kind, owner_id)
    action = f"cap-{alert_id}"
    try:
        reason = _reason(form, t)
        try:
            cap = _number(form.get("hard_cap", ""), money=False, currency=owner.currency)
            body = AlertUpdate(hard_cap=Decimal(cap), reason=reason)
        except (_Wrong, ValidationError):
            raise _Wrong(t("alerts.error.cap")) from None
        await run_in_threadpool(
            lambda: alert_service.update_alert(
                sessions,
                alert_id,
                body.changes(),
                actor=me.staff.actor,
                reason=body.reason,
                **owner.scope(),
            )
        )
    except _Wrong as wrong:
        return await _page(request, me, kind, owner_id, status=422, action=action,
                           error=str(wrong), form=form)  # fmt: skip
    except REFUSALS as error:
        status, message = refusal(error)
        return await _page(request, me, kind, owner_id, status=status, action=action,
                           error=message, form=form)  # fmt: skip
    return see_other(f"{owner.path}?done=cap")


# -- the routes: the same pages for a subscription's alerts and a customer's ---------------


@router.get(SUBSCRIPTION)
async def subscription_alerts(request: Request, subscription_id: str, me: AnyStaff) -> Response:
    return await _show(request, subscription_id, me)


@router.get(CUSTOMER)
async def customer_alerts(request: Request, customer_id: str, me: AnyStaff) -> Response:
    return await _show(request, customer_id, me)


@router.post(SUBSCRIPTION)
async def add_subscription_alert(request: Request, subscription_id: str, me: Acting) -> Response:
    return await _add(request, subscription_id, me)


@router.post(CUSTOMER)
async def add_customer_alert(request: Request, customer_id: str, me: Acting) -> Response:
    return await _add(request, customer_id, me)


@router.post(SUBSCRIPTION + "/{alert_id}/remove")
async def remove_subscription_alert(
    request: Request, subscription_id: str, alert_id: str, me: Acting
) -> Response:
    return await _remove(request, subscription_id, alert_id, me)


@router.post(CUSTOMER + "/{alert_id}/remove")
async def remove_customer_alert(
    request: Request, customer_id: str, alert_id: str, me: Acting
) -> Response:
    return await _remove(request, customer_id, alert_id, me)


@router.post(SUBSCRIPTION + "/{alert_id}/cap")
async def change_subscription_cap(
    request: Request, subscription_id: str, alert_id: str, me: Acting
) -> Response:
    return await _cap(request, subscription_id, alert_id, me)


@router.post(CUSTOMER + "/{alert_id}/cap")
async def change_customer_cap(
    request: Request, customer_id: str, alert_id: str, me: Acting
) -> Response:
    return await _cap(request, customer_id, alert_id, me)
