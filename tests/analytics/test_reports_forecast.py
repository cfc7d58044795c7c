"""The forecast report from subscription rows and the ledger, worked by hand.

The service is asked as of 2026-01-15T00:00Z (pinned: the windows depend on it), on
the Tokyo reporting calendar:

    rest of the month = [2026-01-15T00:00Z, 2026-01-31T15:00Z)
    next month        = [2026-01-31T15:00Z, 2026-02-28T15:00Z)

in CHF, which no other test bills, so the other modules' subscriptions stay out.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from billing.analytics.ledger import EntryKind
from kakin.services.analytics import ReportQuery
from kakin.services.analytics_forecast import (
    PlanChanges,
    forecast,
    plan_change_candidates,
    scheduled_plan_changes,
)
from models.repositories import audit as audit_sql
from models.repositories import ledger as ledger_sql
from models.tables import Customer, Invoice, Price, Product, Subscription

K = EntryKind
NOW = datetime(2026, 1, 15, tzinfo=UTC)
QUERY = ReportQuery(
    time_zone="Asia/Tokyo", from_="2025-10-01", to="2026-01-15", currency="CHF", now=NOW
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def ids(pg_sessions: sessionmaker[Session]) -> dict[str, str]:
    tag = secrets.token_hex(4)
    ids = {name: f"{name}_{tag}" for name in ("sA", "sB", "sC", "cheaper")}
    with pg_sessions() as session:
        customer = Customer(id=f"cus_{tag}", email="f@example.ch", name="F", currency="CHF")
        product = Product(id=f"prod_{tag}", name="Plan")

        def price(name: str, amount: int) -> Price:
            return Price(id=ids.get(name, f"{name}_{tag}"), product=product, currency="CHF",
                         unit_amount=amount, interval="month")  # fmt: skip

        def subscription(name: str, plan: Price, start: str, end: str, **more: Any) -> None:
            session.add(
                Subscription(
                    id=ids[name], customer=customer, price=plan, status="active",
                    current_period_start=at(start), current_period_end=at(end),
                    workflow_id=f"subscription-{ids[name]}", **more,
                )
            )  # fmt: skip

        # sA: CHF 100.00 a month, anchored 2025-12-05 (its first invoice), in the period
        # [Jan 5, Feb 5): next invoice Feb 5, in the next month.
        subscription("sA", price("a", 10000), "2026-01-05", "2026-02-05")
        session.add(
            Invoice(
                id=f"in_a_{tag}", business_key=f"invoice:{ids['sA']}:0",
                subscription_id=ids["sA"], customer=customer, status="paid", currency="CHF",
                period_start=at("2025-12-05"), period_end=at("2026-01-05"),
                issued_at=at("2025-12-05"),
            )
        )  # fmt: skip
        # sB: CHF 50.00, canceled at the end of [Dec 20, Jan 20): nothing more.
        subscription("sB", price("b", 5000), "2025-12-20", "2026-01-20",
                     cancel_at_period_end=True)  # fmt: skip
        # sC: CHF 30.00, anchored on Oct 31 (a month end): [Dec 31, Jan 31), so invoices on
        # 2026-01-31T00:00Z (rest of the month: before 15:00Z) and Feb 28 (next month).
        subscription("sC", price("c", 3000), "2025-12-31", "2026-01-31",
                     billing_cycle_anchor=at("2025-10-31"))  # fmt: skip
        session.add(price("cheaper", 6000))
        audit_sql.audit(
            session, entity_type="subscription", entity_id=ids["sA"],
            action="plan_change_scheduled", from_status="active", to_status="active",
            actor="support:ken", reason="downgrade at period end", occurred_at=at("2026-01-06"),
        )  # fmt: skip
        session.commit()
        write_chf_ledger(session, ids)
    return ids


def write_chf_ledger(session: Session, ids: dict[str, str]) -> None:
    def add(key: str, kind: EntryKind, when: str, **fields: Any) -> None:
        moment = at(when)
        key = f"fc:{ids['sA']}:{key}"
        ledger_sql.append(session, key, kind=kind, occurred_at=moment, recorded_at=moment,
                          currency="CHF", customer_id="fc_c", **fields)  # fmt: skip

    for name in ("sA", "sB", "sC"):
        add(f"{name}:start", K.SUBSCRIPTION_STARTED, "2025-10-31", subscription_id=ids[name],
            mrr_after=1000, status_after="active")  # fmt: skip
    # Two dunning episodes ended in the range: one recovered, one lost: 1 / 2 = 0.5.
    add("y:fin", K.INVOICE_FINALIZED, "2025-11-01", invoice_id="fc_y", amount=2000)
    add("y:fail", K.PAYMENT_FAILED, "2025-11-01T00:00:05", invoice_id="fc_y", amount=2000,
        attempt=1, decline_code="card_declined")  # fmt: skip
    add("y:paid", K.INVOICE_PAID, "2025-11-05", invoice_id="fc_y", amount=2000, attempt=2)
    add("z:fin", K.INVOICE_FINALIZED, "2025-11-10", invoice_id="fc_z", amount=2000)
    add("z:fail", K.PAYMENT_FAILED, "2025-11-10T00:00:05", invoice_id="fc_z", amount=2000,
        attempt=1, decline_code="expired_card")  # fmt: skip
    add("z:void", K.INVOICE_VOIDED, "2025-12-10", invoice_id="fc_z")
    # Open as of now: CHF 40.00, due Dec 1.
    add("x:fin", K.INVOICE_FINALIZED, "2025-12-01", invoice_id="fc_x", amount=4000)
    session.commit()


def windows(report: Any) -> list[tuple[Any, ...]]:
    (block,) = report.blocks
    return [
        (r.window.name, r.window.recurring, r.window.open_invoices, r.window.total,
         r.window.invoices, r.recovery_rate)
        for r in block.rows
    ]  # fmt: skip


def test_the_forecast_worked_by_hand(
    pg_sessions: sessionmaker[Session], ids: dict[str, str]
) -> None:
    report = forecast(pg_sessions, QUERY)
    assert windows(report) == [
        # sC's 30.00 on Jan 31 00:00Z; the open 40.00 x 0.5 recovered = 20.00.
        ("rest_of_month", 3000, 2000, 5000, 1, pytest.approx(0.5)),
        # sA's 100.00 on Feb 5 and sC's 30.00 on Feb 28 (the Oct 31 anchor's day, not
        # the 28th + a month); sB canceled at Jan 20 bills nothing.
        ("next_month", 13000, 0, 13000, 2, pytest.approx(0.5)),
    ]
    (block,) = report.blocks
    first = block.rows[0].window
    assert (first.start, first.end) == (NOW, at("2026-01-31T15:00"))


def test_a_downgrade_at_period_end_bills_the_new_plan(
    pg_sessions: sessionmaker[Session], ids: dict[str, str]
) -> None:
    assert ids["sA"] in plan_change_candidates(pg_sessions)
    changes = PlanChanges(pending={ids["sA"]: ids["cheaper"]})
    report = forecast(pg_sessions, QUERY, plan_changes=changes)
    # sA's next invoice at the cheaper 60.00: 60.00 + 30.00 = 90.00 next month.
    assert windows(report)[1][:4] == ("next_month", 9000, 0, 9000)


def test_without_temporal_the_change_is_unconfirmed(
    pg_sessions: sessionmaker[Session], ids: dict[str, str]
) -> None:
    changes = asyncio.run(scheduled_plan_changes(None, [ids["sA"]]))
    assert changes.pending == {} and changes.unconfirmed == (ids["sA"],)
    report = forecast(pg_sessions, QUERY, plan_changes=changes)
    assert report.unconfirmed_plan_changes == (ids["sA"],)
    assert windows(report)[1][1] == 13000  # at its current plan
