"""The audit log: every support action, status change and payment, who did it and why.

Support and admin keys only: reasons are free text typed by staff (they may name the
customer), and actors name staff and API keys.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import KEY, DepsDep, PaymentPageDep
from api.errors import RESPONSES
from api.requests.common import Moment
from kakin.services import audit
from kakin.services.api_keys import KeyInfo
from kakin.views.audit import AuditEntryOut
from kakin.views.common import Page

router = APIRouter(prefix="/v1", responses=RESPONSES, tags=["audit"])


@router.get("/audit-log", response_model=Page[AuditEntryOut])
def list_audit_log(
    deps: DepsDep,
    page: PaymentPageDep,
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
) -> Page[AuditEntryOut]:
    """The audit log, newest first (support and admin keys), filtered and paged."""
    filters = {
        "subscription_id": subscription_id,
        "customer_id": customer_id,
        "actor": actor,
        "action": action,
        "since": since,
        "until": until,
    }
    lister = audit.list_entries_shaped
    return page.read(AuditEntryOut, lister, deps.sessions, AuditEntryOut.of, **filters)
