"""The SQL of incoming Stripe webhook events: claimed once, given back, marked done.

Each claim is one conditional UPDATE, so it holds on PostgreSQL (a concurrent one waits
for the row lock, then finds the claim taken) and SQLite (writers are serialized)
alike. Callers own the session and commit.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from models.tables import WebhookEvent


def take_claim(
    session: Session, event_id: str, *, token: str, now: datetime, until: datetime
) -> bool:
    """Claim an unprocessed event whose claim is free or has run out; True if taken."""
    result = session.execute(
        update(WebhookEvent)
        .where(
            WebhookEvent.id == event_id,
            WebhookEvent.processed_at.is_(None),
            or_(WebhookEvent.claimed_until.is_(None), WebhookEvent.claimed_until < now),
        )
        .values(claim_token=token, claimed_until=until)
    )
    return getattr(result, "rowcount", 0) == 1


def give_back_claim(session: Session, event_id: str, token: str) -> None:
    """Free the claim, if ``token`` still holds it."""
    session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.id == event_id, WebhookEvent.claim_token == token)
        .values(claim_token=None, claimed_until=None)
    )


def set_outcome(session: Session, event_id: str, outcome: str) -> None:
    """Write what the event is doing (e.g. ``applying pm_...``) on its row."""
    session.execute(update(WebhookEvent).where(WebhookEvent.id == event_id).values(outcome=outcome))
