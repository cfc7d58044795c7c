"""Outgoing webhook deliveries: derived from the ledger (and the customer outbox), tried
on a schedule, every try recorded, any delivery resent under the same webhook-id.

**Why a dispatcher workflow plus one workflow per delivery.** The ledger is written in
the transaction of each change, by many writers (activities, services, Stripe's
webhooks); none of them can start a workflow in that transaction. So one long-running
``WebhookDispatchWorkflow`` reads the ledger after each endpoint's cursor (every few
seconds, or when poked), turns each entry an endpoint wants into a delivery row
(unique per endpoint and event: a look retried after a crash adds nothing) and starts
a ``WebhookDeliveryWorkflow`` per delivery, with an id made of the delivery's (so a
start retried finds the first). Each delivery then has its own durable timers for the
Svix schedule: a receiver down for hours holds back only its own deliveries, a worker
killed mid-try retries that try, and the time-skipping server runs the schedule in
tests. Per-endpoint workflows would serialise each endpoint's deliveries behind one
failing event; per-delivery ones keep them independent (receivers order by the
event's timestamp, as Standard Webhooks asks).

**What a delivery carries.** The body (``{type, timestamp, data}``, ``data`` the object
as the HTTP API shows it, from ``kakin.views``) is built once, when the delivery is
made: every try and every resend sends the same bytes under the same webhook-id (the
event's id), so a receiver can de-duplicate.

**Statuses.** ``pending`` while tries are left; ``delivered`` on a 2xx; ``failed`` when
the last try failed or the receiver answered 410 (which also disables the endpoint);
``skipped`` when the endpoint was disabled or deleted before it was delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from billing.webhooks import NOTICE_KINDS, event_type, wants
from kakin.contracts import WEBHOOK_DELIVERY_WORKFLOW, webhook_delivery_workflow_id
from kakin.platform.codec import Keyring
from kakin.services.errors import RefusedError
from kakin.services.webhook_endpoints import disable_gone, signing_secrets
from kakin.services.webhook_events import ledger_event_id, outbox_event_id
from models.repositories import audit as audit_sql
from models.repositories import webhook_endpoints as endpoint_sql
from models.repositories.common import find, new_id
from models.tables import CreditNote, Customer, Invoice, LedgerRow, Subscription, utcnow
from models.webhook_payloads import DeliveryInput, Dispatched, TryInput, TryOutcome
from models.webhook_tables import WebhookDelivery, WebhookEndpoint, WebhookTry

T = TypeVar("T")
# The object an event carries, shaped as the HTTP API shows it (kakin.views.webhook_events
# is the one the worker is given: views are a layer above this one).
EventShaper = Callable[[Any], dict[str, Any]]
BATCH = 200
_MODELS: dict[str, type[Any]] = {
    "customer": Customer,
    "subscription": Subscription,
    "invoice": Invoice,
    "credit_note": CreditNote,
}


def object_of(row: LedgerRow) -> tuple[str, str]:
    """The object a ledger entry's event carries: its credit note, invoice or subscription."""
    if row.kind.startswith("credit_note."):
        return "credit_note", row.event_key.split(":", 1)[1]
    if row.invoice_id:
        return "invoice", row.invoice_id
    return "subscription", row.subscription_id


def notice_data(row: LedgerRow) -> dict[str, Any] | None:
    """An alert's or a cap's event data: the notice as the ledger keeps it (which alert,
    the threshold crossed, what it saw, the period), with whose it is; None for an
    entry whose event carries an API object (``object_of``)."""
    if row.kind not in NOTICE_KINDS:
        return None
    return {
        "object": "alert_notice", "type": row.kind, "customer_id": row.customer_id,
        "subscription_id": row.subscription_id, "currency": row.currency,
        "amount": row.amount, **(row.details or {}),
    }  # fmt: skip


def body_of(type_: str, occurred_at: datetime, data: dict[str, Any] | None) -> str:
    """The JSON body: ``{type, timestamp, data}`` (Standard Webhooks), compact, UTF-8."""
    document = {"type": type_, "timestamp": occurred_at.isoformat(), "data": data or {}}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=False)


# -- the dispatcher's look at the ledger -----------------------------------------------


def dispatch(
    sessions: sessionmaker[Session], shape: EventShaper, *, batch: int = BATCH
) -> Dispatched:
    """Make the deliveries of every entry after each enabled endpoint's cursors, move
    the cursors, and answer the deliveries whose workflow is not started yet."""
    with sessions() as session:
        bodies: dict[str, str] = {}  # one body per event, whichever endpoints want it

        def deliver(endpoint: WebhookEndpoint, event_id: str, type_: str,
                    at: datetime, object_type: str, object_id: str,
                    data: dict[str, Any] | None = None) -> None:  # fmt: skip
            if not wants(endpoint.enabled_events, type_):
                return
            if endpoint_sql.delivery_of(session, endpoint.id, event_id) is not None:
                return
            if event_id not in bodies:
                if data is None:
                    row = find(session, _MODELS[object_type], object_id)
                    data = shape(row) if row is not None else None
                bodies[event_id] = body_of(type_, at, data)
            session.add(
                WebhookDelivery(
                    id=new_id("wd"), endpoint_id=endpoint.id, event_id=event_id,
                    event_type=type_, body=bodies[event_id], status="pending",
                    dispatched=False, resends=0, tries=0,
                )
            )  # fmt: skip

        more = False
        for endpoint in endpoint_sql.endpoints(session, enabled_only=True):
            entries = endpoint_sql.ledger_after(session, endpoint.ledger_cursor, batch)
            for entry in entries:
                type_ = event_type(entry.kind)
                if type_ is not None:
                    kind, object_id = object_of(entry)
                    deliver(endpoint, ledger_event_id(entry.id), type_, entry.occurred_at,
                            kind, object_id, notice_data(entry))  # fmt: skip
                endpoint.ledger_cursor = entry.id
            events = endpoint_sql.outbox_after(session, endpoint.outbox_cursor, batch)
            for event in events:
                deliver(endpoint, outbox_event_id(event.id), event.type, event.occurred_at,
                        event.object_type, event.object_id)  # fmt: skip
                endpoint.outbox_cursor = event.id
            more = more or len(entries) == batch or len(events) == batch
            session.flush()
        session.commit()
        waiting = endpoint_sql.undispatched(session, batch)
        return Dispatched(delivery_ids=waiting, more=more or len(waiting) == batch)


def mark_dispatched(sessions: sessionmaker[Session], delivery_ids: list[str]) -> None:
    with sessions() as session:
        for delivery_id in delivery_ids:
            row = find(session, WebhookDelivery, delivery_id)
            if row is not None:
                row.dispatched = True
        session.commit()


# -- one try ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """What a try sends: the URL, the webhook-id, the body and the secrets that sign it."""

    url: str
    event_id: str
    body: str
    secrets: list[str]


def prepare_try(
    sessions: sessionmaker[Session], keyring: Keyring, input: TryInput
) -> Prepared | TryOutcome:
    """The request of a try, or the outcome that ends the run without one (the delivery
    or its endpoint deleted, the endpoint disabled)."""
    with sessions() as session:
        delivery = find(session, WebhookDelivery, input.delivery_id)
        if delivery is None:
            return TryOutcome(status="skipped", final=True)
        endpoint = endpoint_sql.endpoint(session, delivery.endpoint_id)
        if not endpoint.enabled:
            if delivery.status == "pending":
                delivery.status = "skipped"
                session.commit()
            return TryOutcome(status=delivery.status, final=True)
        secrets = signing_secrets(keyring, endpoint, now=utcnow())
        return Prepared(endpoint.url, delivery.event_id, delivery.body, secrets)


@dataclass(frozen=True)
class TryRecord:
    """A try as it is recorded (the sender's result, or a refusal before sending)."""

    outcome: str
    attempted_at: datetime
    duration_ms: int = 0
    status_code: int | None = None
    excerpt: str = ""
    error: str = ""
    retry_after_seconds: float | None = None


def record_try(sessions: sessionmaker[Session], input: TryInput, result: TryRecord) -> TryOutcome:
    """Record the try (once: a retried activity replaces its own row) and move the
    delivery on: delivered, failed for good (410, or the last try), or tries left."""
    with sessions() as session:
        delivery = find(session, WebhookDelivery, input.delivery_id)
        if delivery is None:
            return TryOutcome(status="skipped", final=True)
        row = endpoint_sql.try_of(session, delivery.id, input.run, input.number)
        if row is None:
            row = WebhookTry(delivery_id=delivery.id, run=input.run, number=input.number)
            session.add(row)
            delivery.tries = (delivery.tries or 0) + 1
        row.scheduled_at, row.attempted_at = input.scheduled_at, result.attempted_at
        row.duration_ms, row.outcome = result.duration_ms, result.outcome
        row.status_code, row.response_excerpt = result.status_code, result.excerpt
        row.error, row.details = result.error[:500], {}
        if result.retry_after_seconds is not None:
            row.details = {"retry_after_seconds": result.retry_after_seconds}
        delivery.last_tried_at, delivery.last_status_code = result.attempted_at, result.status_code
        final = True
        if result.outcome == "delivered":
            delivery.status, delivery.delivered_at = "delivered", result.attempted_at
        elif result.outcome == "gone":
            delivery.status = "failed"
            disable_gone(session, endpoint_sql.endpoint(session, delivery.endpoint_id))
        elif input.last:
            delivery.status = "failed"
        else:
            final = False
        session.commit()
        return TryOutcome(
            status=delivery.status if final else result.outcome,
            final=final,
            retry_after_seconds=result.retry_after_seconds,
        )


# -- reads and resends, for the faces ----------------------------------------------------


def list_deliveries(
    sessions: sessionmaker[Session],
    endpoint_id: str,
    shape: Callable[[WebhookDelivery, list[WebhookTry]], T],
    *,
    limit: int = 20,
    status: str | None = None,
) -> list[T]:
    """The endpoint's deliveries, newest first, each with its tries."""
    with sessions() as session:
        endpoint_sql.endpoint(session, endpoint_id)
        rows = endpoint_sql.deliveries(session, endpoint_id, limit=limit, status=status)
        return [shape(row, endpoint_sql.tries(session, row.id)) for row in rows]


def get_delivery(
    sessions: sessionmaker[Session],
    delivery_id: str,
    shape: Callable[[WebhookDelivery, list[WebhookTry]], T],
) -> T:
    with sessions() as session:
        row = endpoint_sql.delivery(session, delivery_id)
        return shape(row, endpoint_sql.tries(session, row.id))


async def resend(
    sessions: sessionmaker[Session],
    client: Client,
    delivery_id: str,
    shape: Callable[[WebhookDelivery, list[WebhookTry]], T],
    *,
    task_queue: str,
    requested_by: str,
) -> T:
    """Send a delivery again, delivered or failed, under the same webhook-id and body:
    run ``n`` of its workflow (``webhook-delivery-<id>-<n>``), on the schedule again."""
    run = await asyncio.to_thread(_mark_resent, sessions, delivery_id, requested_by)
    with contextlib.suppress(WorkflowAlreadyStartedError):  # this resend, asked twice: once
        await client.start_workflow(
            WEBHOOK_DELIVERY_WORKFLOW,
            DeliveryInput(delivery_id=delivery_id, run=run),
            id=webhook_delivery_workflow_id(delivery_id, run),
            task_queue=task_queue,
        )
    return await asyncio.to_thread(get_delivery, sessions, delivery_id, shape)


def _mark_resent(sessions: sessionmaker[Session], delivery_id: str, requested_by: str) -> int:
    """Put the delivery back to pending, audited; the run number of the resend."""
    with sessions() as session:
        row = endpoint_sql.delivery(session, delivery_id)
        endpoint = endpoint_sql.endpoint(session, row.endpoint_id)
        if not endpoint.enabled:
            raise RefusedError(
                f"webhook endpoint {endpoint.id} is disabled ({endpoint.disabled_reason}); "
                "enable it before resending"
            )
        if row.status == "pending":
            # Two runs at once would race each other's tries; this one is still trying.
            raise RefusedError(
                f"webhook delivery {row.id} is still being tried ({row.tries} tries so far); "
                "resend it once it is delivered or failed"
            )
        row.resends = (row.resends or 0) + 1
        row.status, run = "pending", row.resends
        audit_sql.audit(
            session, entity_type="webhook_endpoint", entity_id=endpoint.id,
            action="webhook_delivery_resent", actor=requested_by, occurred_at=utcnow(),
            details={"delivery": row.id, "event": row.event_id, "run": run},
        )  # fmt: skip
        session.commit()
    return int(run)
