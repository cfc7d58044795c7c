"""Outgoing webhooks, the pure part: which event each change is, and when to try again.

**Event types.** Each ledger entry (``billing.analytics.ledger.EntryKind``) is one event;
``EVENT_TYPES`` maps a kind to the public name integrators subscribe to (Stripe's
names where they exist). Kinds mapped to ``None`` are bookkeeping no integrator asked
for: a payment that succeeded is announced as ``invoice.paid``, a refund comes with the
credit note that made it, a correction restates figures, not a change. Customer events
are not in the ledger (they move no money): ``customer.created`` and
``customer.updated`` come from the outbox the customers service writes to.

**Retries.** Svix's schedule: a first try at once, then 5 s, 5 min, 30 min, 2 h, 5 h,
10 h and 10 h after the try before (eight tries over about 28 hours). A receiver's
``Retry-After`` replaces the next wait, capped at the schedule's longest (10 h), so a
receiver cannot park a delivery forever, nor ask for it to be hammered (at least 1 s).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from billing.analytics.ledger import EntryKind

# The public event types, in the order the docs list them.
CUSTOMER_CREATED: Final = "customer.created"
CUSTOMER_UPDATED: Final = "customer.updated"

EVENT_TYPES: Final[dict[EntryKind, str | None]] = {
    EntryKind.SUBSCRIPTION_STARTED: "subscription.created",
    EntryKind.TRIAL_CONVERTED: "subscription.status_changed",
    EntryKind.PLAN_CHANGED: "subscription.updated",
    EntryKind.QUANTITY_CHANGED: "subscription.updated",
    EntryKind.COUPON_APPLIED: "subscription.updated",
    EntryKind.COUPON_EXPIRED: "subscription.updated",
    EntryKind.PAUSED: "subscription.paused",
    EntryKind.RESUMED: "subscription.resumed",
    EntryKind.CANCELED: "subscription.canceled",
    EntryKind.STATUS_CHANGED: "subscription.status_changed",
    EntryKind.INVOICE_FINALIZED: "invoice.finalized",
    EntryKind.INVOICE_PAID: "invoice.paid",
    EntryKind.PAYMENT_FAILED: "invoice.payment_failed",
    EntryKind.INVOICE_VOIDED: "invoice.voided",
    EntryKind.INVOICE_WRITTEN_OFF: "invoice.uncollectible",
    EntryKind.CREDIT_NOTE_ISSUED: "credit_note.created",
    EntryKind.PAYMENT_SUCCEEDED: None,
    EntryKind.REFUND_CREATED: None,
    EntryKind.CORRECTION: None,
    EntryKind.ALERT_TRIGGERED: "alert.triggered",
    EntryKind.USAGE_CAP_REACHED: "usage.cap_reached",
}

# Kinds whose event carries the notice itself (the alert, its threshold, what it saw),
# not an object of the API.
NOTICE_KINDS: Final = frozenset({EntryKind.ALERT_TRIGGERED, EntryKind.USAGE_CAP_REACHED})

# Every type an endpoint may subscribe to ("*" is all of them, now and later).
KNOWN_TYPES: Final = tuple(
    dict.fromkeys([CUSTOMER_CREATED, CUSTOMER_UPDATED, *(t for t in EVENT_TYPES.values() if t)])
)
ALL_TYPES: Final = "*"


def event_type(kind: str) -> str | None:
    """The public type of a ledger entry's kind; ``None`` if it is not delivered
    (a kind this module does not know yet is not delivered either)."""
    try:
        return EVENT_TYPES.get(EntryKind(kind))
    except ValueError:
        return None


def check_types(types: list[str]) -> list[str]:
    """The event types an endpoint asks for, de-duplicated in order; ``["*"]`` for all.

    Raises ``ValueError`` naming the unknown types and the known ones.
    """
    if not types:
        raise ValueError('enabled_events needs at least one event type, or "*" for all')
    wanted = list(dict.fromkeys(t.strip() for t in types))
    if ALL_TYPES in wanted:
        return [ALL_TYPES]
    unknown = [t for t in wanted if t not in KNOWN_TYPES]
    if unknown:
        raise ValueError(
            f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(KNOWN_TYPES)} or *"
        )
    return wanted


def wants(types: list[str], event: str) -> bool:
    """Whether an endpoint subscribed to ``types`` receives ``event``."""
    return ALL_TYPES in types or event in types


# -- the retry schedule ----------------------------------------------------------------

SCHEDULE: Final = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
TRIES: Final = len(SCHEDULE)
LONGEST_WAIT: Final = max(SCHEDULE)
SHORTEST_RETRY_AFTER: Final = timedelta(seconds=1)


def next_wait(tried: int, retry_after: timedelta | None = None) -> timedelta | None:
    """How long to wait after try number ``tried`` (1-based) failed; ``None``: that was
    the last try. A ``Retry-After`` replaces the schedule's wait, within bounds."""
    if tried >= TRIES:
        return None
    if retry_after is not None:
        return min(max(retry_after, SHORTEST_RETRY_AFTER), LONGEST_WAIT)
    return SCHEDULE[tried]
