"""API keys: shown once, stored as a SHA-256 only, revocable; the ``kakin keys`` CLI."""

from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from kakin import cli
from kakin.platform.settings import get_settings
from kakin.services import api_keys
from models.tables import ApiKey


def test_a_key_names_its_role_and_only_its_hash_is_stored(
    pg_sessions: sessionmaker[Session],
) -> None:
    created = api_keys.create_key(pg_sessions, name="shop backend", role="service")
    assert re.fullmatch(r"kk_service_[A-Za-z0-9_-]{40,}", created.secret)
    assert created.secret.startswith(created.info.prefix)
    assert created.info.prefix != created.secret
    with pg_sessions() as session:
        row = session.get(ApiKey, created.info.id)
        assert row is not None
        assert row.secret_hash == hashlib.sha256(created.secret.encode()).hexdigest()
        # Nowhere in the table: not in any column of any key.
        dump = session.execute(text("SELECT * FROM api_keys")).all()
    assert created.secret not in repr(dump)
    assert created.secret.removeprefix(created.info.prefix) not in repr(dump)


def test_authenticate_accepts_the_key_and_refuses_others(
    pg_sessions: sessionmaker[Session],
) -> None:
    created = api_keys.create_key(pg_sessions, name="support desk", role="support")
    with pg_sessions() as session:
        found = api_keys.authenticate(session, created.secret)
        assert found is not None
        assert found.role == api_keys.Role.SUPPORT
        assert found.last_used_at is not None
        assert api_keys.authenticate(session, created.secret + "x") is None
        assert api_keys.authenticate(session, created.info.prefix) is None
        assert api_keys.authenticate(session, "") is None
    api_keys.revoke_key(pg_sessions, created.info.id)
    api_keys.revoke_key(pg_sessions, created.info.id)  # idempotent
    with pg_sessions() as session:
        assert api_keys.authenticate(session, created.secret) is None


def test_unknown_roles_and_empty_names_are_refused(pg_sessions: sessionmaker[Session]) -> None:
    with pytest.raises(ValueError, match="role 'root'"):
        api_keys.create_key(pg_sessions, name="x", role="root")
    with pytest.raises(ValueError, match="name"):
        api_keys.create_key(pg_sessions, name="  ", role="admin")


def test_kakin_keys_create_list_revoke(
    postgres_url: str,
    pg_sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KAKIN_DATABASE_URL", postgres_url)
    get_settings.cache_clear()
    try:
        assert cli.main(["keys", "create", "--name", "cli admin", "--role", "admin"]) == 0
        created = capsys.readouterr().out
        secret = created.strip().splitlines()[-1]
        assert secret.startswith("kk_admin_")
        key_id = re.search(r"created (key_\w+)", created)
        assert key_id is not None

        assert cli.main(["keys", "list"]) == 0
        listing = capsys.readouterr().out
        line = next(row for row in listing.splitlines() if key_id[1] in row)
        assert "admin" in line and "active" in line and "cli admin" in line
        assert secret not in listing

        assert cli.main(["keys", "revoke", key_id[1]]) == 0
        capsys.readouterr()
        assert cli.main(["keys", "list"]) == 0
        line = next(row for row in capsys.readouterr().out.splitlines() if key_id[1] in row)
        assert "revoked" in line

        assert cli.main(["keys", "revoke", "key_nope"]) == 2
        assert "key_nope" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
    with pg_sessions() as session:
        row = session.scalars(select(ApiKey).where(ApiKey.id == key_id[1])).one()
        assert row.revoked_at is not None


def test_the_table_migrates_on_sqlite_too(sqlite_url: str) -> None:
    from models.db import make_engine, make_session_factory

    sessions = make_session_factory(make_engine(sqlite_url))
    created = api_keys.create_key(sessions, name="sqlite", role="support")
    with sessions() as session:
        assert api_keys.authenticate(session, created.secret) is not None
