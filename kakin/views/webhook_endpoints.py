"""How an outgoing webhook endpoint, a delivery and its tries read (``/v1/webhook-endpoints``,
``kakin webhooks ... --json``). The secret is never read back: it is in the answer to
create and to rotate only (``WebhookEndpointWithSecret``)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from kakin.views.common import columns
from models.webhook_tables import WebhookDelivery, WebhookEndpoint, WebhookTry


class WebhookEndpointOut(BaseModel):
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    id: str
    url: str
    description: str
    enabled_events: list[str] = Field(description='event types, or ["*"] for all')
    enabled: bool
    disabled_reason: str = Field(description='why it is disabled ("gone": the receiver said 410)')
    secret_rotating_until: datetime | None = Field(
        description="until then deliveries carry two signatures (old and new secret)"
    )
    created_by: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: WebhookEndpoint) -> WebhookEndpointOut:
        return cls(**columns(row, cls, secret_rotating_until=row.previous_secret_expires_at))


class WebhookEndpointWithSecret(WebhookEndpointOut):
    secret: str = Field(description="whsec_ + base64: shown this once, keep it safe")

    @classmethod
    def with_secret(cls, row: WebhookEndpoint, secret: str) -> WebhookEndpointWithSecret:
        return cls(**WebhookEndpointOut.of(row).model_dump(), secret=secret)


class WebhookEndpointDeleted(BaseModel):
    """What ``DELETE /v1/webhook-endpoints/{id}`` answers (as Stripe's deletions do)."""

    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    id: str
    deleted: Literal[True] = True


class WebhookEndpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[WebhookEndpointOut]
    has_more: bool = False


class WebhookTryOut(BaseModel):
    object: Literal["webhook_try"] = "webhook_try"
    run: int = Field(description="0: the first run; n: the n-th resend")
    number: int = Field(description="the try within its run, 1 to 8")
    scheduled_at: datetime = Field(description="on the retry schedule (billing time)")
    attempted_at: datetime
    duration_ms: int
    outcome: str = Field(description="delivered, failed, timeout, error, refused or gone")
    status_code: int | None
    response_excerpt: str = Field(description="the first 1 KB of the answer")
    error: str

    @classmethod
    def of(cls, row: WebhookTry) -> WebhookTryOut:
        return cls(**columns(row, cls))


class WebhookDeliveryOut(BaseModel):
    object: Literal["webhook_delivery"] = "webhook_delivery"
    id: str
    endpoint_id: str
    event_id: str = Field(description="the webhook-id header: the same across tries and resends")
    event_type: str
    status: str = Field(description="pending, delivered, failed or skipped")
    tries: int
    resends: int
    last_status_code: int | None
    created_at: datetime
    last_tried_at: datetime | None
    delivered_at: datetime | None
    payload: dict[str, Any] = Field(description="the body sent: {type, timestamp, data}")
    attempts: list[WebhookTryOut]

    @classmethod
    def of(cls, row: WebhookDelivery, tries: list[WebhookTry]) -> WebhookDeliveryOut:
        return cls(**columns(row, cls, payload=json.loads(row.body),
                             attempts=[WebhookTryOut.of(t) for t in tries]))  # fmt: skip


class WebhookDeliveryList(BaseModel):
    object: Literal["list"] = "list"
    data: list[WebhookDeliveryOut]
    has_more: bool = False
