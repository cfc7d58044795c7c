"""Setting and changing alerts: what is watched, the thresholds, the budget, a hard cap."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator

from api.requests.common import Request
from kakin.services.alerts import MAX_THRESHOLDS, AlertSpec, Threshold

# An alert's amounts: minor units for money alerts, the metric's unit for usage alerts,
# given as a JSON number or a decimal string ("5000", "12.5") of at most 40 characters.
DECIMAL_LENGTH = 40


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > DECIMAL_LENGTH:
        raise ValueError(f"a decimal string has at most {DECIMAL_LENGTH} characters")
    return value


Amount = Annotated[
    Decimal,
    BeforeValidator(_short),
    WithJsonSchema(
        {"anyOf": [{"type": "number"}, {"type": "string", "maxLength": DECIMAL_LENGTH}]}
    ),
]


class ThresholdBody(Request):
    """``{"percent": 80}`` of the budget, or ``{"value": 5000}``."""

    percent: Amount | None = Field(default=None, gt=0, le=100000)
    value: Amount | None = Field(default=None, gt=0, lt=Decimal(10) ** 15)

    @model_validator(mode="after")
    def _one(self) -> ThresholdBody:
        if (self.percent is None) == (self.value is None):
            raise ValueError("give either percent or value")
        return self

    def terms(self) -> Threshold:
        return Threshold(percent=self.percent, value=self.value)


class AlertCreate(Request):
    watches: Literal["bill", "forecast", "usage"] = Field(
        description="bill: the period's bill so far (tax excluded, discounts included); "
        "forecast: the bill the period is on course for; usage: one metric's quantity"
    )
    name: str = Field(default="", max_length=200)
    metric: str | None = Field(
        default=None, max_length=100, description="a usage alert's metric code"
    )
    currency: str | None = Field(
        default=None, max_length=3, description="a customer's money alert (default its currency)"
    )
    budget: Amount | None = Field(default=None, ge=0, lt=Decimal(10) ** 15)
    thresholds: list[ThresholdBody] = Field(min_length=1, max_length=MAX_THRESHOLDS)
    recurring: ThresholdBody | None = Field(
        default=None, description="fires again every step after the last threshold"
    )
    hard_cap: Amount | None = Field(
        default=None, ge=0, lt=Decimal(10) ** 15,
        description="a subscription's usage alert: usage past it in the period is refused",
    )  # fmt: skip

    def spec(self) -> AlertSpec:
        return AlertSpec(
            watches=self.watches,
            name=self.name,
            metric=self.metric,
            budget=self.budget,
            thresholds=tuple(term.terms() for term in self.thresholds),
            recurring=None if self.recurring is None else self.recurring.terms(),
            hard_cap=self.hard_cap,
        )


class AlertUpdate(Request):
    """Fields left out stay as they are; ``reason`` goes to the audit log."""

    name: str | None = Field(default=None, max_length=200)
    budget: Amount | None = Field(default=None, ge=0, lt=Decimal(10) ** 15)
    thresholds: list[ThresholdBody] | None = Field(
        default=None, min_length=1, max_length=MAX_THRESHOLDS
    )
    recurring: ThresholdBody | None = None
    hard_cap: Amount | None = Field(default=None, ge=0, lt=Decimal(10) ** 15)
    reason: str = Field(default="", max_length=1000)

    def changes(self) -> dict[str, object]:
        given = self.model_fields_set - {"reason"}
        changes: dict[str, object] = {}
        for name in given:
            if name == "thresholds":
                changes[name] = tuple(t.terms() for t in self.thresholds or [])
            elif name == "recurring":
                changes[name] = None if self.recurring is None else self.recurring.terms()
            else:
                changes[name] = getattr(self, name)
        return changes
