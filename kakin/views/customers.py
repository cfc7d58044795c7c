"""How a customer reads (its card is only ever "has one or not")."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from kakin.views.common import columns
from models.tables import Customer


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
