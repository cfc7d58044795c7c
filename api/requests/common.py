"""What several request bodies share: the base model, bounded types and their checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    field_validator,
)

from billing.money import normalize_currency
from billing.rounding import parse_decimal

Locale = Literal["ja", "en"]
IntervalName = Literal["day", "week", "month", "year"]


def check_email(value: str) -> str:
    value = value.strip()
    local, at, domain = value.partition("@")
    if not at or not local or "." not in domain or " " in value or len(value) > 320:
        raise ValueError(f"{value!r} is not an email address")
    return value


def check_currency(value: str) -> str:
    return normalize_currency(value)  # ValueError names the code and gives an example


def check_time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone such as Asia/Tokyo or UTC") from None
    return value


def check_decimal(value: str | None) -> str | None:
    if value is not None:
        parse_decimal(value, what="the value")  # ValueError says what is wrong
    return value


def check_reason(value: str, what: str) -> str:
    if not value.strip():
        raise ValueError(f"give the reason for {what}")
    return value.strip()


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReasonedRequest(Request):
    """A body whose first field is the reason staff give (kept in the audit log): 1 to
    1,000 characters, not blank, stored stripped; a blank one is refused naming
    ``REASON_FOR``, what it is the reason for."""

    REASON_FOR: ClassVar[str]
    reason: str = Field(min_length=1, max_length=1000)

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        return check_reason(value, cls.REASON_FOR)


# Every free string in a request body has a length limit (the body as a whole is limited
# by KAKIN_API_MAX_BODY_BYTES); these are the ones several bodies share.
EMAIL_LENGTH = 320
CURRENCY_LENGTH = 10
ZONE_LENGTH = 64
# Amounts in minor units: 10^15 is far beyond any real price and well inside BIGINT.
MAX_AMOUNT = 10**15
# An amount is a JSON integer and nothing else: lax parsing would take "1000", 1000.0 or
# true as 1000 (or 1); money is never a float or a string (decimal strings have fields of
# their own, named *_decimal, and tiers' unit_amount, which may be fractional).
Amount = Annotated[int, Strict()]
Id = Annotated[str, Field(min_length=1, max_length=40)]
EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)


def check_moment(value: datetime) -> datetime:
    # Year 1 or 9999 in a far time zone overflows on the way to UTC, and billing
    # arithmetic (periods, trials) on either end would overflow later.
    if EARLIEST.year < value.year < LATEST.year - 1:
        return value  # inside whatever its offset (under a day): no conversion needed
    try:
        in_utc = value.astimezone(UTC)
    except OverflowError:
        in_utc = EARLIEST - timedelta(days=1)
    if not EARLIEST <= in_utc < LATEST:
        raise ValueError("the time must be between 1900 and 2200")
    return value


Moment = Annotated[AwareDatetime, AfterValidator(check_moment)]
