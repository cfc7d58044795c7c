"""The billing ledger entry: one append-only row per change that moves money or MRR.

The ledger is the single source of every figure (and, later, of outgoing webhooks),
so the field names are a public contract: add fields with defaults, never rename.

Two moments are kept, both in the billing clock that dates the change: ``occurred_at``
is when the change takes effect, ``recorded_at`` when the row was written.
``recorded_at`` is what keeps past figures fixed: an entry written after the period
it is dated in had closed is booked when it was written (``billing.analytics.booking``).
A back-fill writes ``recorded_at = occurred_at``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType

from billing.money import normalize_currency


class EntryKind(StrEnum):
    """What happened. The values are the event names outgoing webhooks will carry."""

    SUBSCRIPTION_STARTED = "subscription.started"
    TRIAL_CONVERTED = "trial.converted"
    PLAN_CHANGED = "subscription.plan_changed"
    QUANTITY_CHANGED = "subscription.quantity_changed"
    COUPON_APPLIED = "coupon.applied"
    COUPON_EXPIRED = "coupon.expired"
    PAUSED = "subscription.paused"
    RESUMED = "subscription.resumed"
    CANCELED = "subscription.canceled"
    STATUS_CHANGED = "subscription.status_changed"
    INVOICE_FINALIZED = "invoice.finalized"
    INVOICE_PAID = "invoice.paid"
    INVOICE_VOIDED = "invoice.voided"
    INVOICE_WRITTEN_OFF = "invoice.written_off"
    CREDIT_NOTE_ISSUED = "credit_note.issued"
    REFUND_CREATED = "refund.created"
    PAYMENT_FAILED = "payment.failed"
    PAYMENT_SUCCEEDED = "payment.succeeded"
    CORRECTION = "correction"
    # Notices, not changes: no money or MRR moves (amount is what was observed), so no
    # figure counts them; they are in the ledger for the timeline and outgoing webhooks.
    ALERT_TRIGGERED = "alert.triggered"
    USAGE_CAP_REACHED = "usage.cap_reached"


# The kinds that carry a subscription's MRR (mrr_after is its MRR from then on). Money
# kinds (invoices, payments, credit notes, refunds) never move MRR: a failed renewal
# moves MRR only through the status change it causes (suspended: 0), never by itself.
MRR_KINDS = frozenset(
    {
        EntryKind.SUBSCRIPTION_STARTED,
        EntryKind.TRIAL_CONVERTED,
        EntryKind.PLAN_CHANGED,
        EntryKind.QUANTITY_CHANGED,
        EntryKind.COUPON_APPLIED,
        EntryKind.COUPON_EXPIRED,
        EntryKind.PAUSED,
        EntryKind.RESUMED,
        EntryKind.CANCELED,
        EntryKind.STATUS_CHANGED,
    }
)

# Payment attempts are numbered for these kinds (1 = the first try of an invoice).
ATTEMPT_KINDS = frozenset(
    {EntryKind.PAYMENT_FAILED, EntryKind.PAYMENT_SUCCEEDED, EntryKind.INVOICE_PAID}
)


def _utc(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return moment.astimezone(UTC)


def _whole(value: object, name: str, *, minimum: int | None = 0) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


@dataclass(frozen=True, kw_only=True)
class LedgerEntry:
    """One ledger row. Amounts are integers in the currency's minor unit.

    Attributes:
        id: Ascending in recording order (the row's sequence number).
        kind: What happened.
        occurred_at: When the change takes effect (aware, stored in UTC).
        recorded_at: When the row was written, in the same clock as ``occurred_at``.
        customer_id: The customer.
        subscription_id: The subscription, ``""`` for a change outside one.
        invoice_id: The invoice, ``""`` if none.
        currency: ISO 4217, upper case as kakin stores it (``billing.money``).
        amount: The money the change moves (invoiced, paid, refunded...), 0 if none.
        mrr_before: The subscription's MRR just before (minor units per month).
        mrr_after: The subscription's MRR from then on.
        status_before: The subscription's (or invoice's) status before.
        status_after: Its status after.
        actor: Who made the change (``"system"``, ``"support:alice"``, an API key id).
        attempt: The payment attempt number for payment.* and invoice.paid; 0 otherwise.
        decline_code: The card network's decline code of a failed payment.
        dunning_step: The dunning ladder step the change happened at (``""`` outside).
        due_at: When a finalized invoice is due (``None``: due when finalized).
        details: Anything else, as strings (``usage_amount`` on invoice.finalized:
            the metered part of ``amount``).
        corrects: For a correction, the id of the entry it replaces; 0 otherwise.
    """

    id: int
    kind: EntryKind
    occurred_at: datetime
    recorded_at: datetime
    customer_id: str
    currency: str
    subscription_id: str = ""
    invoice_id: str = ""
    amount: int = 0
    mrr_before: int = 0
    mrr_after: int = 0
    status_before: str = ""
    status_after: str = ""
    actor: str = "system"
    attempt: int = 0
    decline_code: str = ""
    dunning_step: str = ""
    due_at: datetime | None = None
    details: Mapping[str, str] = field(default_factory=dict, hash=False)
    corrects: int = 0

    def __post_init__(self) -> None:
        _whole(self.id, "id", minimum=1)
        kind = EntryKind(self.kind)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "occurred_at", _utc(self.occurred_at, "occurred_at"))
        object.__setattr__(self, "recorded_at", _utc(self.recorded_at, "recorded_at"))
        if self.due_at is not None:
            object.__setattr__(self, "due_at", _utc(self.due_at, "due_at"))
        if not self.customer_id:
            raise ValueError("a ledger entry needs a customer_id")
        object.__setattr__(self, "currency", normalize_currency(self.currency))
        _whole(self.amount, "amount", minimum=None)
        _whole(self.mrr_before, "mrr_before")
        _whole(self.mrr_after, "mrr_after")
        _whole(self.attempt, "attempt")
        _whole(self.corrects, "corrects")
        if (kind is EntryKind.CORRECTION) != (self.corrects > 0):
            raise ValueError("corrects is set on correction entries, and only on them")
        if kind in MRR_KINDS and not self.subscription_id:
            raise ValueError(f"a {kind} entry needs a subscription_id")
        moves_no_mrr = kind not in MRR_KINDS and kind is not EntryKind.CORRECTION
        if moves_no_mrr and self.mrr_before != self.mrr_after:
            raise ValueError(f"a {kind} entry does not move MRR")
        if self.attempt and kind not in ATTEMPT_KINDS and kind is not EntryKind.CORRECTION:
            raise ValueError(f"attempt is for payment entries and invoice.paid, not {kind}")
        details = dict(self.details)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in details.items()):
            raise ValueError("details maps strings to strings")
        object.__setattr__(self, "details", MappingProxyType(details))
