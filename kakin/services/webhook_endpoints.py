"""Outgoing webhook endpoints: registered by admins, each with its event types and a
signing secret. (Stripe's webhooks to us are ``kakin.services.stripe_events``.)

- **Secrets.** ``whsec_`` + base64 of 24 random bytes, as the Standard Webhooks spec
  writes them; shown once, in the answer to create and to rotate, and stored sealed
  with the payload keys (``kakin.platform.sealing``), never in the clear.
- **Rotation.** A new secret signs at once; the old one goes on signing beside it for
  ``overlap`` (24 h by default), so every delivery in between carries two signatures
  and a receiver can switch secrets without dropping one (Standard Webhooks lets a
  ``webhook-signature`` header hold several, space-separated).
- **The URL** passes ``kakin.services.webhook_targets.check_url`` (the SSRF rule).
- Every change is in the audit log (entity ``webhook_endpoint``) with who asked.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from billing.webhooks import check_types
from kakin.platform.codec import Keyring
from kakin.platform.sealing import seal, unseal
from kakin.services.errors import InvalidRequestError
from kakin.services.webhook_targets import Resolver, check_url, resolve
from models.repositories import audit as audit_sql
from models.repositories import webhook_endpoints as endpoint_sql
from models.repositories.common import new_id
from models.tables import utcnow
from models.webhook_tables import WebhookEndpoint

T = TypeVar("T")
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24
ROTATION_OVERLAP = timedelta(hours=24)


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _purpose(endpoint_id: str) -> str:
    return f"webhook-secret:{endpoint_id}"


def signing_secrets(keyring: Keyring, row: WebhookEndpoint, *, now: datetime) -> list[str]:
    """The secrets that sign a delivery now: the current one, and the previous one until
    its overlap ends."""
    found = [unseal(keyring, row.secret, purpose=_purpose(row.id)).decode()]
    expires = row.previous_secret_expires_at
    if row.previous_secret and expires is not None and now < expires:
        found.append(unseal(keyring, row.previous_secret, purpose=_purpose(row.id)).decode())
    return found


def _types(enabled_events: list[str]) -> list[str]:
    try:
        return check_types(enabled_events)
    except ValueError as error:
        raise InvalidRequestError(str(error)) from None


def _audit(session: Session, row: WebhookEndpoint, action: str, actor: str, **details: Any) -> None:
    audit_sql.audit(
        session, entity_type="webhook_endpoint", entity_id=row.id, action=action, actor=actor,
        occurred_at=utcnow(), details={"url": row.url, **details},
    )  # fmt: skip


def create_endpoint(
    sessions: sessionmaker[Session],
    keyring: Keyring,
    shape: Callable[[WebhookEndpoint, str], T],
    *,
    url: str,
    enabled_events: list[str],
    description: str = "",
    live_mode: bool,
    created_by: str,
    resolver: Resolver = resolve,
) -> T:
    """Register ``url`` for ``enabled_events``; ``shape(row, secret)`` is the only time
    the secret is shown. The endpoint hears of changes from now on (its cursors start
    at the newest ledger entry and outbox event)."""
    check_url(url, live_mode=live_mode, resolver=resolver)
    types = _types(enabled_events)
    secret = new_secret()
    with sessions() as session:
        ledger_head, outbox_head = endpoint_sql.heads(session)
        endpoint_id = new_id("we")
        row = WebhookEndpoint(
            id=endpoint_id, url=url, description=description, enabled_events=types,
            enabled=True, disabled_reason="",
            secret=seal(keyring, secret.encode(), purpose=_purpose(endpoint_id)),
            ledger_cursor=ledger_head, outbox_cursor=outbox_head, created_by=created_by,
        )  # fmt: skip
        session.add(row)
        _audit(session, row, "webhook_endpoint_created", created_by, enabled_events=types)
        session.commit()
        return shape(row, secret)


def list_endpoints(
    sessions: sessionmaker[Session], shape: Callable[[WebhookEndpoint], T]
) -> list[T]:
    with sessions() as session:
        return [shape(row) for row in endpoint_sql.endpoints(session)]


def get_endpoint(
    sessions: sessionmaker[Session], endpoint_id: str, shape: Callable[[WebhookEndpoint], T]
) -> T:
    with sessions() as session:
        return shape(endpoint_sql.endpoint(session, endpoint_id))


def update_endpoint(
    sessions: sessionmaker[Session],
    endpoint_id: str,
    shape: Callable[[WebhookEndpoint], T],
    *,
    actor: str,
    url: str | None = None,
    enabled_events: list[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
    live_mode: bool = False,
    resolver: Resolver = resolve,
) -> T:
    """Change what is given. Enabling clears why it was disabled; an endpoint re-enabled
    hears of changes from then on (not of those made while it was disabled)."""
    if url is not None:
        check_url(url, live_mode=live_mode, resolver=resolver)
    with sessions() as session:
        row = endpoint_sql.endpoint(session, endpoint_id)
        changed: dict[str, Any] = {}
        if url is not None:
            row.url, changed["url"] = url, url
        if enabled_events is not None:
            row.enabled_events = changed["enabled_events"] = _types(enabled_events)
        if description is not None:
            row.description = description
        if enabled is not None and enabled != row.enabled:
            row.enabled, changed["enabled"] = enabled, enabled
            row.disabled_reason = "" if enabled else f"disabled by {actor}"[:200]
            if enabled:
                row.ledger_cursor, row.outbox_cursor = endpoint_sql.heads(session)
        row.updated_at = utcnow()
        _audit(session, row, "webhook_endpoint_updated", actor, **changed)
        session.commit()
        return shape(row)


def rotate_secret(
    sessions: sessionmaker[Session],
    keyring: Keyring,
    endpoint_id: str,
    shape: Callable[[WebhookEndpoint, str], T],
    *,
    actor: str,
    overlap: timedelta = ROTATION_OVERLAP,
) -> T:
    """A new secret, shown once; the current one keeps signing beside it for ``overlap``."""
    if overlap < timedelta(0) or overlap > timedelta(days=7):
        raise InvalidRequestError("the rotation overlap is between 0 and 7 days")
    secret = new_secret()
    with sessions() as session:
        row = endpoint_sql.endpoint(session, endpoint_id)
        now = utcnow()
        row.previous_secret = row.secret
        row.previous_secret_expires_at = now + overlap
        row.secret = seal(keyring, secret.encode(), purpose=_purpose(row.id))
        row.updated_at = now
        _audit(
            session,
            row,
            "webhook_secret_rotated",
            actor,
            overlap_seconds=int(overlap.total_seconds()),
        )
        session.commit()
        return shape(row, secret)


def delete_endpoint(sessions: sessionmaker[Session], endpoint_id: str, *, actor: str) -> None:
    """Remove the endpoint with its deliveries; deliveries in flight stop at their next try."""
    with sessions() as session:
        row = endpoint_sql.endpoint(session, endpoint_id)
        _audit(session, row, "webhook_endpoint_deleted", actor)
        endpoint_sql.delete_endpoint(session, row)
        session.commit()


def disable_gone(session: Session, row: WebhookEndpoint) -> None:
    """The receiver answered 410 Gone: the endpoint is disabled (in the caller's
    transaction, with the try that saw it)."""
    if row.enabled:
        row.enabled = False
        row.disabled_reason = "gone: the receiver answered 410"
        row.updated_at = utcnow()
        _audit(session, row, "webhook_endpoint_disabled", "system", reason="410 Gone")
