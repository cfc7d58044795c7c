"""Request and response bodies. Amounts are integers in the currency's minor unit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Generic, Literal, TypeVar
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
from models.payloads import StatusView
from models.tables import Customer, Invoice, Subscription

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


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class FromRow(BaseModel):
    """A response read straight off a table row, field by field of the same name."""

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def of(cls, row: Any) -> Any:
        return cls.model_validate(row)


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
        return cls(
            id=row.id,
            email=row.email,
            name=row.name,
            locale=row.locale,
            currency=row.currency,
            time_zone=row.time_zone,
            has_payment_method=bool(row.stripe_payment_method_id),
            created_at=row.created_at,
        )


class TierIn(Request):
    up_to: str | None = Field(
        max_length=40, description="the tier's last unit (inclusive); null: no limit"
    )
    unit_amount: str = Field(
        default="0", max_length=40, description="per unit, minor units, may be fractional"
    )
    flat_amount: Amount = Field(
        default=0, ge=0, le=MAX_AMOUNT, description="a flat fee for reaching the tier"
    )


class PriceCreate(Request):
    product_name: str = Field(min_length=1, max_length=200)
    nickname: str = Field(default="", max_length=200)
    currency: str = Field(max_length=CURRENCY_LENGTH)
    unit_amount: Amount = Field(
        default=0, ge=0, le=MAX_AMOUNT, description="in minor units (JPY: yen); flat per seat"
    )
    interval: IntervalName = "month"
    interval_count: int = Field(default=1, ge=1, le=365)
    pricing_model: Literal["flat", "per_unit", "graduated", "volume", "package"] = "flat"
    unit_amount_decimal: str | None = Field(
        default=None, max_length=40, description='per unit or package, e.g. "0.015" yen per call'
    )
    package_size: int | None = Field(default=None, ge=1, le=1_000_000_000)
    tiers: list[TierIn] | None = Field(default=None, min_length=1, max_length=50)
    metric: str | None = Field(
        default=None, max_length=100, description="a metric code: billed in arrears on usage"
    )
    tax_rate_ids: list[Id] = Field(default_factory=list, max_length=5)

    _currency = field_validator("currency")(check_currency)


class ProductOut(FromRow):
    id: str
    name: str


class PriceOut(FromRow):
    object: Literal["price"] = "price"
    id: str
    product: ProductOut
    nickname: str
    currency: str
    unit_amount: int
    interval: str
    interval_count: int
    active: bool
    pricing_model: str
    unit_amount_decimal: str | None
    package_size: int | None
    tiers: list[dict[str, Any]] | None
    metric_id: str | None
    tax_rate_ids: list[str]
    created_at: datetime


class InvoiceOut(FromRow):
    object: Literal["invoice"] = "invoice"
    id: str
    number: str | None
    subscription_id: str
    customer_id: str
    status: str
    currency: str
    subtotal: int
    total: int
    amount_paid: int
    period_start: datetime
    period_end: datetime
    issued_at: datetime
    finalized_at: datetime | None
    paid_at: datetime | None


class PaymentOut(FromRow):
    object: Literal["payment"] = "payment"
    id: int
    invoice_id: str
    attempt: int
    amount: int
    currency: str
    status: str
    decline_code: str | None
    failure_message: str | None
    attempted_at: datetime


LINE_KINDS = (
    "``subscription`` (the plan and add-ons, in advance; ``details.price_id`` says "
    "which price), ``usage`` (metered, in "
    "arrears: ``usage_quantity`` holds the units), ``discount``, ``proration`` (a plan "
    "change: the credit for unused time is negative) or ``rounding`` (a three-decimal "
    "currency's amount due down to what Stripe charges)"
)


class InvoiceLineOut(FromRow):
    """One line, the same shape as a line of the upcoming invoice."""

    description: str
    kind: str = Field(description=LINE_KINDS)
    amount: int
    period_start: datetime
    period_end: datetime
    unit_amount: int
    quantity: int = Field(description="seats; a usage line's units are in usage_quantity")
    usage_quantity: str | None = Field(description="a usage line's units, a decimal string")
    tax_rate_ids: list[str]
    details: dict[str, Any] = Field(description="tiers, metric, coupon: how it was reached")

    @classmethod
    def of(cls, row: Any) -> InvoiceLineOut:
        details = dict(row.details or {})
        # Stored in details for the tax arithmetic (billing.invoice_math); a field here.
        ids = details.pop("tax_rate_ids", None)
        if ids is None:
            ids = [row.tax_rate_id] if row.tax_rate_id else []
        return cls(
            description=row.description,
            kind=row.kind,
            amount=row.amount,
            period_start=row.period_start,
            period_end=row.period_end,
            unit_amount=row.unit_amount,
            quantity=row.quantity,
            usage_quantity=row.usage_quantity,
            tax_rate_ids=list(ids),
            details=details,
        )


class TaxOut(BaseModel):
    """One tax rate's block of a qualified invoice: what it applies to and its tax."""

    tax_rate_id: str
    name: str
    percentage: str
    inclusive: bool
    reduced: bool
    taxable: int
    tax: int

    @classmethod
    def of(cls, item: dict[str, Any]) -> TaxOut:
        return cls(**{k: v for k, v in item.items() if k in cls.model_fields})


class InvoiceDetail(InvoiceOut):
    """An invoice with its lines, tax per rate and balance: the upcoming invoice's shape."""

    lines: list[InvoiceLineOut]
    discount_total: int
    tax_total: int
    credit_applied: int = Field(
        description="the customer's balance used: credit spent, or negative, a debit "
        "carried from an earlier invoice"
    )
    carried_forward: int = Field(
        description="below Stripe's minimum charge: not charged, added to the next invoice"
    )
    amount_due: int
    taxes: list[TaxOut]

    @classmethod
    def with_lines(cls, row: Invoice) -> InvoiceDetail:
        return cls(
            **InvoiceOut.of(row).model_dump(),
            lines=[InvoiceLineOut.of(line) for line in row.lines],
            discount_total=row.discount_total,
            tax_total=row.tax_total,
            credit_applied=row.credit_applied,
            carried_forward=row.carried_forward,
            amount_due=row.amount_due,
            taxes=[TaxOut.of(item) for item in row.tax_breakdown or []],
        )


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


class SubscriptionOut(BaseModel):
    object: Literal["subscription"] = "subscription"
    id: str
    customer_id: str
    price_id: str
    quantity: int
    status: str
    billing_cycle_anchor: datetime | None
    current_period_start: datetime | None
    current_period_end: datetime | None
    trial_end: datetime | None
    cancel_at_period_end: bool
    canceled_at: datetime | None
    cancel_reason: str
    workflow_id: str
    metadata: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, row: Subscription) -> SubscriptionOut:
        return cls(
            id=row.id,
            customer_id=row.customer_id,
            price_id=row.price_id,
            quantity=row.quantity,
            status=row.status,
            billing_cycle_anchor=row.billing_cycle_anchor,
            current_period_start=row.current_period_start,
            current_period_end=row.current_period_end,
            trial_end=row.trial_end,
            cancel_at_period_end=row.cancel_at_period_end,
            canceled_at=row.canceled_at,
            cancel_reason=row.cancel_reason,
            workflow_id=row.workflow_id,
            metadata=dict(row.metadata_ or {}),
            created_at=row.created_at,
        )


class OutstandingInvoiceOut(BaseModel):
    invoice_id: str
    number: str | None
    amount_due: int
    currency: str


class LiveStatus(BaseModel):
    """The workflow's answer to the ``status`` query, as it stands now."""

    status: str
    current_period_start: datetime | None
    current_period_end: datetime | None
    next_action: str
    next_action_at: datetime | None
    dunning_step: int | None
    outstanding_invoice: OutstandingInvoiceOut | None
    cancel_at_period_end: bool
    now: datetime = Field(description="billing time (differs from wall time under a test clock)")


class SubscriptionDetail(SubscriptionOut):
    """The stored subscription (every top-level field is the row's) and its live status."""

    live: LiveStatus | None = Field(
        description="the running workflow's status query, which may be a moment ahead of "
        "the stored fields (a cancel it has not recorded yet); null when it cannot be queried"
    )


class CancelCreate(Request):
    reason: str = Field(min_length=1, max_length=1000)
    at_period_end: bool = False

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("give the reason for the cancellation")
        return value.strip()


class CancelAccepted(BaseModel):
    object: Literal["cancel_request"] = "cancel_request"
    subscription_id: str
    reason: str
    at_period_end: bool
    requested_by: str


class PauseCreate(Request):
    reason: str = Field(min_length=1, max_length=1000)

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("give the reason for the pause")
        return value.strip()


class ResumeCreate(Request):
    pass


def check_reason(value: str, what: str) -> str:
    if not value.strip():
        raise ValueError(f"give the reason for {what}")
    return value.strip()


class PlanChangeCreate(Request):
    price_id: str = Field(min_length=1, max_length=40)
    reason: str = Field(default="", max_length=1000)

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        return value.strip()


class PlanChangePreview(BaseModel):
    """What a change to ``price_id`` would do if asked now."""

    object: Literal["plan_change_preview"] = "plan_change_preview"
    price_id: str
    applies: Literal["now", "at_period_end"] = Field(
        description="now: a dearer price, charged the prorated net at once; "
        "at_period_end: a cheaper or equal one, nothing charged now"
    )
    credit: int = Field(description="unused time on the current price")
    charge: int = Field(description="the same time on the new price")
    net: int = Field(description="charge - credit, charged now")
    currency: str


class GraceCreate(Request):
    days: int = Field(ge=1, le=60, description="how much longer the dunning ladder waits")
    reason: str = Field(min_length=1, max_length=1000)

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        return check_reason(value, "the grace period")


class InvoiceActionCreate(Request):
    reason: str = Field(min_length=1, max_length=1000)

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        return check_reason(value, "writing the invoice off")


class RetryAccepted(BaseModel):
    object: Literal["payment_retry"] = "payment_retry"
    invoice_id: str
    subscription_id: str
    retrying: Literal[True] = True


class SubscriptionStatusOut(BaseModel):
    """The workflow's status right after a pause or resume (the ``status`` query's fields)."""

    object: Literal["subscription_status"] = "subscription_status"
    subscription_id: str
    status: str
    current_period_start: datetime | None
    current_period_end: datetime | None
    next_action: str
    next_action_at: datetime | None
    dunning_step: int | None
    outstanding_invoice: OutstandingInvoiceOut | None
    cancel_at_period_end: bool
    now: datetime = Field(description="billing time (differs from wall time under a test clock)")
    price_id: str
    pending_price_id: str | None
    next_period_start: datetime | None = Field(
        description="the period the next renewal invoice bills (in advance)"
    )
    next_period_end: datetime | None

    @classmethod
    def of(cls, view: StatusView) -> SubscriptionStatusOut:
        outstanding = view.outstanding_invoice
        return cls(
            subscription_id=view.subscription_id,
            status=str(view.status),
            current_period_start=view.current_period_start,
            current_period_end=view.current_period_end,
            next_action=view.next_action,
            next_action_at=view.next_action_at,
            dunning_step=view.dunning_step,
            outstanding_invoice=(
                None if outstanding is None else OutstandingInvoiceOut(**vars(outstanding))
            ),
            cancel_at_period_end=view.cancel_at_period_end,
            now=view.now,
            price_id=view.price_id,
            pending_price_id=view.pending_price_id,
            next_period_start=view.next_period_start,
            next_period_end=view.next_period_end,
        )


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """A page of a list, newest first; pass the last id as ``starting_after`` for more."""

    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str]


class WebhookReceived(BaseModel):
    """A Stripe event acknowledged; ``duplicate``: seen before, so nothing changed."""

    received: Literal[True] = True
    id: str
    duplicate: bool
