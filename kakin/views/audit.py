"""How an audit log entry reads."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from kakin.views.common import FromRow


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
