"""Subscriptions: starting their workflows, and the support messages they take.

Every face (HTTP API, CLI, starter.py, the demo) starts and signals a subscription's
workflow through here, by the public names of ``kakin.contracts`` (never the workflow
class: services do not import workflows/), so every entry point validates the same
way and starts workflows with the same ids and search attributes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import FailureError
from temporalio.service import RPCError, RPCStatusCode

from billing.calendar import Interval, zone
from billing.dunning import DunningPolicy
from billing.proration import Proration, prorate
from kakin import contracts
from kakin.services import ledger
from kakin.services.errors import (
    ConflictError,
    InvalidRequestError,
    MissingError,
    RefusedError,
    UnavailableError,
)
from kakin.services.shaping import Reads
from models.payloads import (
    CancelRequest,
    ChangePlanRequest,
    GraceRequest,
    InvoiceStatus,
    PauseRequest,
    ResumeRequest,
    StatusView,
    SubscriptionChange,
    SubscriptionInput,
    SubscriptionStatus,
    WaiveRequest,
)
from models.repositories import audit as audit_sql
from models.repositories import catalog as catalog_sql
from models.repositories import subscriptions as subscription_sql
from models.repositories.common import delete, find, get, new_id
from models.tables import Customer, Price, Subscription


def workflow_id(subscription_id: str) -> str:
    """The public workflow id of a subscription (a contract)."""
    return contracts.workflow_id(subscription_id)


async def start_subscription(
    client: Client,
    sessions: sessionmaker[Session],
    *,
    task_queue: str,
    customer_id: str,
    price_id: str,
    quantity: int = 1,
    trial_days: int = 0,
    start_at: datetime | None = None,
    test_clock_speed: float | None = None,
    live_mode: bool = False,
    dunning: DunningPolicy | None = None,
    metadata: dict[str, str] | None = None,
    stripe_task_queue: str | None = None,
) -> str:
    """Record the subscription and start its workflow; returns the subscription id.

    ``metadata`` (the caller's own keys and values) is written with the row, in the
    same transaction: no moment or crash leaves the subscription without it, and no
    write after the workflow has started can fail and make a retry start another one.
    """
    _check_terms(
        test_clock=test_clock_speed is not None, live_mode=live_mode, quantity=quantity,
        trial_days=trial_days, start_at=start_at,
    )  # fmt: skip
    subscription_id = new_id("sub")
    interval, interval_count, time_zone = _record(
        sessions, subscription_id, customer_id=customer_id, price_id=price_id, quantity=quantity,
        trialing=trial_days > 0, start_at=start_at, test_clock=test_clock_speed is not None,
        metadata=metadata,
    )  # fmt: skip
    try:
        await client.start_workflow(
            contracts.WORKFLOW_TYPE,
            SubscriptionInput(
                subscription_id=subscription_id,
                customer_id=customer_id,
                price_id=price_id,
                interval=interval,
                interval_count=interval_count,
                start_at=start_at,
                trial_days=trial_days,
                dunning=dunning or DunningPolicy(),
                test_clock_speed=test_clock_speed,
                stripe_task_queue=stripe_task_queue or None,
                time_zone="" if time_zone == "UTC" else time_zone,
            ),
            id=workflow_id(subscription_id),
            task_queue=task_queue,
            search_attributes=_search_attributes(
                status="trialing" if trial_days else "active",
                customer_id=customer_id,
                price_id=price_id,
            ),
            static_summary=(
                f"subscription {subscription_id} · customer {customer_id} · plan {price_id}"
            ),
        )
    except Exception:
        _forget(sessions, subscription_id)  # no workflow, no subscription
        raise
    return subscription_id


# fmt: off
def _record(
    sessions: sessionmaker[Session], subscription_id: str, *, customer_id: str, price_id: str,
    quantity: int, trialing: bool, start_at: datetime | None, test_clock: bool,
    metadata: dict[str, str] | None,
) -> tuple[Interval, int, str]:
    # fmt: on
    """Store the new subscription's row (committed) after checking its customer and
    price; returns the price's interval and count and the customer's calendar zone."""
    with sessions() as session:
        customer = find(session, Customer, customer_id)
        if customer is None:
            raise MissingError(f"customer {customer_id!r} does not exist")
        price = _offered(
            find(session, Price, price_id), price_id, customer.currency, billed="the customer"
        )
        time_zone = _calendar_of(customer)
        subscription = Subscription(
            id=subscription_id, customer_id=customer_id, price_id=price_id, quantity=quantity,
            status=SubscriptionStatus.TRIALING if trialing else SubscriptionStatus.ACTIVE,
            billing_cycle_anchor=start_at, workflow_id=workflow_id(subscription_id),
            test_clock=test_clock, metadata_=dict(metadata or {}),
        )  # fmt: skip
        session.add(subscription)
        ledger.record_started(session, subscription, price, start_at=start_at)
        session.commit()
        return Interval(price.interval), price.interval_count, time_zone


def _check_terms(
    *, test_clock: bool, live_mode: bool, quantity: int, trial_days: int, start_at: datetime | None
) -> None:
    """The terms of a new subscription that need no database to check."""
    if test_clock and live_mode:
        raise InvalidRequestError("test clocks are refused with a live Stripe key")
    if quantity < 1:
        raise InvalidRequestError("quantity must be at least 1")
    if trial_days < 0:
        raise InvalidRequestError("trial_days must not be negative")
    if start_at is not None and start_at.tzinfo is None:
        raise InvalidRequestError("start_at needs a time zone, e.g. 2025-01-31T00:00:00+09:00")


def _search_attributes(*, status: str, customer_id: str, price_id: str) -> TypedSearchAttributes:
    """The subscription's search attributes as its workflow starts (never personal data)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(contracts.SUBSCRIPTION_STATUS, status),
            SearchAttributePair(contracts.CUSTOMER_ID, customer_id),
            SearchAttributePair(contracts.PLAN_ID, price_id),
        ]
    )


def _forget(sessions: sessionmaker[Session], subscription_id: str) -> None:
    """Delete the row of a subscription whose workflow did not start: never leave a row
    that nothing will bill."""
    with sessions() as session:
        row = find(session, Subscription, subscription_id)
        if row is not None:
            ledger.forget_started(session, subscription_id)
            delete(session, row)
            session.commit()


def _offered(price: Price | None, price_id: str, currency: str, *, billed: str) -> Price:
    """The price, if it exists, takes new subscriptions and bills in ``currency``."""
    if price is None:
        raise MissingError(f"price {price_id!r} does not exist")
    if not price.active:
        raise InvalidRequestError(f"price {price_id!r} is archived and takes no new subscriptions")
    if price.currency != currency:
        raise InvalidRequestError(
            f"price is in {price.currency} but {billed} is billed in {currency}"
        )
    return price


def _calendar_of(customer: Customer) -> str:
    """The customer's time zone, which the subscription's periods follow.

    The periods follow the customer's calendar as it is now (billing.calendar): the
    workflow keeps this snapshot, so a later change of the customer's zone moves no
    renewal, past or future. Checked here: the workflow could not compute a period on
    a zone the tz database does not know.
    """
    time_zone = customer.time_zone or "UTC"
    try:
        zone(time_zone)
    except ValueError:
        raise InvalidRequestError(
            f"the customer's time zone {time_zone!r} is not an IANA time zone"
        ) from None
    return time_zone


def handle(client: Client, subscription_id: str) -> WorkflowHandle[Any, str]:
    """The subscription's workflow, by its public id (its result is its final status)."""
    return client.get_workflow_handle(workflow_id(subscription_id), result_type=str)


async def cancel_subscription(
    client: Client,
    subscription_id: str,
    *,
    reason: str,
    at_period_end: bool,
    requested_by: str,
) -> None:
    """Send the public ``cancel`` signal."""
    await handle(client, subscription_id).signal(
        contracts.SIGNAL_CANCEL,
        CancelRequest(reason=reason, at_period_end=at_period_end, requested_by=requested_by),
    )


async def subscription_status(client: Client, subscription_id: str) -> StatusView:
    return await handle(client, subscription_id).query(
        contracts.QUERY_STATUS, result_type=StatusView
    )


async def pause_subscription(
    client: Client, subscription_id: str, *, reason: str, requested_by: str
) -> StatusView:
    """The ``pause`` update: refused, with a reason, unless active or trialing."""
    # By the update's public name; result_type keeps the answer a StatusView.
    return await handle(client, subscription_id).execute_update(
        contracts.UPDATE_PAUSE,
        PauseRequest(reason=reason, requested_by=requested_by),
        result_type=StatusView,
    )


async def resume_subscription(
    client: Client, subscription_id: str, *, requested_by: str
) -> StatusView:
    """The ``resume`` update: refused unless paused."""
    return await handle(client, subscription_id).execute_update(
        contracts.UPDATE_RESUME, ResumeRequest(requested_by=requested_by), result_type=StatusView
    )


async def change_plan(
    client: Client,
    sessions: sessionmaker[Session],
    subscription_id: str,
    *,
    price_id: str,
    requested_by: str,
    reason: str = "",
) -> StatusView:
    """Move a subscription to another price: a dearer one now (prorated), a cheaper or
    equal one at the end of the paid period. Same currency and interval only."""
    upgrade = await asyncio.to_thread(_is_upgrade, sessions, subscription_id, price_id)
    return await handle(client, subscription_id).execute_update(
        contracts.UPDATE_CHANGE_PLAN,
        ChangePlanRequest(
            price_id=price_id, at_period_end=not upgrade, reason=reason, requested_by=requested_by
        ),
        result_type=StatusView,
    )


def _is_upgrade(sessions: sessionmaker[Session], subscription_id: str, price_id: str) -> bool:
    """Whether the move to ``price_id`` is to a dearer price (checked: same currency and
    interval, a price on offer)."""
    with sessions() as session:
        subscription = subscription_sql.subscription(session, subscription_id)
        current = subscription.price
        new = _offered(
            find(session, Price, price_id), price_id, current.currency, billed="the subscription"
        )
        if (new.interval, new.interval_count) != (current.interval, current.interval_count):
            raise InvalidRequestError(
                "a plan change keeps the billing interval: "
                f"{current.interval_count} {current.interval} now, "
                f"{new.interval_count} {new.interval} asked"
            )
        return bool(new.unit_amount > current.unit_amount)


def preview_plan_change(
    sessions: sessionmaker[Session], subscription_id: str, *, price_id: str, at: datetime
) -> Proration | None:
    """What an upgrade to ``price_id`` at ``at`` would charge now (None: it would wait
    for the renewal, so nothing is charged now).

    ``at`` is the caller's: the present for a real subscription. (The ``status``
    query's ``now`` is the time of the workflow's last step, not the present.)
    """
    with sessions() as session:
        subscription = subscription_sql.subscription(session, subscription_id)
        current, new = subscription.price, catalog_sql.price(session, price_id)
        start, end = subscription.current_period_start, subscription.current_period_end
        quantity = subscription.quantity
    if new.unit_amount <= current.unit_amount or start is None or end is None:
        return None
    return prorate(
        old_amount=current.unit_amount * quantity,
        new_amount=new.unit_amount * quantity,
        period_start=start,
        period_end=end,
        at=min(max(at, start), end),
    )


async def grant_grace(
    client: Client, subscription_id: str, *, days: int, reason: str, requested_by: str
) -> StatusView:
    """The ``grant_grace`` update: the rest of the dunning ladder waits ``days`` longer."""
    return await handle(client, subscription_id).execute_update(
        contracts.UPDATE_GRANT_GRACE,
        GraceRequest(days=days, reason=reason, requested_by=requested_by),
        result_type=StatusView,
    )


async def waive_invoice(
    client: Client,
    subscription_id: str,
    *,
    reason: str,
    requested_by: str,
    mark_as: InvoiceStatus = InvoiceStatus.VOID,
    invoice_id: str | None = None,
) -> StatusView:
    """The ``waive_invoice`` update: the invoice in dunning is marked ``void`` (or
    ``uncollectible``: written off) and the subscription is active again."""
    return await handle(client, subscription_id).execute_update(
        contracts.UPDATE_WAIVE_INVOICE,
        WaiveRequest(
            reason=reason, requested_by=requested_by, mark_as=mark_as, invoice_id=invoice_id
        ),
        result_type=StatusView,
    )


def apply_subscription_change(session: Session, change: SubscriptionChange) -> None:
    """Write a status change to the subscription row and the audit log (uncommitted).

    Safe to repeat: a change already written adds no second audit row. The workflow's
    activities call it (``record_subscription_change``, and ``send_email`` before the
    email that announces it)."""
    subscription = subscription_sql.subscription(session, change.subscription_id)
    previous = subscription.status
    if change.period_start is not None:
        subscription.current_period_start = change.period_start
        subscription.current_period_end = change.period_end
    if change.cancel_at_period_end is not None:
        subscription.cancel_at_period_end = change.cancel_at_period_end
    if previous == change.status and change.cancel_at_period_end is None and not change.action:
        return
    subscription.status = change.status
    if change.status == "canceled":
        subscription.canceled_at = change.occurred_at
        subscription.cancel_reason = change.reason
    if previous != change.status:  # a cancel at period end moves no MRR until it ends
        ledger.record_status_change(session, subscription, previous, change)
    audit_sql.audit(
        session,
        entity_type="subscription",
        entity_id=subscription.id,
        action=change.action
        or ("status_changed" if previous != change.status else "cancel_scheduled"),
        from_status=previous,
        to_status=change.status,
        actor=change.actor,
        reason=change.reason,
        occurred_at=change.occurred_at,
    )


# --- Temporal's answers as typed errors, for the faces that ask a workflow (the API) ---

log = logging.getLogger("kakin.api")  # the messages the API logged before they moved here


def ended_message(subscription_id: str) -> str:
    return f"Subscription {subscription_id!r} has ended; its workflow no longer runs"


def _sentence_case(message: str) -> str:
    """Workflow messages start lower-case; the error's message is a sentence."""
    return message[:1].upper() + message[1:]


@asynccontextmanager
async def workflow_errors(
    subscription_id: str, what: str, *, unavailable: str | None = None, running: bool = True
) -> AsyncIterator[None]:
    """Turn Temporal's answers inside the block into typed errors.

    An update the workflow refused is a ``RefusedError`` with the workflow's own reason;
    a workflow that no longer runs (``running``: the block asks a running one) a
    ``RefusedError`` saying it ended; any other RPC failure an ``UnavailableError``
    (``unavailable``, or "Temporal did not take the <what>").
    """
    try:
        yield
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        reason = cause.message if isinstance(cause, FailureError) else ""
        if not reason:
            log.warning("the %s update failed without a reason: %s", what, error)
            reason = f"the {what} was refused"
        raise RefusedError(_sentence_case(reason)) from None
    except RPCError as error:
        if running and error.status == RPCStatusCode.NOT_FOUND:
            raise RefusedError(ended_message(subscription_id)) from None
        log.warning("Temporal did not take the %s: %s", what, error)
        raise UnavailableError(
            unavailable or f"Temporal did not take the {what}; try again"
        ) from None


# --- subscription reads, for the faces (each shapes a row inside its session) ---

_subscriptions = Reads(Subscription, "Subscription", filters=("status", "customer_id", "price_id"))
find_subscription = _subscriptions.find
get_subscription, list_subscriptions = _subscriptions.get, _subscriptions.page


def check_not_canceled(
    sessions: sessionmaker[Session], subscription_id: str, *, already: bool = False
) -> None:
    """A ``ConflictError`` when the subscription is canceled (``NotFoundError``: none)."""
    with sessions() as session:
        row = find_subscription(session, subscription_id)
        if row.status == SubscriptionStatus.CANCELED:
            said = "already canceled" if already else "canceled"
            raise ConflictError(f"Subscription {subscription_id!r} is {said}")


def plan_change_currency(
    sessions: sessionmaker[Session], subscription_id: str, price_id: str
) -> str:
    """The currency of a plan change the preview may show, after the checks the change
    makes: same currency, same billing interval (``InvalidRequestError``: not so)."""
    with sessions() as session:
        current = find_subscription(session, subscription_id).price
        new = get(session, Price, price_id, "Price")
        if new.currency != current.currency:
            raise InvalidRequestError(
                f"Price is in {new.currency} but the subscription is billed in {current.currency}"
            )
        if (new.interval, new.interval_count) != (current.interval, current.interval_count):
            raise InvalidRequestError(
                "A plan change keeps the billing interval: "
                f"{current.interval_count} {current.interval} now, "
                f"{new.interval_count} {new.interval} asked"
            )
        return current.currency
