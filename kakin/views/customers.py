"""How a customer reads (its card is only ever "has one or not"), and how its page
lists its subscriptions."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from kakin.views.common import columns
from kakin.views.subscriptions import SubscriptionOut
from models.tables import Customer, Subscription


class CustomerOut(BaseModel):
    object: Literal["customer"] = "customer"
    id: str
    email: str
    name: str
    locale: str
    currency: str
    time_zone: str
    has_payment_method: bool
    created_at: datetime

    @classmethod
    def of(cls, row: Customer) -> CustomerOut:
        return cls(**columns(row, cls, has_payment_method=bool(row.stripe_payment_method_id)))


class CustomerSubscription(SubscriptionOut):
    """A subscription as a customer's page lists it: with its plan's name and price (the
    amount per seat and period, for a flat or per-unit price; tiers have none)."""

    plan_name: str
    currency: str
    pricing_model: str
    unit_amount: int
    interval: str
    interval_count: int

    @classmethod
    def listed(cls, row: Subscription) -> CustomerSubscription:
        price = row.price
        return cls(
            **SubscriptionOut.of(row).model_dump(),
            # The product first, as the subscription pages name it: a nickname alone
            # ("月額") does not say which plan.
            plan_name=price.product.name + (f" · {price.nickname}" if price.nickname else ""),
            currency=price.currency,
            pricing_model=price.pricing_model,
            unit_amount=price.unit_amount,
            interval=price.interval,
            interval_count=price.interval_count,
        )
