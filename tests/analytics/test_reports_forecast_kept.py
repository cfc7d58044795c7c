"""The forecast with each subscription's invoice dates kept between requests
(``analytics_forecast_kept``) gives what walking every subscription again gives (``keep=False``),
after each change a user makes: a renewal, a plan change scheduled, a cancellation at
period end, usage recorded, a coupon redeemed, the customer's time zone, a payment of
an open invoice.

As of 2026-01-15T00:00Z on the Tokyo calendar, in SEK (no other test bills it):

    rest of the month = [2026-01-15T00:00Z, 2026-01-31T15:00Z)
    next month        = [2026-01-31T15:00Z, 2026-02-28T15:00Z)
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from billing.analytics.ledger import EntryKind
from kakin.services import analytics_forecast_kept
from kakin.services.analytics import ReportQuery
from kakin.services.analytics_forecast import PlanChanges, forecast
from kakin.services.usage import UsageEventIn, ingest
from models.repositories import ledger as ledger_sql
from models.tables import (
    BillableMetric,
    Coupon,
    CreditTransaction,
    Customer,
    Price,
    Product,
    Subscription,
    SubscriptionDiscount,
    SubscriptionItem,
)
from tests.analytics.fixture_life import private_database

K = EntryKind
NOW = datetime(2026, 1, 15, tzinfo=UTC)
QUERY = ReportQuery(
    time_zone="Asia/Tokyo", from_="2025-10-01", to="2026-01-15", currency="SEK", now=NOW
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def pg_sessions() -> Iterator[sessionmaker[Session]]:
    """This module's own database: the forecast reads every subscription and open
    invoice of its currency, and other modules leave theirs in the shared one."""
    with private_database() as sessions:
        yield sessions


@pytest.fixture(scope="module")
def ids(pg_sessions: sessionmaker[Session]) -> dict[str, str]:
    tag = secrets.token_hex(4)
    names = ("renews", "changes", "cancels", "meters", "coupon", "cheaper", "customer", "metric")
    ids = {name: f"{name}_{tag}" for name in names}
    ids["tag"] = tag
    with pg_sessions() as session:
        customer = Customer(id=ids["customer"], email="k@example.se", name="K", currency="SEK")
        product = Product(id=f"prod_{tag}", name="Plan")
        metric = BillableMetric(id=ids["metric"], code=f"calls_{tag}", name="Calls",
                                aggregation="count")  # fmt: skip

        def price(name: str, amount: int, **more: Any) -> Price:
            return Price(id=ids.get(name, f"{name}_{tag}"), product=product, currency="SEK",
                         unit_amount=amount, interval="month", **more)  # fmt: skip

        plan = price("plan", 10000)
        metered = price("calls", 0, pricing_model="per_unit", unit_amount_decimal="500",
                        metric=metric)  # fmt: skip

        def subscription(name: str, start: str, end: str, anchor: str | None, **more: Any) -> None:
            session.add(
                Subscription(
                    id=ids[name], customer=customer, price=plan, status="active",
                    current_period_start=at(start), current_period_end=at(end),
                    billing_cycle_anchor=at(anchor) if anchor else None,
                    workflow_id=f"subscription-{ids[name]}", **more,
                )
            )  # fmt: skip

        # SEK 100.00 a month each. Renews: invoices Jan 20 and Feb 20.
        subscription("renews", "2025-12-20", "2026-01-20", "2025-11-20")
        # Changes (a downgrade to 60.00 scheduled): its next invoice Feb 5.
        subscription("changes", "2026-01-05", "2026-02-05", "2025-12-05")
        # Cancels at the end of [Jan 10, Feb 10).
        subscription("cancels", "2026-01-10", "2026-02-10", "2025-12-10")
        # Meters: 5.00 a call on top, in [Jan 1, Feb 1); no anchor stored (its calendar
        # is found from its period, on each request).
        subscription("meters", "2026-01-01", "2026-02-01", None,
                     items=[SubscriptionItem(id=f"si_{tag}", price=metered)])  # fmt: skip
        session.add_all([price("cheaper", 6000), metric])
        session.add(Coupon(id=ids["coupon"], code=f"half_{tag}", name="Half",
                           percent_off="50", duration="forever"))  # fmt: skip
        session.commit()

        def add(key: str, kind: EntryKind, when: str, **fields: Any) -> None:
            moment = at(when)
            ledger_sql.append(session, f"kept:{tag}:{key}", kind=kind, occurred_at=moment,
                              recorded_at=moment, currency="SEK", customer_id=ids["customer"],
                              **fields)  # fmt: skip

        for name in ("renews", "changes", "cancels", "meters"):
            add(f"{name}:start", K.SUBSCRIPTION_STARTED, "2025-11-01", subscription_id=ids[name],
                mrr_after=10000, status_after="active")  # fmt: skip
        # One dunning episode recovered: the recovery rate is 1; and an open invoice.
        add("y:fin", K.INVOICE_FINALIZED, "2025-11-01", invoice_id=f"y_{tag}", amount=2000)
        add("y:fail", K.PAYMENT_FAILED, "2025-11-01T00:00:05", invoice_id=f"y_{tag}",
            amount=2000, attempt=1, decline_code="card_declined")  # fmt: skip
        add("y:paid", K.INVOICE_PAID, "2025-11-05", invoice_id=f"y_{tag}", amount=2000, attempt=2)
        add("x:fin", K.INVOICE_FINALIZED, "2025-12-01", invoice_id=f"x_{tag}", amount=4000)
        session.commit()
    return ids


def figures(report: Any) -> list[tuple[Any, ...]]:
    (block,) = report.blocks
    return [
        (r.window.name, r.window.recurring, r.window.metered, r.window.open_invoices,
         r.window.invoices, r.subscriptions, r.recovery_rate)
        for r in block.rows
    ]  # fmt: skip


def both(sessions: sessionmaker[Session], changes: PlanChanges | None = None) -> list[Any]:
    """The kept forecast, after checking it equals walking everything again."""
    kept = figures(forecast(sessions, QUERY, plan_changes=changes))
    assert kept == figures(forecast(sessions, QUERY, plan_changes=changes, keep=False))
    return kept


def change(sessions: sessionmaker[Session], model: type[Any], key: str, **values: Any) -> None:
    with sessions() as session:
        row = session.get(model, key)
        for name, value in values.items():
            setattr(row, name, value)
        session.commit()


def test_the_kept_forecast_equals_walking_everything_after_each_change(
    pg_sessions: sessionmaker[Session], ids: dict[str, str]
) -> None:
    analytics_forecast_kept.forget_kept()
    first = both(pg_sessions)
    assert first[0][:5] == ("rest_of_month", 10000, 0, 4000, 1)  # renews on Jan 20
    # Next month: renews Feb 20, changes Feb 5, cancels Feb 10, meters Feb 1 (00:00Z).
    assert first[1][:5] == ("next_month", 40000, 0, 0, 4)
    state = analytics_forecast_kept._WALKED[str(pg_sessions.kw["bind"].url)]
    untouched = state.kept[ids["changes"]]

    # Renewed: its period moves to [Jan 20, Feb 20); Jan 20 is no longer ahead.
    change(pg_sessions, Subscription, ids["renews"], current_period_start=at("2026-01-20"),
           current_period_end=at("2026-02-20"))  # fmt: skip
    renewed = both(pg_sessions)
    assert (renewed[0][1], renewed[1][1]) == (0, 40000)
    assert state.kept[ids["changes"]] is untouched  # only the renewed one read again

    # A downgrade scheduled for period end: its Feb 5 invoice at 60.00.
    downgrade = PlanChanges(pending={ids["changes"]: ids["cheaper"]})
    assert both(pg_sessions, downgrade)[1][1] == 36000

    # Canceled at period end: nothing on Feb 10.
    change(pg_sessions, Subscription, ids["cancels"], cancel_at_period_end=True)
    assert both(pg_sessions)[1][1:5] == (30000, 0, 0, 3)

    # Usage recorded: two calls (10.00) in 14 days of [Jan 1, Feb 1) run at 10/14 a day,
    # billed with its Feb 1 invoice for the 31 days: 22.142... -> 22.14.
    results = ingest(pg_sessions, [
        UsageEventIn(f"e{n}", f"calls_{ids['tag']}", at("2026-01-03"),
                     subscription_id=ids["meters"])
        for n in (1, 2)
    ])  # fmt: skip
    assert [r.status for r in results] == ["accepted", "accepted"]
    assert both(pg_sessions)[1][2] == 2214

    # A forever coupon of half: its draft is its own (5,000).
    with pg_sessions() as session:
        session.add(SubscriptionDiscount(id=f"sd_{ids['coupon']}", subscription_id=ids["renews"],
                                         coupon_id=ids["coupon"], redeemed_at=NOW))  # fmt: skip
        session.commit()
    assert both(pg_sessions)[1][1] == 25000

    # A credit balance of 30.00: the customer's subscriptions are drafted on their own
    # (out of the shared drafts); the forecast bills the invoices' totals, before the
    # credit they spend, so the figures stay.
    with pg_sessions() as session:
        session.add(CreditTransaction(business_key=f"credit:{ids['tag']}", currency="SEK",
                                      customer_id=ids["customer"], amount=3000))  # fmt: skip
        session.commit()
    assert both(pg_sessions)[1][1] == 25000
    with pg_sessions() as session:
        session.add(CreditTransaction(business_key=f"spent:{ids['tag']}", currency="SEK",
                                      customer_id=ids["customer"], amount=-3000))  # fmt: skip
        session.commit()

    # The customer's zone: the calendars are found on it again (the same dates here).
    change(pg_sessions, Customer, ids["customer"], time_zone="Europe/Stockholm")
    assert both(pg_sessions)[1][1] == 25000

    # The open invoice paid: nothing left to recover.
    with pg_sessions() as session:
        ledger_sql.append(session, f"kept:{ids['customer']}:x:paid", kind=K.INVOICE_PAID,
                          occurred_at=at("2026-01-14"), recorded_at=at("2026-01-14"),
                          currency="SEK", customer_id=ids["customer"],
                          invoice_id=f"x_{ids['tag']}", amount=4000)  # fmt: skip
        session.commit()
    assert both(pg_sessions)[0][3] == 0

    # Left the counted statuses: out of the forecast (3 walked, its Feb 5 gone).
    change(pg_sessions, Subscription, ids["changes"], status="canceled")
    assert both(pg_sessions)[1][1:6] == (15000, 2214, 0, 2, 3)
