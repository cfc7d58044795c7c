"""Alerts: budgets and spend or usage alerts on a subscription, or on a customer across
its subscriptions; hard caps on a subscription's usage (raising one is audited)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import KEY, Deps, DepsDep, PathId, requester
from api.errors import RESPONSES
from api.idempotency import RESPONSES as IDEMPOTENT
from api.requests.alerts import AlertCreate, AlertUpdate
from api.writes import WriteDep
from kakin.services import alerts as alert_service
from kakin.services.api_keys import KeyInfo
from kakin.views.alerts import AlertList, AlertOut

router = APIRouter(prefix="/v1", responses=RESPONSES, tags=["alerts"])


class AlertDeleted(BaseModel):
    object: Literal["alert"] = "alert"
    id: str
    deleted: bool = True


def _create(deps: Deps, body: AlertCreate, by: str, **owner: str) -> AlertOut:
    details = alert_service.create_alert(
        deps.sessions, body.spec(), currency=body.currency, actor=by, **owner
    )
    return AlertOut.of(details)


# -- on a subscription -------------------------------------------------------------------


@router.post(
    "/subscriptions/{subscription_id}/alerts",
    status_code=201,
    response_model=AlertOut,
    responses=IDEMPOTENT,
)
async def create_subscription_alert(
    subscription_id: PathId, body: AlertCreate, write: WriteDep
) -> JSONResponse:
    """Set an alert on the subscription: its bill so far, its forecast bill, or one
    metric's usage (which may carry a hard cap)."""
    if body.currency is not None:
        body = body.model_copy(update={"currency": None})  # a subscription bills in its own
    return await write.run_sync(
        lambda: _create(write.deps, body, write.requested_by, subscription_id=subscription_id),
        status=201,
    )


@router.get("/subscriptions/{subscription_id}/alerts", response_model=AlertList)
def list_subscription_alerts(deps: DepsDep, subscription_id: PathId, _: KeyInfo = KEY) -> AlertList:
    found = alert_service.list_alerts(deps.sessions, subscription_id=subscription_id)
    return AlertList(data=[AlertOut.of(item) for item in found])


@router.get("/subscriptions/{subscription_id}/alerts/{alert_id}", response_model=AlertOut)
def get_subscription_alert(
    deps: DepsDep, subscription_id: PathId, alert_id: PathId, _: KeyInfo = KEY
) -> AlertOut:
    """The alert, with the watched value now and the thresholds fired this period."""
    return AlertOut.of(
        alert_service.get_alert(deps.sessions, alert_id, subscription_id=subscription_id)
    )


@router.patch("/subscriptions/{subscription_id}/alerts/{alert_id}", response_model=AlertOut)
def update_subscription_alert(
    deps: DepsDep, subscription_id: PathId, alert_id: PathId, body: AlertUpdate,
    key: KeyInfo = KEY,
) -> AlertOut:  # fmt: skip
    """Change the thresholds, budget, step or hard cap; fields left out stay. Audited."""
    return _update(deps, alert_id, body, key, subscription_id=subscription_id)


@router.delete("/subscriptions/{subscription_id}/alerts/{alert_id}", response_model=AlertDeleted)
def delete_subscription_alert(
    deps: DepsDep, subscription_id: PathId, alert_id: PathId, key: KeyInfo = KEY
) -> AlertDeleted:
    return _delete(deps, alert_id, key, subscription_id=subscription_id)


# -- on a customer, across its subscriptions ---------------------------------------------


@router.post(
    "/customers/{customer_id}/alerts", status_code=201, response_model=AlertOut,
    responses=IDEMPOTENT,
)  # fmt: skip
async def create_customer_alert(
    customer_id: PathId, body: AlertCreate, write: WriteDep
) -> JSONResponse:
    """Set an alert on the customer: the sum over its subscriptions (money alerts in
    ``currency``, default the customer's)."""
    return await write.run_sync(
        lambda: _create(write.deps, body, write.requested_by, customer_id=customer_id),
        status=201,
    )


@router.get("/customers/{customer_id}/alerts", response_model=AlertList)
def list_customer_alerts(deps: DepsDep, customer_id: PathId, _: KeyInfo = KEY) -> AlertList:
    found = alert_service.list_alerts(deps.sessions, customer_id=customer_id)
    return AlertList(data=[AlertOut.of(item) for item in found])


@router.get("/customers/{customer_id}/alerts/{alert_id}", response_model=AlertOut)
def get_customer_alert(
    deps: DepsDep, customer_id: PathId, alert_id: PathId, _: KeyInfo = KEY
) -> AlertOut:
    return AlertOut.of(alert_service.get_alert(deps.sessions, alert_id, customer_id=customer_id))


@router.patch("/customers/{customer_id}/alerts/{alert_id}", response_model=AlertOut)
def update_customer_alert(
    deps: DepsDep, customer_id: PathId, alert_id: PathId, body: AlertUpdate,
    key: KeyInfo = KEY,
) -> AlertOut:  # fmt: skip
    return _update(deps, alert_id, body, key, customer_id=customer_id)


@router.delete("/customers/{customer_id}/alerts/{alert_id}", response_model=AlertDeleted)
def delete_customer_alert(
    deps: DepsDep, customer_id: PathId, alert_id: PathId, key: KeyInfo = KEY
) -> AlertDeleted:
    return _delete(deps, alert_id, key, customer_id=customer_id)


# -- what both owners' endpoints do, the owner (subscription_id or customer_id) given --


def _update(deps: Deps, alert_id: str, body: AlertUpdate, key: KeyInfo, **owner: str) -> AlertOut:
    changed = alert_service.update_alert(
        deps.sessions, alert_id, body.changes(), actor=requester(key), reason=body.reason, **owner
    )
    return AlertOut.of(changed)


def _delete(deps: Deps, alert_id: str, key: KeyInfo, **owner: str) -> AlertDeleted:
    alert_service.delete_alert(deps.sessions, alert_id, actor=requester(key), **owner)
    return AlertDeleted(id=alert_id)
