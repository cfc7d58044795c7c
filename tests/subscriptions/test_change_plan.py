"""Changing plan mid-subscription: upgrades now with a prorated charge, downgrades at
the end of the paid period, and nothing changes for a request that is refused."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from billing.proration import prorate
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import catalog, errors, subscriptions
from tests.helpers import (
    DECLINED_CARD,
    advance_to,
    customer_and_price,
    observe,
    record_histories,
    status_of,
)


async def _subscribe(
    env: WorkflowEnvironment,
    sessions: sessionmaker[Session],
    stripe: StripeGateway,
    task_queue: str,
    *,
    amount: int,
    card: str = "4242424242424242",
) -> tuple[str, str, timedelta]:
    customer_id, price_id = customer_and_price(sessions, stripe, unit_amount=amount, card=card)
    start = (await env.get_current_time()) + timedelta(hours=1)
    subscription_id = await subscriptions.start_subscription(
        env.client, sessions, task_queue=task_queue,
        customer_id=customer_id, price_id=price_id, start_at=start,
    )  # fmt: skip
    await advance_to(env, start + timedelta(days=10))
    return subscription_id, price_id, start - (await env.get_current_time())


def other_price(sessions: sessionmaker[Session], amount: int, **kwargs: str) -> str:
    return catalog.create_price(
        sessions, product_name="Other plan", currency=kwargs.get("currency", "JPY"),
        unit_amount=amount, interval=kwargs.get("interval", "month"),
    )  # fmt: skip


async def test_an_upgrade_charges_the_prorated_difference_now(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    subscription_id, old_price, _ = await _subscribe(
        time_env, pg_sessions, stripe_gateway, task_queue, amount=3000
    )
    pro = other_price(pg_sessions, 9800)
    preview = subscriptions.preview_plan_change(
        pg_sessions, subscription_id, price_id=pro, at=await time_env.get_current_time()
    )
    assert preview is not None and 0 < preview.net < 9800 - 3000

    view = await subscriptions.change_plan(
        time_env.client, pg_sessions, subscription_id,
        price_id=pro, requested_by="support:ken", reason="needs more seats",
    )  # fmt: skip
    assert (view.status, view.price_id, view.pending_price_id) == ("active", pro, None)

    seen = observe(pg_sessions, subscription_id)
    assert len(seen.invoices) == 2
    first, proration = seen.invoices[0], seen.invoices[1]
    changed = next(a for a in seen.audit if a.action == "plan_changed")
    expected = prorate(
        old_amount=3000, new_amount=9800, period_start=first.period_start,
        period_end=first.period_end, at=changed.occurred_at,
    )  # fmt: skip
    assert [line.amount for line in proration.lines] == [-expected.credit, expected.charge]
    assert (proration.total, proration.status) == (expected.net, "paid")
    assert abs(preview.net - expected.net) <= 10, "the preview agrees with the invoice"
    assert proration.number is not None and proration.period_end == first.period_end
    assert (changed.actor, changed.reason) == ("support:ken", "needs more seats")
    assert changed.details == {"from_price": old_price, "to_price": pro}
    assert seen.email_kinds == ["receipt", "receipt"]

    # The renewal bills the new plan in full.
    await advance_to(time_env, first.period_end + timedelta(hours=1))
    seen = observe(pg_sessions, subscription_id)
    assert [i.total for i in seen.invoices] == [3000, expected.net, 9800]
    await record_histories(time_env.client, subscription_id, "upgrade")


async def test_a_downgrade_waits_for_the_end_of_the_paid_period(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    subscription_id, old_price, _ = await _subscribe(
        time_env, pg_sessions, stripe_gateway, task_queue, amount=9800
    )
    lite = other_price(pg_sessions, 3000)
    now = await time_env.get_current_time()
    assert (
        subscriptions.preview_plan_change(pg_sessions, subscription_id, price_id=lite, at=now)
        is None
    )

    view = await subscriptions.change_plan(
        time_env.client, pg_sessions, subscription_id,
        price_id=lite, requested_by="support:ken", reason="fewer seats",
    )  # fmt: skip
    assert (view.price_id, view.pending_price_id) == (old_price, lite)
    seen = observe(pg_sessions, subscription_id)
    assert len(seen.invoices) == 1, "a downgrade must not invoice now"
    scheduled = [a for a in seen.audit if a.action == "plan_change_scheduled"]
    assert [a.actor for a in scheduled] == ["support:ken"]

    await advance_to(time_env, view.current_period_end + timedelta(hours=1))  # type: ignore[operator]
    seen = observe(pg_sessions, subscription_id)
    assert [i.total for i in seen.invoices] == [9800, 3000]
    status = await status_of(time_env, subscription_id)
    assert (status.price_id, status.pending_price_id) == (lite, None)
    await record_histories(time_env.client, subscription_id, "downgrade")


async def test_refused_plan_changes_change_nothing(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    subscription_id, old_price, _ = await _subscribe(
        time_env, pg_sessions, stripe_gateway, task_queue, amount=3000, card=DECLINED_CARD
    )
    for price, message in [
        (other_price(pg_sessions, 9800, currency="USD"), "billed in JPY"),
        (other_price(pg_sessions, 9800, interval="year"), "keeps the billing interval"),
        ("price_missing", "does not exist"),
    ]:
        with pytest.raises(errors.InvalidRequestError, match=message):
            await subscriptions.change_plan(
                time_env.client, pg_sessions, subscription_id, price_id=price, requested_by="x"
            )
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await subscriptions.change_plan(
            time_env.client, pg_sessions, subscription_id,
            price_id=other_price(pg_sessions, 9800), requested_by="x",
        )  # fmt: skip
    assert "can change plan; it is past_due" in str(refused.value.cause)
    seen = observe(pg_sessions, subscription_id)
    assert len(seen.invoices) == 1
    assert not [a for a in seen.audit if a.action.startswith("plan_change")]
    assert (await status_of(time_env, subscription_id)).price_id == old_price
