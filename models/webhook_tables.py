"""Outgoing webhooks' tables: the endpoints integrators register, the deliveries made to
them and every try, and the outbox of events that are not ledger entries.

Not to be confused with ``webhook_events``/``models.repositories.webhooks``: those hold
the webhooks Stripe sends us. These are the ones kakin sends.

In a module of their own (on the same ``Base`` as ``models.tables``), like
``models.staff_tables``: whatever builds or compares the whole schema imports it too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.tables import Base, UTCDateTime, utcnow


class WebhookEndpoint(Base):
    """A URL an admin registered, the event types it wants, and its signing secret(s)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(500), default="")
    # Public event types (billing.webhooks.KNOWN_TYPES), or ["*"] for every type.
    enabled_events: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Why it was disabled ("" while enabled): by an admin, or "gone" (the receiver's 410).
    disabled_reason: Mapped[str] = mapped_column(String(200), default="")
    # The signing secret (whsec_...), sealed with the payload keys (kakin.platform.sealing).
    secret: Mapped[str] = mapped_column(Text)
    # The secret before the last rotation, still signing until previous_secret_expires_at.
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # How far the dispatcher has read: the last ledger entry id and outbox event id it
    # looked at for this endpoint (an endpoint hears of changes after it was registered).
    ledger_cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    outbox_cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OutboxEvent(Base):
    """An event that is not a ledger entry (customer.created, customer.updated), written
    in the transaction of its change, so it is never lost nor invented by a retry."""

    __tablename__ = "webhook_outbox_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Unique: a change retried writes one event (customer.created:<customer id>, ...).
    event_key: Mapped[str] = mapped_column(String(200), unique=True)
    type: Mapped[str] = mapped_column(String(60))
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str] = mapped_column(String(60))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDelivery(Base):
    """One event for one endpoint: its body (built once, so every try and resend sends
    the same bytes under the same webhook-id) and where it stands."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # The backstop of "once per event and endpoint": a dispatcher retried after a
        # crash finds the first row.
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_webhook_deliveries_undispatched", "dispatched"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    # The webhook-id: evt_ledger_<entry id> or evt_outbox_<outbox id>, the same forever.
    event_id: Mapped[str] = mapped_column(String(60))
    event_type: Mapped[str] = mapped_column(String(60))
    body: Mapped[str] = mapped_column(Text)
    # pending (tries left) | delivered | failed (every try failed) | skipped (endpoint
    # disabled or gone before it was delivered).
    status: Mapped[str] = mapped_column(String(20), default="pending")
    # Its workflow was started (the dispatcher's own bookkeeping).
    dispatched: Mapped[bool] = mapped_column(Boolean, default=False)
    # How many resends were asked (run n of the workflow is the n-th resend).
    resends: Mapped[int] = mapped_column(Integer, default=0)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_tried_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookTry(Base):
    """One HTTP request of a delivery: when, how long, what came back (≤ 1 KB of it)."""

    __tablename__ = "webhook_tries"
    # A retried activity records its try once (it replaces the row it wrote before).
    __table_args__ = (UniqueConstraint("delivery_id", "run", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    run: Mapped[int] = mapped_column(Integer)
    number: Mapped[int] = mapped_column(Integer)
    # On the retry schedule (workflow time: the time-skipping server moves it).
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The wall clock the request went out at, and how long it took.
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    # delivered | failed | timeout | error (no answer) | refused (SSRF) | gone (410)
    outcome: Mapped[str] = mapped_column(String(20))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_excerpt: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str] = mapped_column(String(500), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
