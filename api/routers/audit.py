"""The audit log: every support action, status change and payment, who did it and why.

Support and admin keys only: reasons are free text typed by staff (they may name the
customer), and actors name staff and API keys.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from api.deps import KEY, AfterPayment, DepsDep, Limit
from api.errors import RESPONSES
from api.schemas import FromRow, Moment, Page
from kakin.services import audit
from kakin.services.api_keys import KeyInfo


class AuditEntryOut(FromRow):
    """One recorded change: what (``entity_type`` and ``entity_id``), what happened
    (``action``, ``from_status`` → ``to_status``), who (``actor``) and why (``reason``).
    ``occurred_at`` is when it happened in billing time (a test clock's time for a
    test-clock subscription); ``recorded_at`` when kakin wrote it down."""

    object: Literal["audit_entry"] = "audit_entry"
    id: int
    entity_type: str
    entity_id: str
    action: str
    from_status: str | None
    to_status: str | None
    actor: str
    reason: str
    details: dict[str, Any]
    occurred_at: datetime
    recorded_at: datetime


router = APIRouter(prefix="/v1", responses=RESPONSES, tags=["audit"])


@router.get("/audit-log", response_model=Page[AuditEntryOut])
def list_audit_log(
    deps: DepsDep,
    _: KeyInfo = KEY,
    subscription_id: Annotated[
        str | None, Query(max_length=40, description="its own entries and its invoices'")
    ] = None,
    customer_id: Annotated[
        str | None,
        Query(max_length=40, description="its own entries, its subscriptions' and invoices'"),
    ] = None,
    actor: Annotated[
        str | None,
        Query(
            max_length=200,
            description="who, e.g. support:ken; an API key's entries by api-key:<key id> alone",
        ),
    ] = None,
    action: Annotated[
        str | None, Query(max_length=60, description="e.g. canceled, paused, paid")
    ] = None,
    since: Annotated[
        Moment | None, Query(description="occurred at or after (ISO 8601 with a zone)")
    ] = None,
    until: Annotated[Moment | None, Query(description="occurred before")] = None,
    limit: Limit = 10,
    starting_after: AfterPayment = None,
) -> Page[AuditEntryOut]:
    """The audit log, newest first (support and admin keys), filtered and paged."""
    rows, more = audit.list_entries_shaped(
        deps.sessions,
        AuditEntryOut.of,
        limit=limit,
        starting_after=starting_after,
        subscription_id=subscription_id,
        customer_id=customer_id,
        actor=actor,
        action=action,
        since=since,
        until=until,
    )
    return Page[AuditEntryOut](data=rows, has_more=more)
