"""Emails to customers: one row per business key, written before it is sent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.tables import EmailMessage


def email_by_key(session: Session, key: str) -> EmailMessage | None:
    return session.scalars(
        select(EmailMessage).where(EmailMessage.business_key == key)
    ).one_or_none()


def new_email(session: Session, **fields: Any) -> EmailMessage:
    """Insert a pending email row; flushes so a duplicate key fails here, not later."""
    row = EmailMessage(status="pending", **fields)
    session.add(row)
    session.flush()
    return row


def sent_emails_after(
    session: Session, floor: int, subscription_ids: Sequence[str]
) -> list[EmailMessage]:
    """Sent emails about these subscriptions with an id above ``floor``, oldest first."""
    return list(
        session.scalars(
            select(EmailMessage)
            .where(
                EmailMessage.id > floor,
                EmailMessage.status == "sent",
                EmailMessage.subscription_id.in_(subscription_ids),
            )
            .order_by(EmailMessage.id)
        )
    )
