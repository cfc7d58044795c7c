"""Alerts on the real ingestion path and the real workflow (time-skipping server).

A metered subscription (a 1,000円 plan and 10円 per GB) with a bill alert at 80 % and
100 % of a 5,000円 budget: usage crossing both sends exactly two emails and writes two
``alert.triggered`` ledger entries in the period; the same events sent again add
nothing; after the renewal the thresholds fire again. A hard cap refuses the event
that would pass it and accepts the one that reaches it exactly.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from billing.analytics.ledger import EntryKind
from kakin.adapters.mailer import OutboxMailer
from kakin.adapters.rendering import make_template_env
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import alerts, catalog, subscriptions
from kakin.services.alert_emails import AlertMail
from kakin.services.usage import UsageEventIn, ingest
from models.repositories import ledger as ledger_sql
from models.tables import AuditLog, EmailMessage, Subscription
from tests.conftest import SELLER
from tests.helpers import advance_to, customer_and_price, eventually

BUDGET_ALERT = alerts.AlertSpec(
    watches="bill",
    name="Monthly budget",
    budget=Decimal(5000),
    thresholds=(alerts.Threshold(percent=Decimal(80)), alerts.Threshold(percent=Decimal(100))),
)


def period_of(sessions: sessionmaker[Session], subscription_id: str) -> tuple[datetime, datetime]:
    with sessions() as session:
        row = session.get(Subscription, subscription_id)
        assert row is not None and row.current_period_start and row.current_period_end
        return row.current_period_start, row.current_period_end


async def metered_subscription(
    env: WorkflowEnvironment,
    sessions: sessionmaker[Session],
    stripe: StripeGateway,
    task_queue: str,
    *,
    aggregation: str = "sum",
) -> tuple[str, str, datetime, datetime]:
    """A running subscription billing 10円 per unit of a new metric; its id, the metric's
    code and its open period."""
    customer_id, plan_id = customer_and_price(sessions, stripe, unit_amount=1000)
    code = f"gb_{secrets.token_hex(4)}"
    catalog.create_metric(sessions, code=code, name="GB", aggregation=aggregation,
                          property=None if aggregation == "count" else "gb")  # fmt: skip
    metered = catalog.create_price(
        sessions, product_name="Storage", currency="JPY",
        pricing_model="per_unit", unit_amount=10, metric_code=code,
    )  # fmt: skip
    start = (await env.get_current_time()) + timedelta(hours=1)
    subscription_id = await subscriptions.start_subscription(
        env.client, sessions, task_queue=task_queue,
        customer_id=customer_id, price_id=plan_id, start_at=start,
    )  # fmt: skip
    await advance_to(env, start + timedelta(minutes=1))

    def opened() -> bool:
        with sessions() as session:
            row = session.get(Subscription, subscription_id)
            return row is not None and row.current_period_start is not None

    await eventually(opened, what="the first period opens")
    catalog.add_item(sessions, subscription_id=subscription_id, price_id=metered)
    return subscription_id, code, *period_of(sessions, subscription_id)


def usage(
    subscription_id: str, code: str, at: datetime, *amounts: int, tag: str
) -> list[UsageEventIn]:
    return [
        UsageEventIn(event_id=f"{tag}-{n}", metric=code, timestamp=at + timedelta(hours=n),
                     properties={"gb": amount}, subscription_id=subscription_id)
        for n, amount in enumerate(amounts)
    ]  # fmt: skip


def alert_emails(sessions: sessionmaker[Session], subscription_id: str) -> list[EmailMessage]:
    with sessions() as session:
        return list(session.scalars(
            select(EmailMessage).where(EmailMessage.subscription_id == subscription_id,
                                       EmailMessage.kind == "alert_triggered")
            .order_by(EmailMessage.id)))  # fmt: skip


def notices(sessions: sessionmaker[Session], subscription_id: str, kind: EntryKind) -> list[dict]:
    with sessions() as session:
        return [
            {"occurred_at": e.occurred_at, **e.details}
            for e in ledger_sql.entries(session, kinds=[kind])
            if e.subscription_id == subscription_id
        ]


async def test_thresholds_fire_once_per_period_and_again_after_the_renewal(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
    outbox: Path,
) -> None:
    mail = AlertMail(OutboxMailer(outbox), make_template_env(), SELLER)
    subscription_id, code, start, end = await metered_subscription(
        time_env, pg_sessions, stripe_gateway, task_queue
    )
    alert = alerts.create_alert(pg_sessions, BUDGET_ALERT, subscription_id=subscription_id,
                                actor="test")  # fmt: skip
    assert alert.levels == ["4000", "5000"]
    assert alert.current == "1000"  # the plan, before any usage

    # 1,000 + 250 GB x 10 = 3,500円: below both; then 4,500円 (80 %), then 5,500円 (100 %).
    first = usage(subscription_id, code, start, 250, 100, 100, tag="a")
    results = ingest(pg_sessions, first, mail=mail)
    assert [r.status for r in results] == ["accepted"] * 3
    emails = alert_emails(pg_sessions, subscription_id)
    assert len(emails) == 2 and all(e.status == "sent" for e in emails)
    assert "4,000円" in emails[0].subject and "5,000円" in emails[1].subject
    fired = notices(pg_sessions, subscription_id, EntryKind.ALERT_TRIGGERED)
    assert [n["threshold"] for n in fired] == ["4000", "5000"]
    assert {n["period_start"] for n in fired} == {start.isoformat()}
    pages = [path.read_text() for path in sorted(outbox.glob("alert_*.html"))]
    assert len(pages) == 2
    for page in pages:  # the amount, the budget, the period and the billing page's link
        assert "5,500円" in page and "ご予算" in page and "5,000円" in page
        assert "ご利用期間" in page
        assert f"billing?subscription={subscription_id}" in page

    # The same events again: duplicates, nothing new sent or recorded.
    again = ingest(pg_sessions, first, mail=mail)
    assert [r.status for r in again] == ["duplicate"] * 3
    assert len(alert_emails(pg_sessions, subscription_id)) == 2
    assert len(notices(pg_sessions, subscription_id, EntryKind.ALERT_TRIGGERED)) == 2
    shown = alerts.get_alert(pg_sessions, alert.id, subscription_id=subscription_id)
    assert shown.current == "5500" and shown.fired == ["4000", "5000"]

    # The renewal opens a new period: both thresholds are armed again.
    await advance_to(time_env, end + timedelta(minutes=5))
    await eventually(lambda: period_of(pg_sessions, subscription_id)[0] == end,
                     what="the renewal opens the next period")  # fmt: skip
    assert alerts.get_alert(pg_sessions, alert.id, subscription_id=subscription_id).fired == []
    ingest(pg_sessions, usage(subscription_id, code, end, 450, tag="b"), mail=mail)
    assert len(alert_emails(pg_sessions, subscription_id)) == 4
    fired = notices(pg_sessions, subscription_id, EntryKind.ALERT_TRIGGERED)
    assert [(n["period_start"], n["threshold"]) for n in fired[2:]] == [
        (end.isoformat(), "4000"),
        (end.isoformat(), "5000"),
    ]


async def test_a_hard_cap_accepts_the_event_reaching_it_and_refuses_the_one_passing_it(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    subscription_id, code, start, _ = await metered_subscription(
        time_env, pg_sessions, stripe_gateway, task_queue
    )
    spec = alerts.AlertSpec(watches="usage", metric=code, hard_cap=Decimal(100),
                            thresholds=(alerts.Threshold(value=Decimal(50)),))  # fmt: skip
    alert = alerts.create_alert(pg_sessions, spec, subscription_id=subscription_id, actor="test")

    # 60 + 40 is exactly the cap: accepted. One more GB would pass it: refused.
    results = ingest(pg_sessions, usage(subscription_id, code, start, 60, 40, 1, tag="c"))
    assert [r.status for r in results] == ["accepted", "accepted", "rejected"]
    assert "usage cap of 100" in results[2].reason and "raise the cap" in results[2].reason
    shown = alerts.get_alert(pg_sessions, alert.id, subscription_id=subscription_id)
    assert shown.current == "100" and shown.cap_reached
    assert len(notices(pg_sessions, subscription_id, EntryKind.USAGE_CAP_REACHED)) == 1
    # The accepted ones sent again are duplicates, not refusals.
    replay = ingest(pg_sessions, usage(subscription_id, code, start, 60, 40, tag="c"))
    assert [r.status for r in replay] == ["duplicate", "duplicate"]

    # Support raises the cap (audited); the refused event now counts.
    raised = alerts.update_alert(pg_sessions, alert.id, {"hard_cap": Decimal(150)},
                                 subscription_id=subscription_id, actor="support:hanako",
                                 reason="customer asked")  # fmt: skip
    assert raised.hard_cap == "150" and not raised.cap_reached
    with pg_sessions() as session:
        audit = session.scalars(select(AuditLog).where(AuditLog.entity_id == alert.id,
                                AuditLog.action == "usage_cap_changed")).one()  # fmt: skip
        assert (audit.actor, audit.details["from"], audit.details["to"]) == (
            "support:hanako",
            "100",
            "150",
        )
    results = ingest(pg_sessions, usage(subscription_id, code, start, 60, 40, 1, tag="c"))
    assert [r.status for r in results] == ["duplicate", "duplicate", "accepted"]
