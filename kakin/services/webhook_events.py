"""The events outgoing webhooks carry that are not ledger entries: written in the
transaction of their change, like a ledger entry, so none is lost and a retried change
writes none twice (``event_key`` is unique).

The ledger holds what moves money or MRR (``billing.analytics.ledger``); a customer's
creation or change moves neither, so it goes to this outbox instead of adding a
currency-bearing entry every figure would have to step over.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from billing.webhooks import CUSTOMER_CREATED, CUSTOMER_UPDATED
from models.repositories import webhook_endpoints as endpoint_sql
from models.tables import Customer, utcnow
from models.webhook_tables import OutboxEvent

LEDGER_PREFIX = "evt_ledger_"
OUTBOX_PREFIX = "evt_outbox_"


def ledger_event_id(entry_id: int) -> str:
    """The stable id (the webhook-id) of the event a ledger entry is."""
    return f"{LEDGER_PREFIX}{entry_id}"


def outbox_event_id(event_id: int) -> str:
    return f"{OUTBOX_PREFIX}{event_id}"


def _record(session: Session, key: str, type_: str, object_type: str, object_id: str) -> None:
    with session.no_autoflush:
        if endpoint_sql.outbox_by_key(session, key) is not None:
            return
    session.add(
        OutboxEvent(
            event_key=key, type=type_, object_type=object_type, object_id=object_id,
            occurred_at=utcnow(),
        )
    )  # fmt: skip


def record_customer_created(session: Session, customer: Customer) -> None:
    _record(session, f"{CUSTOMER_CREATED}:{customer.id}", CUSTOMER_CREATED, "customer", customer.id)


def record_customer_updated(session: Session, customer_id: str) -> None:
    """One event per update (keyed by the moment: two updates are two events), in the
    transaction of the update: its fields, or its card (``has_payment_method``)."""
    key = f"{CUSTOMER_UPDATED}:{customer_id}:{utcnow().isoformat()}"
    _record(session, key, CUSTOMER_UPDATED, "customer", customer_id)
