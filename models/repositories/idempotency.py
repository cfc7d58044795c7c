"""The idempotency keys of API writes: found by (API key, key), deleted when old."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from models.tables import IdempotencyKey


def idempotency_key(session: Session, api_key_id: str, key: str) -> IdempotencyKey | None:
    return session.scalars(
        select(IdempotencyKey).where(
            IdempotencyKey.api_key_id == api_key_id, IdempotencyKey.key == key
        )
    ).one_or_none()


def delete_idempotency_keys(
    session: Session,
    *,
    created_before: datetime,
    api_key_id: str | None = None,
    key: str | None = None,
) -> int:
    """Delete the idempotency keys created before ``created_before`` (all of them, or
    the one ``key`` of ``api_key_id``); returns how many went.

    A bulk DELETE rather than ``session.delete``: when two requests remove the same
    row at once, the second deletes nothing instead of failing.
    """
    query = delete(IdempotencyKey).where(IdempotencyKey.created_at < created_before)
    if api_key_id is not None:
        query = query.where(IdempotencyKey.api_key_id == api_key_id)
    if key is not None:
        query = query.where(IdempotencyKey.key == key)
    result = session.execute(query)
    return int(getattr(result, "rowcount", 0) or 0)
