"""API keys: by the hash of their secret, listed, by id."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.repositories.common import get
from models.tables import ApiKey


def api_key_by_hash(session: Session, secret_hash: str) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.secret_hash == secret_hash)).one_or_none()


def api_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)))


def api_key(session: Session, key_id: str) -> ApiKey:
    return get(session, ApiKey, key_id, "API key")
