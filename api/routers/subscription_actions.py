"""What support (and services, for plan changes) do to a running subscription.

Each action is a validated update on the subscription's workflow: it is refused
(409, with the workflow's reason) before anything is written, and answers with the
workflow's status right after. The audit log keeps the reason and the key.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from temporalio.client import Client

from api.deps import KEY, Deps, DepsDep, PathId
from api.errors import RESPONSES
from api.requests.subscriptions import GraceCreate, PauseCreate, PlanChangeCreate, ResumeCreate
from api.workflow_calls import UPDATE_RESPONSES, update_once
from api.writes import WriteDep
from kakin.services import subscriptions as subscription_service
from kakin.services.api_keys import KeyInfo
from kakin.views.subscriptions import PlanChangePreview, SubscriptionStatusOut
from models.payloads import StatusView

# Every action answers with the workflow's status right after it.
ACTION: dict[str, Any] = {"response_model": SubscriptionStatusOut, "responses": UPDATE_RESPONSES}

router = APIRouter(prefix="/v1", responses=RESPONSES, tags=["subscriptions"])


@router.post("/subscriptions/{subscription_id}/pause", **ACTION)
async def pause_subscription(
    subscription_id: PathId, body: PauseCreate, write: WriteDep
) -> JSONResponse:
    """The ``pause`` update (support, admin): no invoices until resumed.

    Refused (409, with the reason) unless the subscription is active or trialing
    and not ending at the period end. The audit log keeps the reason and this key.
    """
    pause = subscription_service.pause_subscription
    return await update_once(write, subscription_id, "pause", pause, reason=body.reason)


@router.post("/subscriptions/{subscription_id}/resume", **ACTION)
async def resume_subscription(
    subscription_id: PathId, write: WriteDep, body: ResumeCreate | None = None
) -> JSONResponse:
    """The ``resume`` update (support, admin): refused (409) unless paused.

    The paid period gets the paused time back.
    """
    resume = subscription_service.resume_subscription
    return await update_once(write, subscription_id, "resume", resume)


@router.post("/subscriptions/{subscription_id}/change_plan", **ACTION)
async def change_plan(
    subscription_id: PathId, body: PlanChangeCreate, write: WriteDep
) -> JSONResponse:
    """The ``change_plan`` update: a dearer price now, a cheaper or equal one at the end
    of the paid period (``pending_price_id`` until then).

    An upgrade invoices the prorated difference and charges it at once. Same currency
    and interval only (422 otherwise); refused (409) unless active or trialing.
    """

    def change(client: Client, subscription_id: str, **fields: Any) -> Awaitable[StatusView]:
        # The plan change reads the new price (currency, interval) from the database.
        return subscription_service.change_plan(client, write.sessions, subscription_id, **fields)

    fields = body.model_dump()
    return await update_once(write, subscription_id, "plan change", change, **fields)


def do_preview(deps: Deps, subscription_id: str, price_id: str) -> PlanChangePreview:
    currency = subscription_service.plan_change_currency(deps.sessions, subscription_id, price_id)
    proration = subscription_service.preview_plan_change(
        deps.sessions, subscription_id, price_id=price_id, at=datetime.now(UTC)
    )
    if proration is None:
        return PlanChangePreview(
            price_id=price_id,
            applies="at_period_end",
            credit=0,
            charge=0,
            net=0,
            currency=currency,
        )
    return PlanChangePreview(
        price_id=price_id,
        applies="now",
        credit=proration.credit,
        charge=proration.charge,
        net=proration.net,
        currency=currency,
    )


@router.get(
    "/subscriptions/{subscription_id}/change_plan/preview",
    response_model=PlanChangePreview,
)
def preview_plan_change(
    deps: DepsDep,
    subscription_id: PathId,
    price_id: Annotated[str, Query(min_length=1, max_length=40)],
    _: KeyInfo = KEY,
) -> PlanChangePreview:
    """What ``change_plan`` to ``price_id`` would charge if asked now (nothing changes).

    ``applies: now`` with the prorated credit, charge and net for a dearer price;
    ``at_period_end`` with zeros for a cheaper or equal one.
    """
    return do_preview(deps, subscription_id, price_id)


@router.post("/subscriptions/{subscription_id}/grace", **ACTION)
async def grant_grace(subscription_id: PathId, body: GraceCreate, write: WriteDep) -> JSONResponse:
    """The ``grant_grace`` update (support, admin): every remaining dunning step waits
    ``days`` (1 to 60) longer. Refused (409) unless the subscription is in dunning."""
    grace = subscription_service.grant_grace
    return await update_once(write, subscription_id, "grace period", grace, **body.model_dump())
