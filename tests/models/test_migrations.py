"""Migrations: they build exactly the tables the code maps, and an upgrade keeps data.

A model change without its migration works in tests that create tables from the
models and then fails on a user's database; comparing the migrated schema with the
models catches it here.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import text

import models.alert_tables
import models.staff_tables
import models.webhook_tables  # noqa: F401  (its tables join Base.metadata)
from models.db import MIGRATIONS_DIR, make_engine, make_session_factory, normalize_url
from models.tables import Base, Invoice, Price
from tests.conftest import PG_ADMIN_URL


def _config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


@pytest.fixture(params=["postgres", "sqlite"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no tables), dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrate.db'}"
        return
    name = f"kakin_migrate_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_migrated_schema_is_the_schema_the_models_map(empty_database: str) -> None:
    command.upgrade(_config(empty_database), "head")
    engine = make_engine(empty_database)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == [], f"models and migrations disagree: {differences}"


def test_upgrading_to_usage_and_taxes_keeps_existing_prices_and_invoices(
    empty_database: str,
) -> None:
    """Rows written before 0005 read back as flat prices and untaxed invoices."""
    config = _config(empty_database)
    command.upgrade(config, "0004")
    engine = make_engine(empty_database)
    at = datetime(2026, 1, 31, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO customers (id, email, name, locale, currency, time_zone, created_at)"
                " VALUES ('cus_1', 'taro@example.jp', '山田 太郎', 'ja', 'JPY', 'Asia/Tokyo', :at)"
            ),
            {"at": at},
        )
        connection.execute(
            text(
                "INSERT INTO products (id, name, description, active, created_at)"
                " VALUES ('prod_1', 'Pro', '', true, :at)"
            ),
            {"at": at},
        )
        connection.execute(
            text(
                "INSERT INTO prices (id, product_id, nickname, currency, unit_amount, interval,"
                " interval_count, active, created_at)"
                " VALUES ('price_1', 'prod_1', '', 'JPY', 3980, 'month', 1, true, :at)"
            ),
            {"at": at},
        )
        connection.execute(
            text(
                "INSERT INTO subscriptions (id, customer_id, price_id, quantity, status,"
                " cancel_at_period_end, cancel_reason, workflow_id, test_clock, metadata,"
                " created_at, updated_at) VALUES ('sub_1', 'cus_1', 'price_1', 1, 'active',"
                " false, '', 'subscription-sub_1', false, '{}', :at, :at)"
            ),
            {"at": at},
        )
        connection.execute(
            text(
                "INSERT INTO invoices (id, business_key, number, subscription_id, customer_id,"
                " status, currency, subtotal, total, amount_paid, period_start, period_end,"
                " issued_at, created_at) VALUES ('in_1', 'invoice:sub_1:0', 'INV-1', 'sub_1',"
                " 'cus_1', 'paid', 'JPY', 3980, 3980, 3980, :at, :at, :at, :at)"
            ),
            {"at": at},
        )
    engine.dispose()

    command.upgrade(config, "head")

    engine = make_engine(empty_database)
    with make_session_factory(engine)() as session:
        price = session.get(Price, "price_1")
        invoice = session.get(Invoice, "in_1")
        assert price is not None and invoice is not None
        assert (price.pricing_model, price.unit_amount, price.tax_rate_ids) == ("flat", 3980, [])
        assert price.metric_id is None
        assert (invoice.total, invoice.tax_total, invoice.credit_applied) == (3980, 0, 0)
        assert invoice.amount_due == 0
        assert invoice.tax_breakdown == []
    engine.dispose()


def test_plain_alembic_upgrades_the_database_the_settings_name(tmp_path: Path) -> None:
    # The README's operators may run alembic itself (not `kakin migrate`): with no URL in
    # alembic.ini, migrations/env.py reads KAKIN_DATABASE_URL through kakin's settings.
    # It imported a module the restructure had moved, so this failed with
    # ModuleNotFoundError before any migration ran.
    database = tmp_path / "plain.db"
    env = {**os.environ, "KAKIN_DATABASE_URL": f"sqlite:///{database}"}
    alembic = Path(sys.executable).with_name("alembic")
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [str(alembic), "upgrade", "head"], cwd=root, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    current = subprocess.run(
        [str(alembic), "current"], cwd=root, env=env, capture_output=True, text=True
    )
    assert "(head)" in current.stdout, current.stdout + current.stderr
