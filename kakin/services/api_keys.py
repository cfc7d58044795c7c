"""API keys for the HTTP API: created and revoked with ``kakin keys``, checked per request.

A key reads ``kk_<role>_<random>`` and is shown once, when it is created. The database
keeps only its SHA-256 (and a short prefix to tell keys apart), so a leaked database
gives no working key; lookups compare hashes with ``hmac.compare_digest``.

Creating and revoking a key are audit rows (``entity_type="api_key"``) naming who did it:
the console passes the admin (``staff:<email>``); the command line is ``cli``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session, sessionmaker

from kakin.services.errors import InvalidRequestError
from models.repositories import api_keys as key_sql
from models.repositories import audit as audit_sql
from models.repositories.common import new_id
from models.tables import ApiKey, utcnow


class Role(StrEnum):
    SERVICE = "service"
    SUPPORT = "support"
    ADMIN = "admin"
    # Read-only, for the finance team: the revenue analytics (api.access.ROLES).
    FINANCE = "finance"


class KeyInputError(InvalidRequestError):
    """A refused name or role; ``field`` says which, for a form that marks it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class KeyInfo:
    """An API key as listings show it: never the secret."""

    id: str
    name: str
    role: Role
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class CreatedKey:
    info: KeyInfo
    secret: str  # shown once, never stored


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        prefix=row.prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def _record(session: Session, row: ApiKey, action: str, actor: str) -> None:
    # Never the secret nor its hash: the name, role and prefix tell the key apart.
    audit_sql.audit(
        session,
        entity_type="api_key",
        entity_id=row.id,
        action=action,
        actor=actor[:200],
        occurred_at=utcnow(),
        details={"name": row.name, "role": row.role, "prefix": row.prefix},
    )


def create_key(
    sessions: sessionmaker[Session], *, name: str, role: str, actor: str = "cli"
) -> CreatedKey:
    try:
        role = Role(role)
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise KeyInputError("role", f"role {role!r} is not one of {roles}") from None
    if not name.strip():
        raise KeyInputError("name", "a key needs a name saying who uses it")
    secret = f"kk_{role}_{secrets.token_urlsafe(32)}"
    row = ApiKey(
        id=new_id("key"),
        name=name.strip(),
        role=str(role),
        prefix=secret[: len(f"kk_{role}_") + 4],
        secret_hash=hash_secret(secret),
    )
    with sessions() as session:
        session.add(row)
        session.flush()
        _record(session, row, "api_key.created", actor)
        session.commit()
        return CreatedKey(info=_info(row), secret=secret)


def list_keys(sessions: sessionmaker[Session]) -> list[KeyInfo]:
    with sessions() as session:
        return [_info(row) for row in key_sql.api_keys(session)]


def get_key(sessions: sessionmaker[Session], key_id: str) -> KeyInfo:
    """One key (never its secret). Raises ``NotFoundError``."""
    with sessions() as session:
        return _info(key_sql.api_key(session, key_id))


def revoke_key(sessions: sessionmaker[Session], key_id: str, *, actor: str = "cli") -> KeyInfo:
    """Revoke a key (idempotent); it is refused from then on. Raises ``NotFoundError``."""
    with sessions() as session:
        row = key_sql.api_key(session, key_id)
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            _record(session, row, "api_key.revoked", actor)
            session.commit()
        return _info(row)


def authenticate(session: Session, presented: str) -> KeyInfo | None:
    """The active key matching ``presented``, or None; records when it was last used."""
    if not presented.startswith("kk_"):
        return None
    presented_hash = hash_secret(presented)
    row = key_sql.api_key_by_hash(session, presented_hash)
    if row is None or not hmac.compare_digest(row.secret_hash, presented_hash):
        return None
    if row.revoked_at is not None:
        return None
    row.last_used_at = utcnow()
    session.commit()
    return _info(row)


# --- for the faces that hold a session factory, not a session (the HTTP API) ---


def authenticate_with(sessions: sessionmaker[Session], presented: str) -> KeyInfo | None:
    """``authenticate`` in a session of its own."""
    with sessions() as session:
        return authenticate(session, presented)
