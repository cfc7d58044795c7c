"""The bodies of ``POST /v1/webhook-endpoints`` and ``PATCH /v1/webhook-endpoints/{id}``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from api.requests.common import Request

EVENTS = 'event types (invoice.paid, subscription.canceled...), or ["*"] for every type'
EventType = Annotated[str, Field(min_length=1, max_length=64)]


class WebhookEndpointCreate(Request):
    url: str = Field(min_length=8, max_length=2048, description="where to POST the events")
    enabled_events: list[EventType] = Field(min_length=1, max_length=50, description=EVENTS)
    description: str = Field(default="", max_length=500)


class WebhookEndpointUpdate(Request):
    """Only the fields given change. ``enabled: false`` stops deliveries (those in
    flight end at their next try); ``true`` resumes with the changes made from then on."""

    url: str | None = Field(default=None, min_length=8, max_length=2048)
    enabled_events: list[EventType] | None = Field(
        default=None, min_length=1, max_length=50, description=EVENTS
    )
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class SecretRotation(Request):
    overlap_hours: float = Field(
        default=24, ge=0, le=168,
        description="how long the old secret goes on signing beside the new one",
    )  # fmt: skip
