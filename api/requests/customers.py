"""Creating and changing a customer."""

from __future__ import annotations

from pydantic import Field, field_validator

from api.requests.common import (
    CURRENCY_LENGTH,
    EMAIL_LENGTH,
    ZONE_LENGTH,
    Locale,
    Request,
    check_currency,
    check_email,
    check_time_zone,
)


class CustomerCreate(Request):
    email: str = Field(max_length=EMAIL_LENGTH)
    name: str = Field(min_length=1, max_length=200)
    currency: str = Field(max_length=CURRENCY_LENGTH)
    locale: Locale = "en"
    time_zone: str = Field(default="UTC", max_length=ZONE_LENGTH)
    payment_method_id: str | None = Field(default=None, max_length=255)
    card_number: str | None = Field(
        default=None,
        max_length=40,
        description="a Stripe test card number, test mode only; sent to Stripe, never stored",
    )

    _email = field_validator("email")(check_email)
    _currency = field_validator("currency")(check_currency)
    _time_zone = field_validator("time_zone")(check_time_zone)


class CustomerUpdate(Request):
    email: str | None = Field(default=None, max_length=EMAIL_LENGTH)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    locale: Locale | None = None
    time_zone: str | None = Field(default=None, max_length=ZONE_LENGTH)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return None if value is None else check_email(value)

    @field_validator("time_zone")
    @classmethod
    def _time_zone(cls, value: str | None) -> str | None:
        return None if value is None else check_time_zone(value)
