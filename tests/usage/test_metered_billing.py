"""Metered billing end to end: 10,000 usage events in a month, billed once, in arrears.

The real workflow on the time-skipping server, real PostgreSQL, localstripe. One
subscription holds ten metered prices: each aggregation (count, sum, max, unique
count, latest) on graduated tiers and on volume tiers. The expected amounts are
worked out here with plain arithmetic, independent of billing/rating.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import subscriptions
from kakin.services.invoice_drafts import upcoming_draft
from kakin.services.usage import UsageEventIn, ingest
from models.repositories import subscriptions as subscription_sql
from models.repositories.common import new_id
from models.tables import BillableMetric, Price, SubscriptionItem
from tests.helpers import customer_and_price, observe, record_histories

TIERS: list[dict[str, Any]] = [
    {"up_to": "1000", "unit_amount": "1", "flat_amount": 0},
    {"up_to": "5000", "unit_amount": "0.5", "flat_amount": 0},
    {"up_to": None, "unit_amount": "0.1", "flat_amount": 100},
]
# (aggregation, property): 2,000 events each, 10,000 in all per subscription.
METRICS = [("count", None), ("sum", "gb"), ("max", "seats"), ("unique_count", "user"),
           ("latest", "level")]  # fmt: skip
EVENTS_PER_METRIC = 2000


def graduated(quantity: Decimal) -> int:
    amount, lower = Decimal(0), Decimal(0)
    for tier in TIERS:
        top = None if tier["up_to"] is None else Decimal(tier["up_to"])
        if lower and quantity <= lower:
            break
        units = quantity - lower if top is None else min(quantity, top) - lower
        amount += units * Decimal(tier["unit_amount"]) + tier["flat_amount"]
        if top is None:
            break
        lower = top
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def volume(quantity: Decimal) -> int:
    for tier in TIERS:
        if tier["up_to"] is None or quantity <= Decimal(tier["up_to"]):
            amount = quantity * Decimal(tier["unit_amount"]) + tier["flat_amount"]
            return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    raise AssertionError("unreachable")


def add_metered_prices(sessions: sessionmaker[Session], subscription_id: str) -> dict[str, str]:
    """A metric per aggregation, each billed by a graduated and a volume price."""
    codes = {}
    with sessions() as session:
        subscription = subscription_sql.subscription(session, subscription_id)
        for aggregation, prop in METRICS:
            metric = BillableMetric(
                id=new_id("bm"),
                code=f"{aggregation}_{new_id('m')}",
                name=f"{aggregation} metric",
                aggregation=aggregation,
                property=prop,
            )
            session.add(metric)
            codes[aggregation] = metric.code
            for model in ("graduated", "volume"):
                price = Price(
                    id=new_id("price"),
                    product_id=subscription.price.product_id,
                    nickname=f"{aggregation} ({model})",
                    currency="JPY",
                    unit_amount=0,
                    interval="month",
                    pricing_model=model,
                    tiers=TIERS,
                    metric=metric,
                )
                session.add(price)
                subscription.items.append(SubscriptionItem(id=new_id("si"), price=price))
        session.commit()
    return codes


def month_of_events(
    customer_id: str, codes: dict[str, str], start: datetime, end: datetime
) -> tuple[list[UsageEventIn], dict[str, Decimal]]:
    """10,000 events spread over [start, end) and the quantity each metric should reach."""
    step = (end - start) / (EVENTS_PER_METRIC + 1)
    events, expected = [], {}
    for aggregation, _ in METRICS:
        values = []
        for n in range(EVENTS_PER_METRIC):
            properties = {
                "gb": f"{(n % 7) * Decimal('0.25')}",
                "seats": n % 37,
                "user": f"u{n % 613}",
                "level": n % 1000,
            }
            events.append(
                UsageEventIn(
                    event_id=f"{aggregation}-{n}",
                    metric=codes[aggregation],
                    timestamp=start + step * (n + 1),
                    properties=properties,
                    customer_id=customer_id,
                )
            )
            values.append(properties)
        expected[aggregation] = {
            "count": Decimal(len(values)),
            "sum": sum((Decimal(v["gb"]) for v in values), Decimal(0)),
            "max": Decimal(max(v["seats"] for v in values)),
            "unique_count": Decimal(len({v["user"] for v in values})),
            "latest": Decimal(values[-1]["level"]),
        }[aggregation]
    return events, expected


async def test_a_month_of_usage_is_billed_once_per_aggregation_in_both_tier_models(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    start = (await time_env.get_current_time()) + timedelta(hours=1)
    customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway, unit_amount=1000)
    subscription_id = await subscriptions.start_subscription(
        time_env.client,
        pg_sessions,
        task_queue=task_queue,
        customer_id=customer_id,
        price_id=price_id,
        start_at=start,
    )
    codes = add_metered_prices(pg_sessions, subscription_id)

    await time_env.sleep(start + timedelta(minutes=5) - await time_env.get_current_time())
    first = observe(pg_sessions, subscription_id).invoices[0]
    period_start, period_end = first.period_start, first.period_end
    # The first invoice bills the plan in advance; there is no usage to bill yet.
    assert [line.kind for line in first.lines] == ["subscription"]

    events, expected = month_of_events(customer_id, codes, period_start, period_end)
    assert len(events) == 10_000
    for offset in range(0, len(events), 1000):
        results = ingest(pg_sessions, events[offset : offset + 1000])
        assert {r.status for r in results} == {"accepted"}
    for offset in range(0, len(events), 1000):  # a client resends everything
        results = ingest(pg_sessions, events[offset : offset + 1000])
        assert {r.status for r in results} == {"duplicate"}

    status = await subscriptions.subscription_status(time_env.client, subscription_id)
    assert status.next_period_start == period_end
    assert status.next_period_end is not None
    with pg_sessions() as session:
        preview = upcoming_draft(
            session,
            subscription_sql.subscription(session, subscription_id),
            next_start=status.next_period_start,
            next_end=status.next_period_end,
        )

    await time_env.sleep(period_end + timedelta(hours=1) - await time_env.get_current_time())

    seen = observe(pg_sessions, subscription_id)
    assert len(seen.invoices) == 2
    renewal = seen.invoices[1]
    usage = {line.description: line for line in renewal.lines if line.kind == "usage"}
    assert len(usage) == 10
    billed = 1000
    for aggregation, _ in METRICS:
        for model, price_of in (("graduated", graduated), ("volume", volume)):
            line = usage[f"{aggregation} ({model})"]
            quantity = expected[aggregation]
            assert Decimal(line.usage_quantity or "") == quantity, aggregation
            assert line.amount == price_of(quantity), (aggregation, model, quantity)
            assert (line.period_start, line.period_end) == (period_start, period_end)
            billed += line.amount
    assert renewal.total == billed
    assert renewal.status == "paid"
    assert [a.status for a in seen.attempts] == ["succeeded", "succeeded"]
    # The preview taken before the period closed is the invoice that came out.
    assert [(x.description, x.usage_quantity, x.amount) for x in preview.lines] == [
        (x.description, x.usage_quantity, x.amount) for x in renewal.lines
    ]
    assert preview.totals.total == renewal.total


async def test_cancelling_bills_the_usage_of_the_last_period(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    start = (await time_env.get_current_time()) + timedelta(hours=1)
    customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway, unit_amount=1000)
    subscription_id = await subscriptions.start_subscription(
        time_env.client, pg_sessions, task_queue=task_queue, customer_id=customer_id,
        price_id=price_id, start_at=start,
    )  # fmt: skip
    codes = add_metered_prices(pg_sessions, subscription_id)
    await time_env.sleep(start + timedelta(days=3) - await time_env.get_current_time())
    first = observe(pg_sessions, subscription_id).invoices[0]
    calls = [
        UsageEventIn(f"c{n}", codes["count"], first.period_start + timedelta(days=1),
                     customer_id=customer_id)
        for n in range(1500)
    ]  # fmt: skip
    results = ingest(pg_sessions, calls[:1000]) + ingest(pg_sessions, calls[1000:])
    assert {r.status for r in results} == {"accepted"}

    await subscriptions.cancel_subscription(
        time_env.client, subscription_id, reason="closing the account", at_period_end=False,
        requested_by="support:ken",
    )  # fmt: skip
    await time_env.sleep(timedelta(hours=1))

    seen = observe(pg_sessions, subscription_id)
    assert seen.status == "canceled"
    assert len(seen.invoices) == 2
    # The final invoice covers the same period as the first: find it by id, not order.
    (final,) = [invoice for invoice in seen.invoices if invoice.id != first.id]
    usage = {line.description: line.amount for line in final.lines}
    # 1,500 calls: graduated 1,000 x 1 + 500 x 0.5 = 1,250; volume 1,500 x 0.5 = 750.
    assert usage == {"count (graduated)": 1250, "count (volume)": 750} | {
        f"{aggregation} ({model})": 0
        for aggregation, _ in METRICS[1:]
        for model in ("graduated", "volume")
    }
    assert (final.total, final.status) == (2000, "paid")
    assert (final.period_start, final.period_end) == (first.period_start, first.period_end)
    assert seen.email_kinds == ["receipt", "receipt", "canceled"]
    # Events after the end are refused: the subscription takes no more usage.
    late = ingest(
        pg_sessions,
        [UsageEventIn("late", codes["count"], first.period_start + timedelta(days=2),
                      customer_id=customer_id)],
    )  # fmt: skip
    assert late[0].status == "rejected"
    await record_histories(time_env.client, subscription_id, "final_usage")
