"""Migration 0009: invoices gain carried_forward (0 for every existing invoice), and the
lines of proration invoices, stored with the default kind, read back as ``proration``."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import text

from models.db import make_engine, make_session_factory
from models.tables import Invoice
from tests.models.test_migrations import _config, empty_database  # noqa: F401 (a fixture)

AT = datetime(2026, 1, 31, tzinfo=UTC)
ROWS = [
    "INSERT INTO customers (id, email, name, locale, currency, time_zone, created_at)"
    " VALUES ('cus_1', 'taro@example.jp', '山田 太郎', 'ja', 'JPY', 'Asia/Tokyo', :at)",
    "INSERT INTO products (id, name, description, active, created_at)"
    " VALUES ('prod_1', 'Pro', '', true, :at)",
    "INSERT INTO prices (id, product_id, nickname, currency, unit_amount, interval,"
    " interval_count, active, created_at)"
    " VALUES ('price_1', 'prod_1', '', 'JPY', 3980, 'month', 1, true, :at)",
    "INSERT INTO subscriptions (id, customer_id, price_id, quantity, status,"
    " cancel_at_period_end, cancel_reason, workflow_id, test_clock, metadata,"
    " created_at, updated_at) VALUES ('sub_1', 'cus_1', 'price_1', 1, 'active',"
    " false, '', 'subscription-sub_1', false, '{}', :at, :at)",
    *(
        "INSERT INTO invoices (id, business_key, subscription_id, customer_id, status,"
        f" currency, subtotal, total, amount_paid, period_start, period_end, issued_at,"
        f" created_at) VALUES ('{id}', '{key}', 'sub_1', 'cus_1', 'open', 'JPY', 1000,"
        " 1000, 0, :at, :at, :at, :at)"
        for id, key in (("in_1", "invoice:sub_1:0"), ("in_2", "proration:sub_1:0:price_2"))
    ),
    *(
        "INSERT INTO invoice_lines (invoice_id, position, description, unit_amount,"
        f" quantity, amount, period_start, period_end) VALUES ('{id}', {n}, '{what}',"
        f" {amount}, 1, {amount}, :at, :at)"
        for id, n, what, amount in (
            ("in_1", 0, "Pro", 1000),
            ("in_2", 0, "Unused time on Pro", -500),
            ("in_2", 1, "Remaining time on Max", 1500),
        )
    ),
]


def test_upgrading_keeps_invoices_and_names_proration_lines(
    empty_database: str,  # noqa: F811
) -> None:
    config = _config(empty_database)
    command.upgrade(config, "0005")
    engine = make_engine(empty_database)
    with engine.begin() as connection:
        for row in ROWS:
            connection.execute(text(row), {"at": AT})
    engine.dispose()

    command.upgrade(config, "0007")

    engine = make_engine(empty_database)
    with make_session_factory(engine)() as session:
        period, proration = session.get(Invoice, "in_1"), session.get(Invoice, "in_2")
        assert period is not None and proration is not None
        assert [line.kind for line in period.lines] == ["subscription"]
        assert [line.kind for line in proration.lines] == ["proration", "proration"]
        assert (period.carried_forward, period.amount_due) == (0, 1000)
    engine.dispose()

    command.downgrade(config, "0005")
    engine = make_engine(empty_database)
    with engine.connect() as connection:
        kinds = connection.execute(text("SELECT kind FROM invoice_lines ORDER BY id")).scalars()
        assert list(kinds) == ["subscription"] * 3
    engine.dispose()
