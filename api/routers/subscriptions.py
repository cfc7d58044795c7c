"""Subscriptions: start (the row, then its workflow), read (row + live status), list, cancel."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from temporalio.client import WorkflowExecutionStatus

from api.deps import KEY, After, Deps, DepsDep, IdemKey, Limit, PathId, requester
from api.errors import RESPONSES, ApiError, ErrorBody
from api.idempotency import RESPONSES as IDEMPOTENT
from api.idempotency import once
from api.requests.subscriptions import CancelCreate, SubscriptionCreate
from api.workflow_calls import TEMPORAL_DOWN, capitalized
from kakin.services import catalog
from kakin.services import customers as customer_service
from kakin.services import errors as service_errors
from kakin.services import subscriptions as subscription_service
from kakin.services.api_keys import KeyInfo
from kakin.views.common import Page
from kakin.views.subscriptions import (
    CancelAccepted,
    LiveStatus,
    SubscriptionDetail,
    SubscriptionOut,
)
from models.payloads import SubscriptionStatus

log = logging.getLogger("kakin.api")

START_SLACK = timedelta(minutes=5)
LIVE_TIMEOUT = 5.0  # the status query; a workflow nobody can answer for gives "live": null


router = APIRouter(prefix="/v1", responses=RESPONSES, tags=["subscriptions"])


def read_subscription(deps: Deps, subscription_id: str) -> SubscriptionOut:
    return subscription_service.get_subscription(deps.sessions, subscription_id, SubscriptionOut.of)


def check_new_subscription(deps: Deps, body: SubscriptionCreate) -> None:
    customer_service.get_customer(deps.sessions, body.customer_id, lambda _: None)
    catalog.get_price(deps.sessions, body.price_id, lambda _: None)


async def do_start_subscription(deps: Deps, body: SubscriptionCreate) -> SubscriptionOut:
    # A start in the past would have the workflow bill every period since at once
    # (from 1900: centuries of invoices); a little slack covers the caller's clock.
    if body.start_at is not None and body.start_at < datetime.now(UTC) - START_SLACK:
        raise ApiError(422, "start_at is in the past; a subscription starts now or at a later time")
    await run_in_threadpool(check_new_subscription, deps, body)
    client = await deps.connected()
    try:
        async with subscription_service.workflow_errors(
            "", "start", unavailable="Temporal did not start the subscription; try again",
            running=False,
        ):  # fmt: skip
            subscription_id = await subscription_service.start_subscription(
                client,
                deps.sessions,
                task_queue=deps.settings.task_queue,
                customer_id=body.customer_id,
                price_id=body.price_id,
                quantity=body.quantity,
                trial_days=body.trial_days,
                start_at=body.start_at,
                live_mode=deps.settings.live_mode,
                dunning=deps.settings.dunning_policy,
                stripe_task_queue=deps.settings.stripe_task_queue,
                metadata=body.metadata,
            )
    except service_errors.InvalidRequestError as error:
        # 422 even for a MissingError: the body names the customer and price (checked
        # above, so this is one removed in between).
        raise ApiError(422, capitalized(str(error))) from None
    return await run_in_threadpool(read_subscription, deps, subscription_id)


@router.post(
    "/subscriptions",
    status_code=201,
    response_model=SubscriptionOut,
    responses={**IDEMPOTENT, **TEMPORAL_DOWN},
)
async def create_subscription(
    deps: DepsDep,
    body: SubscriptionCreate,
    request: Request,
    idempotency_key: IdemKey = None,
    key: KeyInfo = KEY,
) -> JSONResponse:
    """Start a subscription: its row, then its workflow, which bills it from now on."""
    return await once(
        request,
        deps.sessions,
        key,
        idempotency_key,
        status=201,
        work=lambda: do_start_subscription(deps, body),
    )


@router.get("/subscriptions", response_model=Page[SubscriptionOut])
def list_subscriptions(
    deps: DepsDep,
    _: KeyInfo = KEY,
    status: SubscriptionStatus | None = None,
    customer_id: str | None = None,
    price_id: str | None = None,
    limit: Limit = 10,
    starting_after: After = None,
) -> Page[SubscriptionOut]:
    rows, more = subscription_service.list_subscriptions(
        deps.sessions,
        SubscriptionOut.of,
        limit=limit,
        starting_after=starting_after,
        status=status,
        customer_id=customer_id,
        price_id=price_id,
    )
    return Page[SubscriptionOut](data=rows, has_more=more)


async def live_status(deps: Deps, subscription_id: str) -> LiveStatus | None:
    try:
        client = await asyncio.wait_for(deps.temporal_client(), LIVE_TIMEOUT)
        # A closed workflow (ended, or a run whose successor is gone) has no live status.
        described = await asyncio.wait_for(
            subscription_service.handle(client, subscription_id).describe(), LIVE_TIMEOUT
        )
        if described.status != WorkflowExecutionStatus.RUNNING:
            return None
        view = await asyncio.wait_for(
            subscription_service.subscription_status(client, subscription_id), LIVE_TIMEOUT
        )
    except Exception as error:
        log.info("no live status for %s: %s", subscription_id, error or type(error).__name__)
        return None
    return LiveStatus.of(view)


@router.get("/subscriptions/{subscription_id}", response_model=SubscriptionDetail)
async def get_subscription(
    deps: DepsDep, subscription_id: PathId, _: KeyInfo = KEY
) -> SubscriptionDetail:
    """The stored subscription, with ``live``: its workflow's status query right now.

    The top-level fields are the stored row, all of them, as the workflow last
    recorded it: a status and the fields that go with it (``canceled`` with its
    ``canceled_at`` and reason) always come together. ``live`` is the workflow's own
    answer, which may be a moment ahead: right after a cancel it already says
    ``canceled`` while the row still has the status before, until the workflow
    records the cancellation (then both say so). Mixing the two would show a
    ``canceled`` status with no ``canceled_at`` or reason.
    """
    row = await run_in_threadpool(read_subscription, deps, subscription_id)
    live = await live_status(deps, subscription_id)
    return SubscriptionDetail(**row.model_dump(), live=live)


def check_cancellable(deps: Deps, subscription_id: str) -> None:
    subscription_service.check_not_canceled(deps.sessions, subscription_id, already=True)


async def do_cancel(
    deps: Deps, subscription_id: str, body: CancelCreate, key: KeyInfo
) -> CancelAccepted:
    await run_in_threadpool(check_cancellable, deps, subscription_id)
    requested_by = requester(key)
    client = await deps.connected()
    async with subscription_service.workflow_errors(subscription_id, "cancellation"):
        await subscription_service.cancel_subscription(
            client,
            subscription_id,
            reason=body.reason,
            at_period_end=body.at_period_end,
            requested_by=requested_by,
        )
    return CancelAccepted(
        subscription_id=subscription_id,
        reason=body.reason,
        at_period_end=body.at_period_end,
        requested_by=requested_by,
    )


@router.post(
    "/subscriptions/{subscription_id}/cancel",
    status_code=202,
    response_model=CancelAccepted,
    responses={
        409: {
            "model": ErrorBody,
            "description": "already canceled, or the Idempotency-Key was used otherwise",
        },
        **TEMPORAL_DOWN,
    },
)
async def cancel_subscription(
    deps: DepsDep,
    subscription_id: PathId,
    body: CancelCreate,
    request: Request,
    idempotency_key: IdemKey = None,
    key: KeyInfo = KEY,
) -> JSONResponse:
    """Send the ``cancel`` signal; ``at_period_end: false`` ends it now.

    Accepted (202): the workflow cancels, records the reason and who asked (this
    API key) in the audit log, and emails the customer.
    """
    return await once(
        request,
        deps.sessions,
        key,
        idempotency_key,
        status=202,
        work=lambda: do_cancel(deps, subscription_id, body, key),
    )
