"""Reading the audit log: who did what to which subscription, invoice or customer, and why.

Rows are written with the change they record (``audit_sql.audit``, in the same transaction)
by the activities and services; this is the one way the faces read them: ``GET
/v1/audit-log`` (support and admin keys) and ``kakin audit list``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from kakin.services.errors import InvalidRequestError
from models.repositories import audit as audit_sql
from models.repositories.common import InvalidCursorError
from models.tables import AuditLog

MAX_LIMIT = 100


def list_entries(
    session: Session,
    *,
    limit: int = 20,
    starting_after: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    **filters: str | None,
) -> tuple[list[AuditLog], bool]:
    """One page of audit entries, newest first, and whether more follow.

    ``filters`` are ``subscription_id``, ``customer_id``, ``actor`` and ``action`` (an
    empty one filters nothing); they combine with the range (all must hold). See
    ``audit_sql.audit_entries`` for what each matches.

    Raises:
        InvalidRequestError: a limit out of range, a time without a zone, an empty
            range, or a ``starting_after`` that names no entry.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequestError(f"limit must be between 1 and {MAX_LIMIT}")
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.utcoffset() is None:
            raise InvalidRequestError(
                f"{name} needs a time zone, e.g. 2027-01-31T00:00:00+09:00 or ...Z"
            )
    if since is not None and until is not None and since >= until:
        raise InvalidRequestError("since must be before until")
    given = {name: value or None for name, value in filters.items()}
    try:
        return audit_sql.audit_entries(
            session, limit=limit, starting_after=starting_after, since=since, until=until, **given
        )
    except InvalidCursorError as error:
        raise InvalidRequestError(str(error)) from None


# --- for the faces that hold a session factory (each shapes rows inside its session) ---

T = TypeVar("T")


def list_entries_shaped(
    sessions: sessionmaker[Session], shape: Callable[[AuditLog], T], **filters: Any
) -> tuple[list[T], bool]:
    """``list_entries`` (the same filters) in a session of its own, each entry shaped."""
    with sessions() as session:
        rows, more = list_entries(session, **filters)
        return [shape(row) for row in rows], more


def record_request(
    sessions: sessionmaker[Session],
    *,
    entity_type: str,
    entity_id: str,
    action: str,
    actor: str,
    reason: str,
    occurred_at: datetime,
    details: dict[str, Any] | None = None,
) -> None:
    """Write down (committed) what a staff member asked and why, when the message they
    sent carries no reason of its own.

    Resuming a subscription and retrying its charge now are messages without a reason
    (the workflow records who asked, not why); the console asks for one all the same,
    and this row keeps it, with where the request came from (``details``).
    """
    with sessions() as session:
        audit_sql.audit(
            session, entity_type=entity_type, entity_id=entity_id, action=action,
            actor=actor[:200], reason=reason, occurred_at=occurred_at, details=details,
        )  # fmt: skip
        session.commit()
