"""What happened since: the audit entries, declined charges, sent emails and billing
progress that ``kakin up``'s demo (kakin/dev/demo.py) narrates, read in the caller's
session. The ``after`` functions take the highest id the caller has already shown
below (its floor): ids are append-only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy.orm import Session

from models.repositories import audit as audit_sql
from models.repositories import emails as email_sql
from models.repositories import invoices as invoice_sql
from models.repositories import payments as payment_sql
from models.repositories import subscriptions as subscription_sql
from models.tables import AuditLog, EmailMessage, PaymentAttempt


def audit_entries_after(session: Session, floor: int) -> list[AuditLog]:
    return audit_sql.audit_entries_after(session, floor)


def declined_attempts_after(
    session: Session, floor: int, subscription_ids: Sequence[str]
) -> list[PaymentAttempt]:
    return payment_sql.declined_attempts_after(session, floor, subscription_ids)


def sent_emails_after(
    session: Session, floor: int, subscription_ids: Sequence[str]
) -> list[EmailMessage]:
    return email_sql.sent_emails_after(session, floor, subscription_ids)


def paid_invoice_counts(session: Session, subscription_ids: Iterable[str]) -> dict[str, int]:
    return invoice_sql.paid_invoice_counts(session, subscription_ids)


def subscription_statuses(session: Session, subscription_ids: Iterable[str]) -> dict[str, str]:
    return subscription_sql.subscription_statuses(session, subscription_ids)


def reached_status(
    session: Session, entity_id: str, status: str, *, actor: str | None = None
) -> bool:
    """Whether the audit log records ``entity_id`` moving to ``status`` (by ``actor``)."""
    return audit_sql.reached_status(session, entity_id, status, actor=actor)
