"""The stored Idempotency-Key rows: claimed, answered, released and pruned.

The HTTP protocol around them (which requests, which answers) is ``api/idempotency.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from kakin.services.api_keys import KeyInfo
from kakin.services.errors import ConflictError
from models.repositories import idempotency as idempotency_sql
from models.repositories.common import delete
from models.tables import IdempotencyKey, utcnow

RETENTION = timedelta(hours=24)


def claim(
    sessions: sessionmaker[Session], api_key: KeyInfo, key: str, method: str, path: str, digest: str
) -> IdempotencyKey | None:
    """Insert the processing row; if the key is taken, return the row that holds it."""
    # The holder may release the key (or we may delete its expired row) between our
    # insert and our lookup: then the insert is tried again.
    for _ in range(3):
        with sessions() as session:
            session.add(
                IdempotencyKey(
                    api_key_id=api_key.id,
                    key=key,
                    method=method,
                    path=path,
                    request_hash=digest,
                )
            )
            try:
                session.commit()
                return None
            except IntegrityError:
                session.rollback()
            # Expired but not swept yet: as good as gone, whatever it answered.
            if idempotency_sql.delete_idempotency_keys(
                session, created_before=utcnow() - RETENTION, api_key_id=api_key.id, key=key
            ):
                session.commit()
                continue
            existing = idempotency_sql.idempotency_key(session, api_key.id, key)
            if existing is not None:
                session.expunge(existing)
                return existing
    raise ConflictError("A request with this Idempotency-Key is still in progress")


def prune(sessions: sessionmaker[Session], *, now: datetime | None = None) -> int:
    """Delete the keys older than ``RETENTION``; returns how many went."""
    with sessions() as session:
        deleted = idempotency_sql.delete_idempotency_keys(
            session, created_before=(now or utcnow()) - RETENTION
        )
        session.commit()
    return deleted


def finish(
    sessions: sessionmaker[Session], api_key: KeyInfo, key: str, status: int, body: Any
) -> None:
    with sessions() as session:
        row = idempotency_sql.idempotency_key(session, api_key.id, key)
        if row is not None:
            row.response_status = status
            row.response_body = body
            session.commit()


def release(sessions: sessionmaker[Session], api_key: KeyInfo, key: str) -> None:
    with sessions() as session:
        row = idempotency_sql.idempotency_key(session, api_key.id, key)
        if row is not None and row.response_status is None:
            delete(session, row)
            session.commit()
