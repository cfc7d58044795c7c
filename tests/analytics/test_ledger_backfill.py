"""Migration 0008 back-fills the ledger from a 0007 database holding data: the entries
the pipeline would have written, under its own event keys, recorded when they occurred."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import select, text

from models.db import make_engine, make_session_factory
from models.repositories import ledger as ledger_sql
from models.tables import LedgerRow
from tests.models.test_migrations import _config, empty_database  # noqa: F401 (a fixture)

AT = datetime(2027, 1, 31, tzinfo=UTC)
DAY = timedelta(days=1)

_SUBSCRIPTION = (
    "INSERT INTO subscriptions (id, customer_id, price_id, quantity, status,"
    " billing_cycle_anchor, cancel_at_period_end, canceled_at, cancel_reason, workflow_id,"
    " test_clock, metadata, created_at, updated_at) VALUES ('{id}', 'cus_1', '{price}', {n},"
    " '{status}', :at, false, {canceled}, '{reason}', 'subscription-{id}', false, '{{}}',"
    " :at, :later)"
)
_INVOICE = (
    "INSERT INTO invoices (id, business_key, number, subscription_id, customer_id, status,"
    " currency, subtotal, total, amount_paid, period_start, period_end, issued_at,"
    " finalized_at, paid_at, created_at) VALUES ('{id}', 'invoice:{sub}:{n}', {number},"
    " '{sub}', 'cus_1', '{status}', 'JPY', {total}, {total}, {paid}, :at, :at, :at,"
    " {finalized}, {paid_at}, :at)"
)
_ATTEMPT = (
    "INSERT INTO payment_attempts (business_key, invoice_id, attempt, amount, currency,"
    " status, decline_code, attempted_at, created_at, updated_at) VALUES"
    " ('charge:{invoice}:{n}', '{invoice}', {n}, {amount}, 'JPY', '{status}', {code},"
    " :at, :at, :at)"
)
ROWS = [
    "INSERT INTO customers (id, email, name, locale, currency, time_zone, created_at)"
    " VALUES ('cus_1', 'taro@example.jp', '山田 太郎', 'ja', 'JPY', 'Asia/Tokyo', :at)",
    "INSERT INTO products (id, name, description, active, created_at)"
    " VALUES ('prod_1', 'Pro', '', true, :at)",
    *(
        "INSERT INTO prices (id, product_id, nickname, currency, unit_amount, interval,"
        f" interval_count, active, created_at) VALUES ('{id}', 'prod_1', '', 'JPY', {amount},"
        f" '{interval}', 1, true, :at)"
        for id, amount, interval in (("price_m", 3000, "month"), ("price_y", 39800, "year"))
    ),
    "INSERT INTO coupons (id, code, name, percent_off, duration, times_redeemed, active,"
    " created_at) VALUES ('co_1', 'FOREVER10', '10% off', '10', 'forever', 1, true, :at)",
    _SUBSCRIPTION.format(
        id="sub_a", price="price_m", n=2, status="active", canceled="NULL", reason=""
    ),
    "INSERT INTO subscription_discounts (id, subscription_id, coupon_id, redeemed_at)"
    " VALUES ('di_1', 'sub_a', 'co_1', :at)",
    _SUBSCRIPTION.format(
        id="sub_y", price="price_y", n=1, status="canceled", canceled=":later", reason="closing"
    ),
    _SUBSCRIPTION.format(
        id="sub_d", price="price_m", n=1, status="past_due", canceled="NULL", reason=""
    ),
    "INSERT INTO audit_log (entity_type, entity_id, action, from_status, to_status, actor,"
    " reason, details, occurred_at, recorded_at) VALUES ('subscription', 'sub_d',"
    " 'status_changed', 'active', 'past_due', 'workflow', '', '{}', :due, :due)",
    _SUBSCRIPTION.format(
        id="sub_t", price="price_m", n=1, status="trialing", canceled="NULL", reason=""
    ),
    _INVOICE.format(
        id="in_paid",
        sub="sub_a",
        n=0,
        number="'INV-1'",
        status="paid",
        total=5900,
        paid=5900,
        finalized=":at",
        paid_at=":at",
    ),
    "INSERT INTO invoice_lines (invoice_id, position, description, unit_amount, quantity,"
    " amount, period_start, period_end, kind) VALUES ('in_paid', 0, 'API calls', 500, 1,"
    " 500, :at, :at, 'usage')",
    _ATTEMPT.format(invoice="in_paid", n=1, amount=5900, status="declined", code="'card_declined'"),
    _ATTEMPT.format(invoice="in_paid", n=2, amount=5900, status="succeeded", code="NULL"),
    _INVOICE.format(
        id="in_open",
        sub="sub_d",
        n=0,
        number="'INV-2'",
        status="open",
        total=3000,
        paid=0,
        finalized=":at",
        paid_at="NULL",
    ),
    _ATTEMPT.format(invoice="in_open", n=1, amount=3000, status="declined", code="'expired_card'"),
    _INVOICE.format(
        id="in_void",
        sub="sub_y",
        n=0,
        number="'INV-3'",
        status="void",
        total=39800,
        paid=0,
        finalized=":at",
        paid_at="NULL",
    ),
    "INSERT INTO audit_log (entity_type, entity_id, action, from_status, to_status, actor,"
    " reason, details, occurred_at, recorded_at) VALUES ('invoice', 'in_void',"
    " 'marked_void', 'open', 'void', 'support:ken', '', '{}', :later, :later)",
    _INVOICE.format(
        id="in_draft",
        sub="sub_a",
        n=1,
        number="NULL",
        status="draft",
        total=5900,
        paid=0,
        finalized="NULL",
        paid_at="NULL",
    ),
    "INSERT INTO credit_notes (id, number, invoice_id, customer_id, currency, amount,"
    " tax_amount, reason, memo, method, status, stripe_refund_id, actor, breakdown,"
    " created_at) VALUES ('cn_1', 'CN-1', 'in_paid', 'cus_1', 'JPY', 1000, 0,"
    " 'duplicate', '', 'refund', 'refunded', 're_1', 'support:ken', '{}', :later)",
]


def test_upgrading_backfills_what_the_pipeline_would_have_written(
    empty_database: str,  # noqa: F811
) -> None:
    config = _config(empty_database)
    command.upgrade(config, "0007")
    engine = make_engine(empty_database)
    with engine.begin() as connection:
        for row in ROWS:
            connection.execute(text(row), {"at": AT, "later": AT + 9 * DAY, "due": AT + 3 * DAY})
    engine.dispose()

    command.upgrade(config, "0008")

    engine = make_engine(empty_database)
    with make_session_factory(engine)() as session:
        entries = ledger_sql.entries(session)  # each read back through LedgerEntry's checks
        keys = set(session.scalars(select(LedgerRow.event_key)))
    engine.dispose()
    got = {
        (str(e.kind), e.subscription_id, e.invoice_id, e.amount, e.mrr_before, e.mrr_after,
         e.status_before, e.status_after, e.attempt, e.dunning_step, e.decline_code,
         e.occurred_at - AT)
        for e in entries
    }  # fmt: skip
    zero = timedelta(0)
    assert got == {
        # Two seats at 3,000 less a forever 10 %: 5,400.
        ("subscription.started", "sub_a", "", 0, 0, 5400, "", "active", 0, "", "", zero),
        # A yearly 39,800 is 3,317 a month, until it was canceled.
        ("subscription.started", "sub_y", "", 0, 0, 3317, "", "active", 0, "", "", zero),
        ("subscription.canceled", "sub_y", "", 0, 3317, 0, "active", "canceled", 0, "", "",
         9 * DAY),
        # Past due still counts, from the audit row that put it there.
        ("subscription.started", "sub_d", "", 0, 0, 3000, "", "active", 0, "", "", zero),
        ("subscription.status_changed", "sub_d", "", 0, 3000, 3000, "active", "past_due", 0,
         "", "", 3 * DAY),
        ("subscription.started", "sub_t", "", 0, 0, 0, "", "trialing", 0, "", "", zero),
        ("invoice.finalized", "sub_a", "in_paid", 5900, 0, 0, "draft", "open", 0, "", "", zero),
        ("payment.failed", "sub_a", "in_paid", 5900, 0, 0, "", "", 1, "", "card_declined",
         zero),
        ("payment.succeeded", "sub_a", "in_paid", 5900, 0, 0, "", "", 2, "retry_1", "", zero),
        ("invoice.paid", "sub_a", "in_paid", 5900, 0, 0, "open", "paid", 2, "retry_1", "", zero),
        ("credit_note.issued", "sub_a", "in_paid", 1000, 0, 0, "", "", 0, "", "", 9 * DAY),
        ("refund.created", "sub_a", "in_paid", 1000, 0, 0, "", "", 0, "", "", 9 * DAY),
        ("invoice.finalized", "sub_d", "in_open", 3000, 0, 0, "draft", "open", 0, "", "", zero),
        ("payment.failed", "sub_d", "in_open", 3000, 0, 0, "", "", 1, "", "expired_card", zero),
        ("invoice.finalized", "sub_y", "in_void", 39800, 0, 0, "draft", "open", 0, "", "",
         zero),
        ("invoice.voided", "sub_y", "in_void", 39800, 0, 0, "open", "void", 0, "", "", 9 * DAY),
    }  # fmt: skip
    assert len(entries) == len(got) == len(keys)
    assert all(e.recorded_at == e.occurred_at for e in entries)
    finalized = {e.invoice_id: e for e in entries if e.kind == "invoice.finalized"}
    assert finalized["in_paid"].details["usage_amount"] == "500"
    assert finalized["in_paid"].details["number"] == "INV-1"
    assert finalized["in_paid"].due_at == AT
    # The pipeline's own keys: a change retried after the upgrade finds its entry.
    assert {
        "invoice.finalized:in_paid", "invoice.paid:in_paid", "payment.failed:charge:in_paid:1",
        "payment.succeeded:charge:in_paid:2", "subscription.started:sub_a",
        "subscription.canceled:sub_y", "credit_note.issued:cn_1", "refund.created:cn_1",
        f"subscription.status_changed:sub_d:past_due:{(AT + 3 * DAY).isoformat()}",
    } <= keys  # fmt: skip

    command.downgrade(config, "0007")
    command.upgrade(config, "0008")  # and again: the back-fill starts from the tables
