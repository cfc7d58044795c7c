"""Usage: services report events; anyone with a key reads usage so far and the next invoice."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from temporalio.client import WorkflowExecutionStatus

from api.deps import KEY, Deps, DepsDep, PathId
from api.errors import RESPONSES, ApiError
from api.idempotency import RESPONSES as IDEMPOTENT
from api.lookups import ExistingSubscriptionId
from api.requests.usage import UsageBatch, UsageEventBody
from api.workflow_calls import TEMPORAL_DOWN, ended
from api.writes import WriteDep
from billing.rounding import RoundingMode
from kakin.services import invoices as invoice_service
from kakin.services import subscriptions as subscription_service
from kakin.services.api_keys import KeyInfo
from kakin.services.usage import ingest
from kakin.views.invoices import LineOut, UpcomingInvoice
from kakin.views.usage import CurrentUsage, UsageReceipt

STATUS_TIMEOUT = 5.0


router = APIRouter(prefix="/v1", responses=RESPONSES, tags=["usage"])


@router.post("/usage", response_model=UsageReceipt, responses=IDEMPOTENT)
async def report_usage(body: UsageBatch, write: WriteDep) -> JSONResponse:
    """Report one usage event, or a batch of up to 1,000 (service).

    Each event is judged on its own: accepted, ``duplicate`` (its event id was
    received before and is counted once), or ``rejected`` with the reason; the
    good events of a batch are kept whatever the others are.
    """
    return await write.run_sync(do_ingest, write.deps, body.events)


def do_ingest(deps: Deps, events: list[UsageEventBody]) -> dict[str, Any]:
    # The parsed events go in as they are (they have UsageEventIn's fields), and the
    # receipt (a UsageReceipt) comes out as JSON-ready dicts: no model per event.
    results = ingest(deps.sessions, events, mail=deps.alert_mail)
    statuses = [result.status for result in results]
    return {
        "accepted": statuses.count("accepted"),
        "duplicates": statuses.count("duplicate"),
        "rejected": statuses.count("rejected"),
        "results": [
            {
                "event_id": result.event_id,
                "status": result.status,
                "reason": result.reason,
                "subscription_id": result.subscription_id,
            }
            for result in results
        ],
    }


@router.get("/subscriptions/{subscription_id}/usage", response_model=CurrentUsage)
def get_usage(deps: DepsDep, subscription_id: PathId, _: KeyInfo = KEY) -> CurrentUsage:
    """Usage of the open period so far, per metered price, and its cost so far."""
    return usage_so_far(deps, subscription_id)


def usage_so_far(deps: Deps, subscription_id: str) -> CurrentUsage:
    """The endpoint's answer (also the customer's billing page's usage)."""
    return invoice_service.usage_so_far(
        deps.sessions,
        subscription_id,
        lambda subscription, lines: CurrentUsage(
            subscription_id=subscription.id,
            currency=subscription.price.currency,
            period_start=subscription.current_period_start,
            period_end=subscription.current_period_end,
            lines=[LineOut.of(line) for line in lines],
            amount=sum(line.amount for line in lines),
        ),
    )


@router.get(
    "/subscriptions/{subscription_id}/upcoming-invoice",
    response_model=UpcomingInvoice,
    responses=TEMPORAL_DOWN,
)
async def get_upcoming_invoice(
    deps: DepsDep, _: KeyInfo = KEY, *, subscription_id: ExistingSubscriptionId
) -> UpcomingInvoice:
    """The invoice the subscription will be billed next, with the usage received so far:
    the next renewal's, or when it ends at the period end the last period's usage."""
    return await upcoming_invoice(deps, subscription_id)


async def upcoming_invoice(deps: Deps, subscription_id: str) -> UpcomingInvoice:
    """The upcoming invoice of an existing subscription, as the endpoint answers it (also
    the customer's billing page's "bill so far"); ``ApiError`` 409 when there is none
    (the workflow ended, or nothing follows), 503 when Temporal does not answer."""
    client = await deps.connected()
    handle = subscription_service.handle(client, subscription_id)
    try:
        async with subscription_service.workflow_errors(subscription_id, "status query"):
            described = await asyncio.wait_for(handle.describe(), STATUS_TIMEOUT)
            if described.status != WorkflowExecutionStatus.RUNNING:
                raise ended(subscription_id)
            view = await asyncio.wait_for(
                subscription_service.subscription_status(client, subscription_id), STATUS_TIMEOUT
            )
    except TimeoutError:
        raise ApiError(503, "Temporal did not answer the status query; try again") from None
    period = invoice_service.upcoming_period(view)
    if period is None:
        raise ApiError(409, f"Subscription {subscription_id!r} has no upcoming invoice")
    start, end, ends = period
    pending = view.pending_price_id
    return await run_in_threadpool(preview, deps, subscription_id, start, end, pending, ends)


def preview(
    deps: Deps,
    subscription_id: str,
    start: datetime,
    end: datetime,
    pending: str | None,
    ends: bool = False,
) -> UpcomingInvoice:
    return invoice_service.upcoming_invoice(
        deps.sessions,
        subscription_id,
        lambda subscription, draft: UpcomingInvoice.of(
            subscription.id, start, end, draft, issued_at=end if ends else start
        ),
        next_start=start,
        next_end=end,
        pending_price_id=pending,
        rounding=RoundingMode(deps.settings.tax_rounding),
        ends=ends,
    )
