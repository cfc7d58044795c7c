"""A database of a test module's own, and the HTTP API served on it.

The reporting-currency tests need a ledger with nothing else in it: MRR is a stock, so
another module's subscriptions (in the session's shared database) would carry into
every later bucket. The API runs without Temporal or Stripe: the analytics and the
exchange rates need neither (the forecast asks Temporal only for scheduled
downgrades, and this database has no subscription rows).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import api_keys
from kakin.services.api_keys import CreatedKey
from models.db import make_engine, make_session_factory, migrate
from tests.conftest import PG_ADMIN_URL
from tests.helpers import SETTINGS, connect_to, running


@contextmanager
def own_database(label: str) -> Iterator[str]:
    """A fresh PostgreSQL database migrated to head, dropped afterwards."""
    name = f"kakin_{label}_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
            migrate(url)
            yield url
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sessions_of(url: str) -> sessionmaker[Session]:
    return make_session_factory(make_engine(url))


def keys_of(sessions: sessionmaker[Session], label: str) -> dict[str, CreatedKey]:
    """One API key per role."""
    return {
        str(role): api_keys.create_key(sessions, name=f"{label} {role}", role=role)
        for role in api_keys.Role
    }


@contextmanager
def serving(sessions: sessionmaker[Session]) -> Iterator[str]:
    """The HTTP API on ``sessions``; Temporal and Stripe point nowhere (never called)."""
    app = create_app(
        settings=SETTINGS,
        sessions=sessions,
        temporal=connect_to("127.0.0.1:1"),
        stripe=StripeGateway(api_key="sk_test_kakin", api_base="http://127.0.0.1:1"),
    )
    with running(app) as base:
        yield base
