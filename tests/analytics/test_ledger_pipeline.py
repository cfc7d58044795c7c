"""The ledger the real pipeline writes: a subscription's life on the time-skipping
server, each change once, with the MRR before and after and the billing clock.

What is asserted is the ledger a finance figure is computed from (kinds, amounts, MRR,
statuses, times), next to the invoices and charges the customer sees.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import catalog, payments, subscriptions
from tests.analytics.ledger_rows import entries_of, mrr_path
from tests.helpers import (
    DECLINED_CARD,
    OK_CARD,
    advance_to,
    customer_and_price,
    observe,
    status_of,
)

JPY_PLAN = 3000


def near(moment: datetime, expected: datetime) -> bool:
    return timedelta(0) <= moment - expected < timedelta(seconds=5)


async def test_a_subscriptions_life_writes_each_change_once(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    """Trial, conversion, upgrade now, pause, resume, a forever coupon, a downgrade at the
    period end, cancel now: the entries in order, and each invoice once."""
    customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway, unit_amount=JPY_PLAN)
    pro = catalog.create_price(
        pg_sessions, product_name="Max plan", currency="JPY", unit_amount=5000, interval="month"
    )
    start = (await time_env.get_current_time()) + timedelta(hours=1)
    subscription_id = await subscriptions.start_subscription(
        time_env.client, pg_sessions, task_queue=task_queue,
        customer_id=customer_id, price_id=price_id, start_at=start, trial_days=7,
    )  # fmt: skip
    trial_end = start + timedelta(days=7)
    await advance_to(time_env, trial_end + timedelta(days=10))
    await subscriptions.change_plan(
        time_env.client, pg_sessions, subscription_id, price_id=pro, requested_by="support:ken"
    )
    await advance_to(time_env, trial_end + timedelta(days=11))
    await subscriptions.pause_subscription(
        time_env.client, subscription_id, reason="travelling", requested_by="support:ken"
    )
    await advance_to(time_env, trial_end + timedelta(days=18))
    resumed = await subscriptions.resume_subscription(
        time_env.client, subscription_id, requested_by="support:ken"
    )
    code = f"FOREVER10-{subscription_id}"
    catalog.create_coupon(pg_sessions, code=code, name="10% off", duration="forever",
                          percent_off="10")  # fmt: skip
    catalog.redeem_coupon(
        pg_sessions, subscription_id=subscription_id, code=code,
        at=await time_env.get_current_time(),
    )  # fmt: skip
    await subscriptions.change_plan(
        time_env.client, pg_sessions, subscription_id, price_id=price_id,
        requested_by="support:ken",
    )  # fmt: skip
    renewal = resumed.current_period_end
    assert renewal is not None
    await advance_to(time_env, renewal + timedelta(hours=1))
    await subscriptions.cancel_subscription(
        time_env.client, subscription_id, reason="closing", at_period_end=False,
        requested_by="support:ken",
    )  # fmt: skip
    assert await subscriptions.handle(time_env.client, subscription_id).result() == "canceled"

    entries = entries_of(pg_sessions, subscription_id)
    assert mrr_path(entries) == [
        ("subscription.started", 0, 0, "", "trialing"),
        ("trial.converted", 0, 3000, "trialing", "active"),
        ("subscription.plan_changed", 3000, 5000, "active", "active"),
        ("subscription.paused", 5000, 0, "active", "paused"),
        ("subscription.resumed", 0, 5000, "paused", "active"),
        ("coupon.applied", 5000, 4500, "active", "active"),  # forever 10 % off
        ("subscription.plan_changed", 4500, 2700, "active", "active"),  # at the period end
        ("subscription.canceled", 2700, 0, "active", "canceled"),
    ]
    kinds = [str(e.kind) for e in entries]
    assert kinds == [
        "subscription.started",
        "trial.converted",
        "invoice.finalized", "payment.succeeded", "invoice.paid",  # the first period
        "subscription.plan_changed",
        "invoice.finalized", "payment.succeeded", "invoice.paid",  # the proration
        "subscription.paused",
        "subscription.resumed",
        "coupon.applied",
        "subscription.plan_changed",
        "invoice.finalized", "payment.succeeded", "invoice.paid",  # the renewal
        "subscription.canceled",
    ]  # fmt: skip

    seen = observe(pg_sessions, subscription_id)
    invoiced = [(e.invoice_id, e.amount) for e in entries if e.kind == "invoice.finalized"]
    assert invoiced == [(i.id, i.total) for i in seen.invoices]
    assert [i.total for i in seen.invoices][2] == 2700
    paid = [(e.invoice_id, e.amount, e.attempt) for e in entries if e.kind == "invoice.paid"]
    assert paid == [(i.id, i.amount_paid, 1) for i in seen.invoices]
    finalized = [e for e in entries if e.kind == "invoice.finalized"]
    assert all(e.due_at == e.occurred_at for e in finalized)
    assert all(e.details["usage_amount"] == "0" for e in finalized)
    assert [e.occurred_at for e in finalized] == [i.finalized_at for i in seen.invoices]

    by_kind = {str(e.kind): e for e in entries}
    assert by_kind["subscription.started"].occurred_at == start
    # The workflow acts when its timer fires: at the time, or a moment after it.
    assert near(by_kind["trial.converted"].occurred_at, trial_end)
    # The downgrade waited for the renewal; the cancel is support's, now.
    downgrade = [e for e in entries if e.kind == "subscription.plan_changed"][-1]
    assert near(downgrade.occurred_at, renewal) and downgrade.actor == "workflow"
    assert by_kind["subscription.canceled"].actor == "support:ken"
    assert by_kind["subscription.paused"].details["reason"] == "travelling"
    # Every entry in the billing clock: written at (or, by a retry, just after) its time.
    assert all(
        timedelta(0) <= e.recorded_at - e.occurred_at < timedelta(minutes=5) for e in entries
    )
    assert {e.currency for e in entries} == {"JPY"}
    assert {e.customer_id for e in entries} == {customer_id}


async def test_a_declined_renewal_then_recovery(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    """Declines climb the ladder (past due keeps MRR, suspended drops it); a new card
    pays at once and the subscription is active again: MRR comes back."""
    customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway, card=DECLINED_CARD)
    start = (await time_env.get_current_time()) + timedelta(hours=1)
    subscription_id = await subscriptions.start_subscription(
        time_env.client, pg_sessions, task_queue=task_queue,
        customer_id=customer_id, price_id=price_id, start_at=start,
    )  # fmt: skip
    await advance_to(time_env, start + timedelta(days=15))
    assert (await status_of(time_env, subscription_id)).status == "suspended"
    await payments.update_payment_method(
        time_env.client, pg_sessions, stripe_gateway, subscription_id,
        card_number=OK_CARD, requested_by="support:hanako",
    )  # fmt: skip
    await advance_to(time_env, start + timedelta(days=15, minutes=1))
    assert (await status_of(time_env, subscription_id)).status == "active"

    entries = entries_of(pg_sessions, subscription_id)
    assert mrr_path(entries) == [
        ("subscription.started", 0, 3000, "", "active"),
        ("subscription.status_changed", 3000, 3000, "active", "past_due"),
        ("subscription.status_changed", 3000, 0, "past_due", "suspended"),
        ("subscription.status_changed", 0, 3000, "suspended", "active"),
    ]
    payments_seen = [
        (str(e.kind), e.attempt, e.dunning_step, e.amount)
        for e in entries
        if e.kind in ("payment.failed", "payment.succeeded", "invoice.paid")
    ]
    assert payments_seen == [
        ("payment.failed", 1, "", 3000),  # the renewal, day 0
        ("payment.failed", 2, "retry_1", 3000),  # day 3
        ("payment.failed", 3, "retry_2", 3000),  # day 7
        ("payment.succeeded", 4, "retry_3", 3000),  # the new card, day 15
        ("invoice.paid", 4, "retry_3", 3000),
    ]
    failed = [e for e in entries if e.kind == "payment.failed"]
    assert all(e.decline_code for e in failed)
    seen = observe(pg_sessions, subscription_id)
    assert [(e.occurred_at, e.decline_code) for e in failed] == [
        (a.attempted_at, a.decline_code) for a in seen.attempts if a.status == "declined"
    ]
    assert (entries[-1].status_after, entries[-1].actor) == ("active", "support:hanako")
    # The ladder counts from the first failure: suspended on its day 14.
    suspended = next(e for e in entries if e.status_after == "suspended")
    assert suspended.occurred_at == failed[0].occurred_at + timedelta(days=14)


async def test_a_cancel_at_period_end_churns_at_the_period_end(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway)
    start = (await time_env.get_current_time()) + timedelta(hours=1)
    subscription_id = await subscriptions.start_subscription(
        time_env.client, pg_sessions, task_queue=task_queue,
        customer_id=customer_id, price_id=price_id, start_at=start,
    )  # fmt: skip
    await advance_to(time_env, start + timedelta(days=10))
    await subscriptions.cancel_subscription(
        time_env.client, subscription_id, reason="too expensive", at_period_end=True,
        requested_by="support:ken",
    )  # fmt: skip
    await advance_to(time_env, start + timedelta(days=11))
    # Asked for, not yet in effect: the subscription still counts in full.
    assert mrr_path(entries_of(pg_sessions, subscription_id)) == [
        ("subscription.started", 0, 3000, "", "active"),
    ]
    period_end = (await status_of(time_env, subscription_id)).current_period_end
    assert period_end is not None
    await advance_to(time_env, period_end + timedelta(hours=1))
    assert await subscriptions.handle(time_env.client, subscription_id).result() == "canceled"

    entries = entries_of(pg_sessions, subscription_id)
    assert mrr_path(entries) == [
        ("subscription.started", 0, 3000, "", "active"),
        ("subscription.canceled", 3000, 0, "active", "canceled"),
    ]
    canceled = entries[-1]
    assert (canceled.occurred_at, canceled.actor) == (period_end, "support:ken")
    assert canceled.details["reason"] == "too expensive"
    assert [str(e.kind) for e in entries].count("invoice.finalized") == 1
