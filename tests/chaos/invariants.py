"""After a chaos run: read the database, Stripe and the email endpoint; count violations.

Each promise is checked against the records of the system that keeps it, not only
against our own database: charges are counted at Stripe (PaymentIntents by their
``kakin_invoice_id`` metadata), emails at the email endpoint (by ``kakin_key``),
usage against what the ingestion API acknowledged to its caller.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import pairwise
from typing import Any, ClassVar

import stripe
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from billing.analytics.ledger import MRR_KINDS
from billing.webhooks import event_type, wants
from kakin.services.webhook_events import ledger_event_id, outbox_event_id
from models.tables import (
    AuditLog,
    Customer,
    EmailMessage,
    Invoice,
    InvoiceLine,
    InvoiceNumberSequence,
    LedgerRow,
    Subscription,
    UsageEvent,
    WebhookEvent,
)
from models.webhook_tables import OutboxEvent, WebhookDelivery
from tests.support.webhook_receiver import Received

SHOWN = 5  # examples kept per invariant


@dataclass
class Invariant:
    """One promise: how many things were checked, how many broke it, and examples."""

    name: str
    checked: int = 0
    violations: int = 0
    examples: list[str] = field(default_factory=list)

    def fail(self, example: str) -> None:
        self.violations += 1
        if len(self.examples) < SHOWN:
            self.examples.append(example)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "checked": self.checked,
            "violations": self.violations,
            "examples": self.examples,
        }


@dataclass(frozen=True)
class StripeIntent:
    id: str
    status: str
    amount: int
    invoice_id: str


@dataclass
class UsageLog:
    """What the ingestion API answered the chaos client, per (customer, event id)."""

    # (customer id, event id) -> subscription id, for every event ever sent
    sent: dict[tuple[str, str], str] = field(default_factory=dict)
    # (customer id, event id) -> the strongest answer seen: accepted > duplicate > rejected
    answers: dict[tuple[str, str], str] = field(default_factory=dict)
    batches: int = 0
    resends: int = 0
    errors: int = 0  # tries that raised (the database was down) and were retried

    _RANK: ClassVar[dict[str, int]] = {"rejected": 0, "duplicate": 1, "accepted": 2}

    def record(self, key: tuple[str, str], status: str) -> None:
        old = self.answers.get(key)
        if old is None or self._RANK[status] > self._RANK[old]:
            self.answers[key] = status

    @property
    def acknowledged(self) -> set[tuple[str, str]]:
        """Events the caller was told are stored (accepted now, or earlier: duplicate)."""
        return {key for key, status in self.answers.items() if status != "rejected"}


@dataclass(frozen=True)
class Planned:
    """A subscription the run started, and what it was meant to go through."""

    subscription_id: str
    customer_id: str
    declined: bool  # its card is declined: dunning to cancellation, never paid
    metered: bool  # it holds a metered item and receives usage events


@dataclass
class Report:
    invariants: list[Invariant]
    figures: dict[str, Any]

    @property
    def violations(self) -> int:
        return sum(item.violations for item in self.invariants)

    def as_dict(self) -> dict[str, Any]:
        return {
            "violations": self.violations,
            "invariants": [item.as_dict() for item in self.invariants],
            "figures": self.figures,
        }


def _number(text: str) -> int:
    match = re.fullmatch(r"INV-(\d+)", text)
    if match is None:
        raise ValueError(f"unexpected invoice number {text!r}")
    return int(match.group(1))


def stripe_intents(api_base: str, api_key: str = "sk_test_kakin") -> list[StripeIntent]:
    """Every PaymentIntent the Stripe at ``api_base`` (localstripe) holds, with the kakin
    invoice its metadata names: what check_charges counts."""
    client = stripe.StripeClient(api_key, base_addresses={"api": api_base})
    found = []
    for intent in client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter():
        data = intent.to_dict()
        found.append(
            StripeIntent(
                id=intent.id,
                status=str(intent.status),
                amount=int(data.get("amount") or 0),
                invoice_id=str((data.get("metadata") or {}).get("kakin_invoice_id") or ""),
            )
        )
    return found


def check_charges(invoices: Sequence[Invoice], intents: Sequence[StripeIntent]) -> Invariant:
    """Succeeded PaymentIntents per invoice at Stripe: 1 for a paid invoice, 0 otherwise."""
    result = Invariant("charges per invoice (at Stripe): 1 if paid, else 0")
    succeeded: dict[str, list[StripeIntent]] = defaultdict(list)
    for intent in intents:
        if intent.status == "succeeded":
            succeeded[intent.invoice_id].append(intent)
    known = {invoice.id for invoice in invoices}
    for invoice in invoices:
        result.checked += 1
        charges = succeeded.get(invoice.id, [])
        want = 1 if invoice.status == "paid" else 0
        if invoice.status == "paid" and invoice.amount_paid == 0 and not charges:
            continue  # nothing was due (fully credited): no charge is right
        if len(charges) != want:
            ids = ", ".join(i.id for i in charges) or "none"
            result.fail(
                f"{invoice.id} ({invoice.number}, {invoice.status}): "
                f"{len(charges)} succeeded PaymentIntents [{ids}]"
            )
        elif charges and charges[0].amount != invoice.amount_paid:
            result.fail(
                f"{invoice.id} ({invoice.number}): Stripe charged {charges[0].amount}, "
                f"invoice says {invoice.amount_paid} paid"
            )
    for invoice_id, charges in succeeded.items():
        if invoice_id not in known:
            result.checked += 1
            result.fail(
                f"succeeded PaymentIntents {[c.id for c in charges]} for unknown invoice "
                f"{invoice_id!r}"
            )
    return result


def check_numbers(invoices: Sequence[Invoice], next_value: int | None) -> Invariant:
    """Invoice numbers: unique, gapless from INV-000001, none taken and lost."""
    result = Invariant("invoice numbers gapless and unique")
    numbers = [_number(i.number) for i in invoices if i.number is not None]
    result.checked = len(numbers)
    for value, count in Counter(numbers).items():
        if count > 1:
            result.fail(f"INV-{value:06d} is on {count} invoices")
    have = set(numbers)
    top = max(have, default=0)
    for value in range(1, top + 1):
        if value not in have:
            result.fail(f"INV-{value:06d} is missing (a gap)")
    if next_value is not None and next_value - 1 != top:
        result.fail(f"the sequence handed out up to {next_value - 1}, invoices go up to {top}")
    for invoice in invoices:
        if invoice.status != "draft" and invoice.number is None:
            result.fail(f"{invoice.id} is {invoice.status} without a number")
    return result


def check_emails(
    emails: Sequence[EmailMessage],
    delivered: Sequence[tuple[str, float]],
    invoices: Sequence[Invoice],
    explain: Callable[[float], str] = str,
) -> tuple[Invariant, Invariant]:
    """One delivery per email business key; one receipt per paid invoice.

    ``delivered`` is (key, when) per accepted send; ``explain`` turns a moment into
    words (run time and the faults around it) for the examples.
    """
    per_key = Invariant("emails delivered once per business key")
    counts = Counter(key for key, _ in delivered)
    moments: dict[str, list[float]] = defaultdict(list)
    for key, when in delivered:
        moments[key].append(when)
    rows = {email.business_key: email for email in emails}
    for key in sorted(set(rows) | set(counts)):
        per_key.checked += 1
        row, times = rows.get(key), counts.get(key, 0)
        if row is None:
            per_key.fail(f"{key}: delivered {times}x but no email row")
        elif times != 1:
            at = "; ".join(explain(when) for when in moments.get(key, []))
            per_key.fail(f"{key}: delivered {times}x (row status {row.status}) at {at}")
        elif row.status != "sent":
            per_key.fail(f"{key}: delivered but the row says {row.status}")
    receipts = Invariant("paid invoices with exactly one receipt email")
    for invoice in invoices:
        if invoice.status != "paid":
            continue
        receipts.checked += 1
        key = f"email:receipt:{invoice.id}"
        if counts.get(key, 0) != 1:
            times = counts.get(key, 0)
            receipts.fail(f"{invoice.id} ({invoice.number}): receipt delivered {times}x")
    return per_key, receipts


def check_usage(
    log: UsageLog,
    events: Sequence[UsageEvent],
    usage_lines: Mapping[str, Sequence[InvoiceLine]],
    ended: set[str],
) -> tuple[Invariant, Invariant]:
    """Stored once per acknowledged event; each stored event billed once (when billed)."""
    stored = Invariant("usage events: acknowledged = stored once (none lost)")
    rows: Counter[tuple[str, str]] = Counter((e.customer_id, e.event_id) for e in events)
    acknowledged = log.acknowledged  # a property that builds a set: once, not per row
    for key in sorted(acknowledged):
        stored.checked += 1
        if rows.get(key, 0) != 1:
            stored.fail(f"event {key[1]} of {key[0]} ({log.answers[key]}): {rows.get(key, 0)} rows")
    for key, count in rows.items():
        if key not in log.sent:
            stored.checked += 1
            stored.fail(f"event {key[1]} of {key[0]}: stored {count}x but never sent")
        elif key not in acknowledged:
            # Stored while its answer was lost and no retry came back: not lost, but say so.
            stored.checked += 1
            stored.fail(f"event {key[1]} of {key[0]}: stored, answered {log.answers.get(key)}")

    billed = Invariant("usage events billed once (not lost, not counted twice)")
    by_subscription: dict[str, list[UsageEvent]] = defaultdict(list)
    for event in events:
        by_subscription[event.subscription_id].append(event)
    for subscription_id in sorted(set(by_subscription) | set(usage_lines)):
        lines = sorted(usage_lines.get(subscription_id, []), key=lambda x: x.period_start)
        for a, b in pairwise(lines):
            if b.period_start < a.period_end:
                billed.fail(
                    f"{subscription_id}: usage periods overlap on invoices {a.invoice_id} "
                    f"and {b.invoice_id}"
                )
        for line in lines:
            inside = [
                e
                for e in by_subscription.get(subscription_id, [])
                if line.period_start <= e.timestamp < line.period_end
            ]
            if Decimal(line.usage_quantity or "0") != len(inside):
                billed.fail(
                    f"{subscription_id}: invoice {line.invoice_id} bills "
                    f"{line.usage_quantity} for {line.period_start:%m-%d %H:%M}..."
                    f"{line.period_end:%m-%d %H:%M}, {len(inside)} events stored"
                )
        for event in by_subscription.get(subscription_id, []):
            billed.checked += 1
            at = event.timestamp
            times = sum(1 for line in lines if line.period_start <= at < line.period_end)
            if times > 1 or (times == 0 and subscription_id in ended):
                billed.fail(
                    f"event {event.event_id} of {subscription_id} at {at:%m-%d %H:%M}: "
                    f"on {times} invoices"
                )
    return stored, billed


@dataclass(frozen=True)
class WebhookTry:
    """One delivery try of the relay (tests/support/webhook_relay.py) to the API."""

    event_id: str
    type: str
    status: int
    duplicate: bool | None  # the answer's "duplicate", for a 2xx


def check_webhooks(
    events: Sequence[dict[str, Any]], tries: Sequence[WebhookTry], rows: Sequence[WebhookEvent]
) -> tuple[Invariant, Invariant]:
    """Every event the emulator sent got a 2xx (after Stripe-like retries); exactly one
    of its deliveries, however many copies and in whatever order, did the work."""
    answered = Invariant("webhook events answered 2xx (duplicated, reordered, retried)")
    once = Invariant("webhook events processed once (one delivery did the work)")
    by_event: dict[str, list[WebhookTry]] = defaultdict(list)
    for attempt in tries:
        by_event[attempt.event_id].append(attempt)
    processed = {row.id for row in rows if row.processed_at is not None}
    for event_id in sorted({e["id"] for e in events}):
        answered.checked += 1
        once.checked += 1
        mine = by_event.get(event_id, [])
        ok = [t for t in mine if 200 <= t.status < 300]
        if not ok:
            answered.fail(f"{event_id}: {len(mine)} tries, statuses {[t.status for t in mine]}")
            continue
        workers = [t for t in ok if t.duplicate is False]
        # A delivery can do the work and lose its answer (the relay gave up waiting, as
        # Stripe does after its timeout): then a later copy rightly says "duplicate".
        # The work itself being done once is what the charge, email and card invariants
        # check; here, no two deliveries may claim it and the row must say it was done.
        lost = [t for t in mine if t.status == 0]
        if len(workers) > 1 or event_id not in processed or not (workers or lost):
            once.fail(
                f"{event_id} ({mine[0].type}): {len(workers)} of {len(ok)} 2xx answers did the "
                f"work, {len(lost)} answers lost; row processed: {event_id in processed}; "
                f"statuses {[t.status for t in mine]}"
            )
    return answered, once


@dataclass(frozen=True)
class OutgoingLog:
    """kakin's outgoing webhooks in the run: the endpoint's event types and secret, what
    its receiver got (tests/support/webhook_receiver.py) and when the worker was killed
    (``time.monotonic()``, as the receiver's times)."""

    types: Sequence[str]
    secret: str
    received: Sequence[Received]
    kills: Sequence[float]


def check_outgoing(
    log: OutgoingLog,
    ledger: Sequence[LedgerRow],
    outbox: Sequence[OutboxEvent],
    deliveries: Sequence[WebhookDelivery],
) -> tuple[Invariant, Invariant]:
    """Every ledger (and outbox) event the endpoint wants was delivered and accepted;
    one delivery per event; nothing accepted that no change made; the same webhook-id
    accepted twice only across a worker kill (a try cut after the receiver's 2xx is
    retried: at least once, which the receiver de-duplicates on webhook-id)."""
    every = Invariant("outgoing webhooks: every ledger event for the enabled endpoint delivered")
    once = Invariant("outgoing webhooks: one delivery per event, none invented, a second "
                     "acceptance only across a worker kill")  # fmt: skip
    expected = {
        ledger_event_id(row.id): kind
        for row in ledger
        if (kind := event_type(row.kind)) is not None and wants(list(log.types), kind)
    }
    expected |= {outbox_event_id(e.id): e.type for e in outbox if wants(list(log.types), e.type)}
    made = Counter(d.event_id for d in deliveries)
    status = {d.event_id: d.status for d in deliveries}
    accepted: dict[str, list[float]] = defaultdict(list)
    for request in log.received:
        if not 200 <= request.answered < 300 or request.late:
            continue
        event_id = request.headers.get("webhook-id", "")
        # As the receiver checked it when it arrived (the run is longer than the five
        # minutes a timestamp is good for, so verifying now would refuse the first ones).
        problem = request.signature_problem(log.secret)
        if problem is not None:
            once.fail(f"{event_id}: accepted with a bad signature ({problem})")
        accepted[event_id].append(request.at)
    for event_id, kind in sorted(expected.items()):
        every.checked += 1
        if status.get(event_id) != "delivered" or not accepted.get(event_id):
            every.fail(f"{event_id} ({kind}): delivery {status.get(event_id, 'never made')}, "
                       f"accepted {len(accepted.get(event_id, []))} times")  # fmt: skip
    for event_id, count in sorted(made.items()):
        once.checked += 1
        if count > 1:
            once.fail(f"{event_id}: {count} deliveries to one endpoint")
        if event_id not in expected:
            once.fail(f"{event_id}: a delivery no wanted change made")
    for event_id, times in sorted(accepted.items()):
        for first, again in pairwise(sorted(times)):
            if not any(first <= kill <= again for kill in log.kills):
                once.fail(
                    f"{event_id}: accepted twice {again - first:.1f} s apart, no kill between"
                )
    return every, once


def check_cards(
    customers: Sequence[Customer],
    stripe_defaults: Mapping[str, str | None],
    changes: Sequence[AuditLog],
) -> Invariant:
    """Customers whose card changed: kakin's card is Stripe's current default, and no
    card was applied twice (a stale card put back by a late event would be)."""
    result = Invariant("card on file = Stripe's default; each card change applied once")
    applied: dict[str, list[str]] = defaultdict(list)
    for row in changes:
        applied[row.entity_id].append(str((row.details or {}).get("payment_method_id")))
    for customer in customers:
        if customer.id not in stripe_defaults:
            continue
        result.checked += 1
        default = stripe_defaults[customer.id]
        cards = applied.get(customer.id, [])
        if default is not None and customer.stripe_payment_method_id != default:
            result.fail(
                f"{customer.id}: kakin charges {customer.stripe_payment_method_id}, Stripe's "
                f"default is {default} (applied {cards})"
            )
        elif len(cards) != len(set(cards)):
            result.fail(f"{customer.id}: a card applied twice: {cards}")
    return result


@dataclass
class WorkflowView:
    """What Temporal says of a subscription at the end: running (status) or closed."""

    subscription_id: str
    execution: str  # RUNNING, COMPLETED, FAILED, ...
    status: str | None  # the status query (running) or the result (completed)


def check_states(
    views: Sequence[WorkflowView], db_status: Mapping[str, str]
) -> tuple[Invariant, Invariant]:
    agree = Invariant("subscription state: database = workflow")
    healthy = Invariant("workflows ended as scripted (none stuck or failed)")
    for view in views:
        agree.checked += 1
        healthy.checked += 1
        db = db_status.get(view.subscription_id)
        if view.status != db:
            agree.fail(
                f"{view.subscription_id}: database {db}, workflow {view.status} ({view.execution})"
            )
        if view.execution != "COMPLETED":
            healthy.fail(f"{view.subscription_id}: {view.execution}, status {view.status}")
    return agree, healthy


def check_script(
    planned: Sequence[Planned],
    paid_periods: Mapping[str, int],
    invoices: Sequence[Invoice],
    renewals: int,
) -> Invariant:
    """Good subscriptions paid every period asked for; declined ones ended unpaid."""
    result = Invariant(f"subscriptions through their script (>= {renewals} renewals paid)")
    by_subscription: dict[str, list[Invoice]] = defaultdict(list)
    for invoice in invoices:
        by_subscription[invoice.subscription_id].append(invoice)
    for plan in planned:
        result.checked += 1
        mine = by_subscription.get(plan.subscription_id, [])
        if plan.declined:
            statuses = sorted(i.status for i in mine)
            if not mine or any(s not in ("uncollectible", "void", "open") for s in statuses):
                result.fail(f"{plan.subscription_id} (declined card): invoices {statuses}")
        elif paid_periods.get(plan.subscription_id, 0) < renewals + 1:
            result.fail(
                f"{plan.subscription_id}: {paid_periods.get(plan.subscription_id, 0)} paid "
                f"periods, wanted {renewals + 1}"
            )
    return result


def check_ledger(
    invoices: Sequence[Invoice], entries: Sequence[LedgerRow]
) -> tuple[Invariant, Invariant]:
    """The ledger agrees with the invoices table (each finalized invoice invoiced once,
    at its total; each paid one collected once, at what it took), no change is in it
    twice, and each subscription's MRR entries chain (before = the last one's after)."""
    books = Invariant("ledger = invoices (finalized and paid, once each, same amounts)")
    once = Invariant("ledger: no event key twice; MRR entries chain per subscription")
    by_kind: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for entry in entries:
        if entry.invoice_id:
            by_kind[entry.kind][entry.invoice_id].append(entry.amount)
    for invoice in invoices:
        expected = {
            "invoice.finalized": [invoice.total] if invoice.finalized_at is not None else [],
            "invoice.paid": [invoice.amount_paid] if invoice.status == "paid" else [],
        }
        for kind, amounts in expected.items():
            books.checked += 1
            found = by_kind[kind].get(invoice.id, [])
            if found != amounts:
                books.fail(f"{invoice.id} ({invoice.status}): {kind} {found}, wanted {amounts}")
    known = {invoice.id for invoice in invoices}
    for kind in ("invoice.finalized", "invoice.paid"):
        for invoice_id in by_kind[kind].keys() - known:
            books.fail(f"{kind} for {invoice_id}, which is not in the invoices table")
    for key, count in Counter(entry.event_key for entry in entries).items():
        once.checked += 1
        if count > 1:
            once.fail(f"{key}: {count} entries")
    last: dict[str, int] = {}
    for entry in sorted(entries, key=lambda e: e.id):
        if entry.kind not in MRR_KINDS:
            continue
        once.checked += 1
        before = last.get(entry.subscription_id, 0)
        if entry.mrr_before != before:
            once.fail(f"{entry.event_key}: MRR before {entry.mrr_before}, the last after {before}")
        last[entry.subscription_id] = entry.mrr_after
    return books, once


def check(
    sessions: sessionmaker[Session],
    *,
    intents: Sequence[StripeIntent],
    delivered: Sequence[tuple[str, float]],
    usage: UsageLog,
    views: Sequence[WorkflowView],
    planned: Sequence[Planned],
    renewals: int,
    explain: Callable[[float], str] = str,
    webhook_events: Sequence[dict[str, Any]] = (),
    webhook_tries: Sequence[WebhookTry] = (),
    stripe_defaults: Mapping[str, str | None] | None = None,
    outgoing: OutgoingLog | None = None,
) -> Report:
    """Every invariant, from the database after the run and the records passed in.

    ``stripe_defaults``: Stripe's default card of each customer whose card changed;
    ``outgoing``: what kakin's outgoing webhooks' receiver got.
    """
    with sessions() as session:
        hooks = list(session.scalars(select(WebhookEvent)))
        customers = list(session.scalars(select(Customer)))
        changes = list(
            session.scalars(
                select(AuditLog)
                .where(AuditLog.action == "payment_method_updated")
                .order_by(AuditLog.id)
            )
        )
        invoices = list(session.scalars(select(Invoice)))
        emails = list(session.scalars(select(EmailMessage)))
        events = list(session.scalars(select(UsageEvent)))
        lines = list(session.scalars(select(InvoiceLine).where(InvoiceLine.kind == "usage")))
        sequence = session.get(InvoiceNumberSequence, "invoice")
        subscriptions = {s.id: s for s in session.scalars(select(Subscription))}
        ledger = list(session.scalars(select(LedgerRow)))
        outbox = list(session.scalars(select(OutboxEvent)))
        deliveries = list(session.scalars(select(WebhookDelivery)))
    owner = {invoice.id: invoice.subscription_id for invoice in invoices}
    usage_lines: dict[str, list[InvoiceLine]] = defaultdict(list)
    for line in lines:
        usage_lines[owner[line.invoice_id]].append(line)
    # Period invoices bill the plan; a final invoice bills only the last period's usage.
    with sessions() as session:
        plan_lines = select(InvoiceLine.invoice_id).where(InvoiceLine.kind == "subscription")
        plan_billed = set(session.scalars(plan_lines))
    paid_periods: Counter[str] = Counter(
        i.subscription_id for i in invoices if i.status == "paid" and i.id in plan_billed
    )
    declined = {plan.subscription_id for plan in planned if plan.declined}
    ended = {
        sub_id
        for sub_id, sub in subscriptions.items()
        if sub.status == "canceled" and sub_id not in declined
    }
    charges = check_charges(invoices, intents)
    numbers = check_numbers(invoices, sequence.next_value if sequence else None)
    per_key, receipts = check_emails(emails, delivered, invoices, explain)
    stored, billed = check_usage(usage, events, usage_lines, ended)
    agree, healthy = check_states(views, {k: v.status for k, v in subscriptions.items()})
    script = check_script(planned, paid_periods, invoices, renewals)
    answered, once = check_webhooks(webhook_events, webhook_tries, hooks)
    cards = check_cards(customers, stripe_defaults or {}, changes)
    books, ledger_once = check_ledger(invoices, ledger)
    outgoing_checks = list(check_outgoing(outgoing, ledger, outbox, deliveries)) if outgoing else []
    statuses = Counter(i.status for i in invoices)
    figures = {
        "subscriptions": len(planned),
        "invoices": len(invoices),
        "invoices_by_status": dict(sorted(statuses.items())),
        "paid_period_invoices": sum(paid_periods.values()),
        "payment_intents_at_stripe": len(intents),
        "succeeded_payment_intents": sum(1 for i in intents if i.status == "succeeded"),
        "emails_delivered": len(delivered),
        "email_rows": len(emails),
        "usage_events_sent": len(usage.sent),
        "usage_events_acknowledged": len(usage.acknowledged),
        "usage_events_rejected": sum(1 for s in usage.answers.values() if s == "rejected"),
        "usage_events_stored": len(events),
        "usage_lines": len(lines),
        "webhook_events": len(webhook_events),
        "webhook_deliveries": len(webhook_tries),
        "webhook_deliveries_not_2xx": sum(1 for t in webhook_tries if not 200 <= t.status < 300),
        "webhook_outcomes": dict(
            Counter(_outcome_kind(row.outcome) for row in hooks if row.outcome).most_common()
        ),
        "card_changes_applied": len(changes),
        "ledger_entries": len(ledger),
        "outgoing_webhook_deliveries": len(deliveries),
        "outgoing_webhook_requests": len(outgoing.received) if outgoing else 0,
        "outgoing_webhook_not_2xx": sum(
            1 for r in (outgoing.received if outgoing else ()) if not 200 <= r.answered < 300
        ),
    }
    return Report(
        invariants=[
            charges,
            numbers,
            per_key,
            receipts,
            stored,
            billed,
            agree,
            healthy,
            script,
            answered,
            once,
            cards,
            books,
            ledger_once,
            *outgoing_checks,
        ],
        figures=figures,
    )


def _outcome_kind(outcome: str) -> str:
    """An outcome without its ids: "invoice already paid", "card applied"..."""
    return " ".join(w for w in outcome.split() if not re.match(r"^(in|pm|cus|sub|evt)_", w))
