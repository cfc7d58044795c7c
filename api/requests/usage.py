"""Reporting usage: one event, or a batch of up to 1,000."""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, field_validator, model_validator

from api.requests.common import Moment, Request
from kakin.services.usage import MAX_BATCH

PROPERTY_KEY_LENGTH = 100
PROPERTIES_BYTES = 4096


class UsageEventBody(Request):
    event_id: str = Field(min_length=1, max_length=255, description="counted once per customer")
    metric: str = Field(min_length=1, max_length=100, description="the billable metric's code")
    timestamp: Moment
    properties: dict[str, Any] = Field(
        default_factory=dict,
        max_length=50,
        description="at most 50 keys of 1 to 100 characters, 4 KiB as JSON",
    )
    customer_id: str | None = Field(default=None, max_length=40)
    subscription_id: str | None = Field(default=None, max_length=40)

    @field_validator("properties")
    @classmethod
    def _properties(cls, value: dict[str, Any]) -> dict[str, Any]:
        if any(not key or len(key) > PROPERTY_KEY_LENGTH for key in value):
            raise ValueError(f"keys must be 1 to {PROPERTY_KEY_LENGTH} characters long")
        if len(json.dumps(value, ensure_ascii=False).encode()) > PROPERTIES_BYTES:
            raise ValueError(f"they are larger than {PROPERTIES_BYTES // 1024} KiB as JSON")
        return value


class UsageBatch(Request):
    """``{"events": [...]}`` with 1 to 1,000 events; a single event object also works."""

    events: list[UsageEventBody] = Field(min_length=1, max_length=MAX_BATCH)

    @model_validator(mode="before")
    @classmethod
    def _one_event(cls, data: Any) -> Any:
        # A lone event is a batch of one: one shape to validate, one set of messages.
        if isinstance(data, dict) and "events" not in data and "event_id" in data:
            return {"events": [data]}
        return data
