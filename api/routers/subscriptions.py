"""Subscriptions: start (the row, then its workflow), read (row + live status), list, cancel."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from temporalio.client import WorkflowExecutionStatus

from api.deps import KEY, Deps, DepsDep, PageDep, PathId
from api.errors import RESPONSES, ApiError, ErrorBody
from api.idempotency import RESPONSES as IDEMPOTENT
from api.lookups import require_customer, require_price
from api.requests.subscriptions import CancelCreate, SubscriptionCreate
from api.workflow_calls import TEMPORAL_DOWN, capitalized
from api.writes import Write, WriteDep
from kakin.services import alerts as alert_service
from kakin.services import errors as service_errors
from kakin.services import subscriptions as subscription_service
from kakin.services.api_keys import KeyInfo
from kakin.views.common import Page
from kakin.views.subscriptions import (
    CancelAccepted,
    LiveStatus,
    SubscriptionDetail,
    SubscriptionOut,
    UsageCapOut,
)
from models.payloads import SubscriptionStatus

log = logging.getLogger("kakin.api")

START_SLACK = timedelta(minutes=5)
LIVE_TIMEOUT = 5.0  # the status query; a workflow nobody can answer for gives "live": null


router = APIRouter(prefix="/v1", responses=RESPONSES, tags=["subscriptions"])


def read_subscription(deps: Deps, subscription_id: str) -> SubscriptionOut:
    return subscription_service.get_subscription(deps.sessions, subscription_id, SubscriptionOut.of)


def check_new_subscription(deps: Deps, body: SubscriptionCreate) -> None:
    require_customer(deps.sessions, body.customer_id)
    require_price(deps.sessions, body.price_id)


async def do_start_subscription(deps: Deps, body: SubscriptionCreate) -> SubscriptionOut:
    # A start in the past would have the workflow bill every period since at once
    # (from 1900: centuries of invoices); a little slack covers the caller's clock.
    if body.start_at is not None and body.start_at < datetime.now(UTC) - START_SLACK:
        raise ApiError(422, "start_at is in the past; a subscription starts now or at a later time")
    await run_in_threadpool(check_new_subscription, deps, body)
    client = await deps.connected()
    settings = deps.settings
    try:
        async with subscription_service.workflow_errors(
            "", "start", unavailable="Temporal did not start the subscription; try again",
            running=False,
        ):  # fmt: skip
            subscription_id = await subscription_service.start_subscription(
                client,
                deps.sessions,
                task_queue=settings.task_queue,
                live_mode=settings.live_mode,
                dunning=settings.dunning_policy,
                stripe_task_queue=settings.stripe_task_queue,
                **body.model_dump(),
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
async def create_subscription(body: SubscriptionCreate, write: WriteDep) -> JSONResponse:
    """Start a subscription: its row, then its workflow, which bills it from now on."""
    return await write.run(lambda: do_start_subscription(write.deps, body), status=201)


@router.get("/subscriptions", response_model=Page[SubscriptionOut])
def list_subscriptions(
    deps: DepsDep,
    page: PageDep,
    _: KeyInfo = KEY,
    status: SubscriptionStatus | None = None,
    customer_id: str | None = None,
    price_id: str | None = None,
) -> Page[SubscriptionOut]:
    lister = subscription_service.list_subscriptions
    filters = {"status": status, "customer_id": customer_id, "price_id": price_id}
    return page.read(SubscriptionOut, lister, deps.sessions, SubscriptionOut.of, **filters)


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
    caps = await run_in_threadpool(alert_service.usage_caps, deps.sessions, subscription_id)
    shown = [UsageCapOut(**vars(cap)) for cap in caps]
    return SubscriptionDetail(**row.model_dump(), live=live, usage_caps=shown)


def check_cancellable(deps: Deps, subscription_id: str) -> None:
    subscription_service.check_not_canceled(deps.sessions, subscription_id, already=True)


async def do_cancel(write: Write, subscription_id: str, body: CancelCreate) -> CancelAccepted:
    deps = write.deps
    await run_in_threadpool(check_cancellable, deps, subscription_id)
    requested_by = write.requested_by
    client = await deps.connected()
    async with subscription_service.workflow_errors(subscription_id, "cancellation"):
        await subscription_service.cancel_subscription(
            client, subscription_id, requested_by=requested_by, **body.model_dump()
        )
    return CancelAccepted(
        subscription_id=subscription_id, requested_by=requested_by, **body.model_dump()
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
    subscription_id: PathId, body: CancelCreate, write: WriteDep
) -> JSONResponse:
    """Send the ``cancel`` signal; ``at_period_end: false`` ends it now.

    Accepted (202): the workflow cancels, records the reason and who asked (this
    API key) in the audit log, and emails the customer.
    """
    return await write.run(lambda: do_cancel(write, subscription_id, body), status=202)
