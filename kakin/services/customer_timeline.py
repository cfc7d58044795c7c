"""A customer's timeline: everything that happened to them, newest first, from the billing
ledger (what moved money or MRR) and the audit log (who did it, and why).

The two are written in the same transaction for most changes: an invoice paid is a
ledger ``invoice.paid`` row and an audit ``paid`` row, a cancel a ledger
``subscription.canceled`` row and an audit row with the staff member and the reason. One
change is one entry: an audit row that records the same change as a ledger row (the same
invoice or subscription, the same moment, the same status reached) adds its actor and
reason to that entry. Audit rows that match no ledger row (a card updated, a customer
created in the console, a cancel scheduled for the period end) are entries of their own.

Nothing is recomputed from "now": the entries are the rows as they were written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from billing.analytics.ledger import MRR_KINDS
from kakin.services.customers import find_customer
from models.repositories import audit as audit_sql
from models.repositories import ledger as ledger_sql
from models.tables import AuditLog, LedgerRow

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_MRR_KINDS = frozenset(str(kind) for kind in MRR_KINDS)


@dataclass(frozen=True)
class TimelineEntry:
    """One thing that happened to the customer.

    ``kind`` is the ledger's event (``invoice.paid``; "" for an audit-only entry) and
    ``action`` the audit log's (``paid``, ``cancel``; "" when no audit row recorded it).
    ``amount`` is set for money events, ``mrr_before``/``mrr_after`` for the events that
    carry MRR, both in minor units of ``currency``. ``at`` is billing time, in UTC.
    """

    at: datetime
    kind: str
    action: str
    subscription_id: str | None
    invoice_id: str | None
    currency: str
    amount: int | None
    mrr_before: int | None
    mrr_after: int | None
    status_before: str
    status_after: str
    actor: str
    reason: str
    number: str = ""  # the invoice's number, when the entry names one
    decline_code: str = ""

    @property
    def mrr_moved(self) -> bool:
        return self.mrr_before is not None and self.mrr_before != self.mrr_after


def _utc(moment: datetime) -> datetime:
    # SQLite hands stored UTC values back without a zone.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _from_ledger(row: LedgerRow) -> TimelineEntry:
    details = row.details or {}
    carries_mrr = row.kind in _MRR_KINDS
    return TimelineEntry(
        at=_utc(row.occurred_at),
        kind=row.kind,
        action="",
        subscription_id=row.subscription_id,
        invoice_id=row.invoice_id,
        currency=row.currency,
        amount=None if carries_mrr else row.amount,
        mrr_before=row.mrr_before if carries_mrr else None,
        mrr_after=row.mrr_after if carries_mrr else None,
        status_before=row.status_before or "",
        status_after=row.status_after or "",
        actor=row.actor or "",
        reason=str(details.get("reason", "")),
        number=str(details.get("number", "") or details.get("credit_note", "")),
        decline_code=row.decline_code or "",
    )


def _from_audit(row: AuditLog) -> TimelineEntry:
    details = row.details or {}
    return TimelineEntry(
        at=_utc(row.occurred_at),
        kind="",
        action=row.action,
        subscription_id=row.entity_id if row.entity_type == "subscription" else None,
        invoice_id=row.entity_id if row.entity_type == "invoice" else None,
        currency="",
        amount=None,
        mrr_before=None,
        mrr_after=None,
        status_before=row.from_status or "",
        status_after=row.to_status or "",
        actor=row.actor,
        reason=row.reason or "",
        number=str(details.get("number", "") or ""),
    )


def _same_change(ledger: TimelineEntry, audit: TimelineEntry) -> bool:
    subject = audit.invoice_id or audit.subscription_id
    ledger_subject = ledger.invoice_id if audit.invoice_id else ledger.subscription_id
    if audit.subscription_id and ledger.invoice_id:
        return False  # a subscription's row never records an invoice's change
    return (
        subject is not None
        and subject == ledger_subject
        and ledger.at == audit.at
        and bool(audit.status_after)
        and audit.status_after == ledger.status_after
    )


def merge(ledger: Iterable[TimelineEntry], audit: Iterable[TimelineEntry]) -> list[TimelineEntry]:
    """The entries of both, newest first; an audit entry recording a ledger entry's
    change is folded into it (its action, and its actor and reason when it has them)."""
    merged = list(ledger)
    for entry in audit:
        for index, candidate in enumerate(merged):
            if candidate.kind and not candidate.action and _same_change(candidate, entry):
                merged[index] = replace(
                    candidate,
                    action=entry.action,
                    actor=entry.actor or candidate.actor,
                    reason=entry.reason or candidate.reason,
                )
                break
        else:
            merged.append(entry)
    # Newest first; a stable sort keeps the ledger's own order (the later-written
    # first) at one moment, and puts audit-only entries after its rows.
    return sorted(merged, key=lambda entry: entry.at, reverse=True)


def _read(session: Session, customer_id: str, limit: int) -> list[TimelineEntry]:
    find_customer(session, customer_id)
    ledger_rows = ledger_sql.customer_rows(session, customer_id, limit=limit)
    audit_rows, _ = audit_sql.audit_entries(session, limit=limit, customer_id=customer_id)
    ledger = [_from_ledger(row) for row in ledger_rows]
    return merge(ledger, [_from_audit(row) for row in audit_rows])[:limit]


def customer_timeline(
    sessions: sessionmaker[Session], customer_id: str, *, limit: int = DEFAULT_LIMIT
) -> list[TimelineEntry]:
    """The customer's latest ``limit`` entries, newest first (``NotFoundError``: no such
    customer). Each source gives its latest ``limit`` rows, so the newest ``limit`` of
    the merged list are complete."""
    limit = max(1, min(limit, MAX_LIMIT))
    with sessions() as session:
        return _read(session, customer_id, limit)
