"""Plain dataclasses that travel between starters, workflows and activities.

These are serialized into Temporal histories, so they are a compatibility surface:
add fields with defaults, never rename or remove one that running workflows carry.
No SQLAlchemy, no I/O: the workflow sandbox imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from billing.calendar import Interval
from billing.dunning import DunningPolicy


class SubscriptionStatus(StrEnum):
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    SUSPENDED = "suspended"
    PAUSED = "paused"
    CANCELED = "canceled"


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    UNCOLLECTIBLE = "uncollectible"
    VOID = "void"


class ChargeOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    DECLINED = "declined"


# --- workflow input, state and messages -------------------------------------------


@dataclass
class TestClock:
    """A sped-up calendar for demos and staging (refused in live mode).

    Billing time = ``virtual_origin + (workflow.now() - real_origin) * speed``.
    """

    speed: float
    real_origin: datetime | None = None
    virtual_origin: datetime | None = None


@dataclass
class DunningState:
    invoice_id: str
    invoice_number: str | None
    amount_due: int
    currency: str
    started_at: datetime
    next_step: int = 0
    attempt: int = 1  # the charge attempt that failed last; the next try is attempt + 1


@dataclass
class SubscriptionState:
    """Everything a run hands to the next one at continue-as-new."""

    status: SubscriptionStatus
    anchor: datetime
    # Global index of the period that starts at ``anchor``; indexes never repeat, even
    # when recovery from suspension restarts the cycle on a new anchor.
    anchor_index: int = 0
    period_index: int = -1  # -1: no period billed yet (trial, or not started)
    period_start: datetime | None = None
    period_end: datetime | None = None
    trial_end: datetime | None = None
    cancel_at_period_end: bool = False
    cancel_reason: str = ""
    cancel_requested_by: str = ""
    dunning: DunningState | None = None
    clock: TestClock | None = None
    renewals: int = 0
    # Set while paused: the status to return to, and when the pause began (billing time).
    paused_at: datetime | None = None
    status_before_pause: SubscriptionStatus | None = None
    # The plan now billed (None: the input's price_id) and a downgrade waiting for
    # the end of the period.
    price_id: str | None = None
    pending_price_id: str | None = None
    # workflow.patched ids this subscription has taken: asked once per subscription,
    # not once per run, so a renewal's history carries no patch marker (see
    # SubscriptionCore._patched).
    patches: list[str] = field(default_factory=list)
    # The IANA zone whose calendar the periods follow (billing.calendar): the anchor's
    # local day, month-end clamping and time of day. Taken from the input's time_zone
    # when the first run starts (patch "local-calendar") and kept for the life of the
    # subscription. "": UTC (subscriptions started before the patch, or in UTC).
    time_zone: str = ""


@dataclass
class SubscriptionInput:
    subscription_id: str
    customer_id: str
    price_id: str
    interval: Interval
    interval_count: int = 1
    start_at: datetime | None = None  # billing start; default: when the workflow starts
    trial_days: int = 0
    dunning: DunningPolicy = field(default_factory=DunningPolicy)
    test_clock_speed: float | None = None
    state: SubscriptionState | None = None  # set by continue-as-new only
    # Charges go to this task queue, whose workers hold Stripe's rate limit
    # (KAKIN_STRIPE_TASK_QUEUE); None: the workflow's own task queue.
    stripe_task_queue: str | None = None
    # The customer's time zone when the subscription starts (a snapshot: a later change
    # of the customer's zone moves no period, past or future). Only the first run reads
    # it, into SubscriptionState.time_zone. "": UTC, as every input before this field.
    time_zone: str = ""


@dataclass
class CancelRequest:
    """Payload of the public ``cancel`` signal (a contract: keep these names)."""

    reason: str = ""
    at_period_end: bool = False
    requested_by: str = "unknown"


@dataclass
class PaymentMethodUpdated:
    """Payload of the ``payment_method_updated`` signal: retry at once if in dunning."""

    payment_method_id: str | None = None
    requested_by: str = "unknown"


@dataclass
class PauseRequest:
    """Payload of the ``pause`` update: no invoices until ``resume``."""

    reason: str = ""
    requested_by: str = "unknown"


@dataclass
class ResumeRequest:
    """Payload of the ``resume`` update: the period's remaining time shifts to now."""

    requested_by: str = "unknown"


@dataclass
class PaymentReceived:
    """Payload of the ``payment_received`` signal: a payment made outside our charge
    (Stripe's ``payment_intent.succeeded`` webhook, e.g. from a hosted payment page)."""

    invoice_id: str
    payment_intent_id: str
    requested_by: str = "stripe-webhook"


@dataclass
class ChangePlanRequest:
    """Payload of the ``change_plan`` update.

    ``at_period_end`` false (an upgrade): the new price applies now, with a prorated
    charge for the rest of the period; true (a downgrade): it applies at the renewal.
    The caller (kakin.services.subscriptions.change_plan) checks the price and decides which.
    """

    price_id: str
    at_period_end: bool
    reason: str = ""
    requested_by: str = "unknown"


@dataclass
class GraceRequest:
    """Payload of the ``grant_grace`` update: the rest of the dunning ladder waits
    ``days`` longer (retries, suspension and cancellation alike)."""

    days: int
    reason: str = ""
    requested_by: str = "unknown"


@dataclass
class WaiveRequest:
    """Payload of the ``waive_invoice`` update: the invoice in dunning is voided and
    the subscription returns to active, without a charge."""

    reason: str = ""
    requested_by: str = "unknown"
    # void: the charge is withdrawn; uncollectible: the debt stands but is written off.
    mark_as: InvoiceStatus = InvoiceStatus.VOID
    # When set, only this invoice may be waived: a caller that checked which invoice is
    # in collection cannot write off another one that took its place meanwhile.
    invoice_id: str | None = None


@dataclass
class OutstandingInvoice:
    invoice_id: str
    number: str | None
    amount_due: int
    currency: str


@dataclass
class StatusView:
    """Answer of the public ``status`` query."""

    subscription_id: str
    status: SubscriptionStatus
    current_period_start: datetime | None
    current_period_end: datetime | None
    next_action: str  # renew | start_billing | retry_payment | suspend | cancel | end | none
    next_action_at: datetime | None
    dunning_step: int | None  # 0 = the first failure, n = after step n of the ladder
    outstanding_invoice: OutstandingInvoice | None
    cancel_at_period_end: bool
    now: datetime  # billing time (differs from wall time under a test clock)
    price_id: str = ""  # the plan billed now
    pending_price_id: str | None = None  # a downgrade that applies at the renewal
    # The period the next renewal invoice bills in advance (the upcoming invoice).
    next_period_start: datetime | None = None
    next_period_end: datetime | None = None


# --- activity requests and results ----------------------------------------------


@dataclass
class CreateInvoiceRequest:
    subscription_id: str
    period_index: int
    period_start: datetime
    period_end: datetime
    issued_at: datetime


@dataclass
class FinalInvoiceRequest:
    """The last invoice of an ended subscription: the usage of its last period."""

    subscription_id: str
    period_index: int  # the index after the last period billed: a key never used before
    ended_at: datetime


@dataclass
class InvoiceRef:
    invoice_id: str
    number: str | None
    status: InvoiceStatus
    amount_due: int
    currency: str


@dataclass
class FinalizeInvoiceRequest:
    invoice_id: str
    finalized_at: datetime


@dataclass
class ChargeRequest:
    invoice_id: str
    attempt: int
    attempted_at: datetime
    test_clock: bool = False


@dataclass
class ChargeResult:
    outcome: ChargeOutcome
    payment_intent_id: str | None = None
    decline_code: str | None = None
    message: str = ""


@dataclass
class IssueAndChargeRequest(CreateInvoiceRequest):
    """A renewal's invoice issued and charged (first attempt) in one activity."""

    test_clock: bool = False


@dataclass
class IssuedCharge:
    """What ``issue_and_charge_invoice`` answers: the invoice issued, and its charge."""

    invoice: InvoiceRef
    charge: ChargeResult


@dataclass
class RenderInvoiceRequest:
    invoice_id: str


@dataclass
class EmailRequest:
    """Send one email once. ``business_key`` is the exactly-once key (unique in the DB)."""

    kind: str  # receipt | payment_failed | payment_reminder | suspended | final_notice | ...
    business_key: str
    subscription_id: str
    invoice_id: str | None = None
    occurred_at: datetime | None = None
    next_retry_at: datetime | None = None  # when dunning tries the card again, if it will
    cancel_at: datetime | None = None  # when dunning will cancel, if it will
    # Written before the email is sent, in the same activity (one Temporal action for
    # both; patch "records-with-email"): the change the email tells the customer about.
    invoice_change: InvoiceChange | None = None
    status_change: SubscriptionChange | None = None


@dataclass
class SubscriptionChange:
    """A status change written to the subscription row and the audit log."""

    subscription_id: str
    status: SubscriptionStatus
    occurred_at: datetime
    actor: str = "workflow"
    reason: str = ""
    period_start: datetime | None = None
    period_end: datetime | None = None
    cancel_at_period_end: bool | None = None
    action: str | None = None  # audit action when the status stays (e.g. a scheduled change)


@dataclass
class InvoiceChange:
    invoice_id: str
    status: InvoiceStatus
    occurred_at: datetime
    actor: str = "workflow"
    reason: str = ""


@dataclass
class ExternalPayment:
    """Check a payment made outside our charge with Stripe, and record it once."""

    invoice_id: str
    payment_intent_id: str
    occurred_at: datetime
    actor: str = "stripe-webhook"


@dataclass
class PlanChange:
    """Switch the subscription's price; with ``prorate_from`` set, invoice the rest of
    the period (``prorate_from`` to ``period_end``) at the new price, less the old."""

    subscription_id: str
    price_id: str
    period_index: int
    occurred_at: datetime
    period_end: datetime | None = None
    prorate_from: datetime | None = None
    period_start: datetime | None = None
    actor: str = "unknown"
    reason: str = ""


@dataclass
class PaymentMethodChange:
    subscription_id: str
    payment_method_id: str
    occurred_at: datetime
    actor: str = "unknown"
