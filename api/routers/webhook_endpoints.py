"""Outgoing webhook endpoints, their deliveries and resends: admin keys only.

(Stripe's webhooks *to* kakin are ``api.routers.webhooks``.) The secret is in the
answer to create and to rotate, once: these two take no Idempotency-Key, so no copy of
it is kept with a stored response.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from api.deps import KEY, DepsDep, PathId, requester
from api.errors import RESPONSES
from api.requests.webhook_endpoints import (
    SecretRotation,
    WebhookEndpointCreate,
    WebhookEndpointUpdate,
)
from kakin.platform.codec import keyring_from_settings
from kakin.services import webhook_deliveries, webhook_endpoints
from kakin.services.api_keys import KeyInfo
from kakin.views.webhook_endpoints import (
    WebhookDeliveryList,
    WebhookDeliveryOut,
    WebhookEndpointDeleted,
    WebhookEndpointList,
    WebhookEndpointOut,
    WebhookEndpointWithSecret,
)

router = APIRouter(prefix="/v1", responses=RESPONSES, tags=["webhook endpoints"])

StatusFilter = Annotated[
    str | None, Query(pattern="^(pending|delivered|failed|skipped)$", description="only these")
]
DeliveryLimit = Annotated[int, Query(ge=1, le=100, description="at most 100, newest first")]


@router.post("/webhook-endpoints", status_code=201, response_model=WebhookEndpointWithSecret)
def create_endpoint(
    body: WebhookEndpointCreate, deps: DepsDep, key: KeyInfo = KEY
) -> WebhookEndpointWithSecret:
    """Register a URL for event types. The answer holds the signing secret (`whsec_...`),
    shown this once. In live mode a URL resolving to a loopback, private, link-local or
    metadata address is refused (422)."""
    return webhook_endpoints.create_endpoint(
        deps.sessions, keyring_from_settings(deps.settings), WebhookEndpointWithSecret.with_secret,
        url=body.url, enabled_events=body.enabled_events, description=body.description,
        live_mode=deps.settings.live_mode, created_by=requester(key),
    )  # fmt: skip


@router.get("/webhook-endpoints", response_model=WebhookEndpointList)
def list_endpoints(deps: DepsDep, _: KeyInfo = KEY) -> WebhookEndpointList:
    """Every endpoint, oldest first (never their secrets)."""
    return WebhookEndpointList(
        data=webhook_endpoints.list_endpoints(deps.sessions, WebhookEndpointOut.of)
    )


@router.get("/webhook-endpoints/{endpoint_id}", response_model=WebhookEndpointOut)
def get_endpoint(deps: DepsDep, endpoint_id: PathId, _: KeyInfo = KEY) -> WebhookEndpointOut:
    return webhook_endpoints.get_endpoint(deps.sessions, endpoint_id, WebhookEndpointOut.of)


@router.patch("/webhook-endpoints/{endpoint_id}", response_model=WebhookEndpointOut)
def update_endpoint(
    body: WebhookEndpointUpdate, deps: DepsDep, endpoint_id: PathId, key: KeyInfo = KEY
) -> WebhookEndpointOut:
    """Change the URL, the event types or the description; enable or disable it."""
    return webhook_endpoints.update_endpoint(
        deps.sessions, endpoint_id, WebhookEndpointOut.of, actor=requester(key),
        url=body.url, enabled_events=body.enabled_events, description=body.description,
        enabled=body.enabled, live_mode=deps.settings.live_mode,
    )  # fmt: skip


@router.post(
    "/webhook-endpoints/{endpoint_id}/rotate_secret", response_model=WebhookEndpointWithSecret
)
def rotate_secret(
    deps: DepsDep, endpoint_id: PathId, body: SecretRotation | None = None, key: KeyInfo = KEY
) -> WebhookEndpointWithSecret:
    """A new secret, shown this once. The old one goes on signing beside it for
    `overlap_hours` (24 by default): deliveries meanwhile carry both signatures."""
    overlap = timedelta(hours=(body or SecretRotation()).overlap_hours)
    return webhook_endpoints.rotate_secret(
        deps.sessions, keyring_from_settings(deps.settings), endpoint_id,
        WebhookEndpointWithSecret.with_secret, actor=requester(key), overlap=overlap,
    )  # fmt: skip


@router.delete("/webhook-endpoints/{endpoint_id}", response_model=WebhookEndpointDeleted)
def delete_endpoint(
    deps: DepsDep, endpoint_id: PathId, key: KeyInfo = KEY
) -> WebhookEndpointDeleted:
    """Remove the endpoint and its deliveries (those in flight stop at their next try)."""
    webhook_endpoints.delete_endpoint(deps.sessions, endpoint_id, actor=requester(key))
    return WebhookEndpointDeleted(id=endpoint_id)


@router.get("/webhook-endpoints/{endpoint_id}/deliveries", response_model=WebhookDeliveryList)
def list_deliveries(
    deps: DepsDep,
    endpoint_id: PathId,
    status: StatusFilter = None,
    limit: DeliveryLimit = 20,
    _: KeyInfo = KEY,
) -> WebhookDeliveryList:
    """The endpoint's deliveries, newest first, each with every try."""
    found = webhook_deliveries.list_deliveries(
        deps.sessions, endpoint_id, WebhookDeliveryOut.of, limit=limit, status=status
    )
    return WebhookDeliveryList(data=found)


@router.get("/webhook-deliveries/{delivery_id}", response_model=WebhookDeliveryOut)
def get_delivery(deps: DepsDep, delivery_id: PathId, _: KeyInfo = KEY) -> WebhookDeliveryOut:
    return webhook_deliveries.get_delivery(deps.sessions, delivery_id, WebhookDeliveryOut.of)


@router.post("/webhook-deliveries/{delivery_id}/resend", response_model=WebhookDeliveryOut)
async def resend_delivery(
    deps: DepsDep, delivery_id: PathId, key: KeyInfo = KEY
) -> WebhookDeliveryOut:
    """Send a delivery again, delivered or failed: the same webhook-id and body, so a
    receiver that has it already can tell. On the retry schedule again if it fails."""
    await run_in_threadpool(
        webhook_deliveries.get_delivery, deps.sessions, delivery_id, WebhookDeliveryOut.of
    )  # a 404 before Temporal is asked
    client = await deps.connected()
    return await webhook_deliveries.resend(
        deps.sessions, client, delivery_id, WebhookDeliveryOut.of,
        task_queue=deps.settings.task_queue, requested_by=requester(key),
    )  # fmt: skip
