"""Starting a subscription and what support and services ask of a running one."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from api.requests.common import Moment, ReasonedRequest, Request, check_reason

METADATA_KEYS = 50
MetadataKey = Annotated[str, Field(min_length=1, max_length=40)]
MetadataValue = Annotated[str, Field(max_length=500)]


def check_metadata(value: dict[str, str]) -> dict[str, str]:
    if len(value) > METADATA_KEYS:
        raise ValueError(f"at most {METADATA_KEYS} keys are accepted")
    for key, item in value.items():
        if not key or len(key) > 40:
            raise ValueError("keys must be 1 to 40 characters long")
        if len(item) > 500:
            raise ValueError(f"the value of {key!r} is longer than 500 characters")
    return value


class SubscriptionCreate(Request):
    customer_id: str = Field(min_length=1, max_length=40)
    price_id: str = Field(min_length=1, max_length=40)
    quantity: int = Field(default=1, ge=1, le=1_000_000)
    trial_days: int = Field(default=0, ge=0, le=730)
    start_at: Moment | None = Field(
        default=None, description="the billing-cycle anchor, ISO 8601 with a zone"
    )
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict,
        max_length=METADATA_KEYS,
        description="your own string keys and values, stored as given: at most 50 keys "
        "of 1 to 40 characters, values of at most 500",
    )

    _metadata = field_validator("metadata")(check_metadata)


class CancelCreate(ReasonedRequest):
    REASON_FOR = "the cancellation"
    at_period_end: bool = False


class PauseCreate(ReasonedRequest):
    REASON_FOR = "the pause"


class ResumeCreate(Request):
    pass


class PlanChangeCreate(Request):
    price_id: str = Field(min_length=1, max_length=40)
    reason: str = Field(default="", max_length=1000)

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        return value.strip()


class GraceCreate(Request):
    days: int = Field(ge=1, le=60, description="how much longer the dunning ladder waits")
    reason: str = Field(min_length=1, max_length=1000)

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        return check_reason(value, "the grace period")


class CouponRedeem(Request):
    code: str = Field(min_length=1, max_length=100)


class ItemCreate(Request):
    price_id: str = Field(min_length=1, max_length=40)
    quantity: int = Field(default=1, ge=1, le=1_000_000)
