"""SubscriptionWorkflow on the time-skipping server with real activities.

Real PostgreSQL, the real stripe SDK against localstripe, the outbox mailer: each
test asserts what a customer or an operator would see (invoices, charges, emails,
statuses), not how the workflow got there.
"""

from __future__ import annotations

import calendar as monthrange
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.bundle import Activities
from billing import calendar
from kakin import contracts
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.runtime import build_stripe_worker
from kakin.services import errors, payments, subscriptions
from models.tables import Customer, Invoice, Subscription
from tests.helpers import (
    DECLINED_CARD,
    OK_CARD,
    advance_to,
    customer_and_price,
    observe,
    outbox_files,
    record_histories,
    run_histories,
    status_of,
)


def next_jan_31(now: datetime) -> datetime:
    candidate = datetime(now.year, 1, 31, 9, 0, tzinfo=UTC)
    return candidate if candidate > now else candidate.replace(year=now.year + 1)


async def test_twelve_monthly_renewals_from_jan_31(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
    outbox: Path,
) -> None:
    customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway, unit_amount=1980)
    anchor = next_jan_31(await time_env.get_current_time())
    subscription_id = await subscriptions.start_subscription(
        time_env.client,
        pg_sessions,
        task_queue=task_queue,
        customer_id=customer_id,
        price_id=price_id,
        start_at=anchor,
    )
    # The first period plus twelve renewals.
    expected = [calendar.period(anchor, calendar.Interval.MONTH, 1, i) for i in range(13)]
    await advance_to(time_env, expected[12].start + timedelta(hours=1))

    seen = observe(pg_sessions, subscription_id)
    assert [(i.period_start, i.period_end) for i in seen.invoices] == [
        (p.start, p.end) for p in expected
    ]
    # Jan 31 -> Feb 28/29 -> Mar 31 -> Apr 30: the anchor day comes back every month.
    assert [p.start.day for p in expected[:4]] == [31, expected[1].start.day, 31, 30]
    assert expected[1].start.day in (28, 29)
    assert all(i.status == "paid" and i.total == 1980 for i in seen.invoices)
    assert all(i.number is not None for i in seen.invoices)
    assert len({i.number for i in seen.invoices}) == 13
    # One charge per invoice, and Stripe holds exactly those charges.
    assert len(seen.attempts) == 13
    assert {a.invoice_id for a in seen.attempts} == {i.id for i in seen.invoices}
    assert all(a.status == "succeeded" for a in seen.attempts)
    for attempt in seen.attempts:
        intent = stripe_gateway.retrieve_intent(attempt.stripe_payment_intent_id or "")
        assert intent.status == "succeeded"
    # One receipt per invoice.
    assert seen.email_kinds == ["receipt"] * 13
    assert len(outbox_files(outbox)) == 13
    status = await status_of(time_env, subscription_id)
    assert status.status == "active"
    assert status.current_period_start == expected[12].start
    assert status.next_action == "renew"
    assert status.next_action_at == expected[12].end
    # What operators search by shows the coming renewal, though the run has not
    # continued as new since the twelfth (one run per twelve renewals: run-of-renewals).
    handle = time_env.client.get_workflow_handle(subscriptions.workflow_id(subscription_id))
    described = await handle.describe()
    assert described.typed_search_attributes.get(contracts.NEXT_RENEWAL_AT) == expected[12].end
    assert described.typed_search_attributes.get(contracts.SUBSCRIPTION_STATUS) == "active"
    runs = await run_histories(time_env.client, subscriptions.workflow_id(subscription_id))
    assert len(runs) == 2
    await record_histories(time_env.client, subscription_id, "renewals")


async def test_declined_card_walks_the_whole_ladder(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway, card=DECLINED_CARD)
    start = (await time_env.get_current_time()) + timedelta(hours=1)
    subscription_id = await subscriptions.start_subscription(
        time_env.client,
        pg_sessions,
        task_queue=task_queue,
        customer_id=customer_id,
        price_id=price_id,
        start_at=start,
    )
    ladder = [
        (0, "past_due", ["payment_failed"]),
        (3, "past_due", ["payment_failed", "payment_reminder"]),
        (7, "past_due", ["payment_failed", "payment_reminder", "payment_reminder"]),
        (14, "suspended", ["payment_failed", "payment_reminder", "payment_reminder", "suspended"]),
        (21, "suspended", [
            "payment_failed", "payment_reminder", "payment_reminder", "suspended", "final_notice",
        ]),
    ]  # fmt: skip
    for days, expected_status, expected_emails in ladder:
        await advance_to(time_env, start + timedelta(days=days, hours=1))
        status = await status_of(time_env, subscription_id)
        seen = observe(pg_sessions, subscription_id)
        assert (days, status.status, seen.status) == (days, expected_status, expected_status)
        assert seen.email_kinds == expected_emails, f"day {days}"
        assert status.outstanding_invoice is not None
        assert status.outstanding_invoice.amount_due == 3000
    # One initial attempt and three retries (days 3, 7, 21), every one declined.
    assert [a.status for a in seen.attempts] == ["declined"] * 4
    assert all(a.decline_code for a in seen.attempts)

    await advance_to(time_env, start + timedelta(days=30, hours=1))
    handle = subscriptions.handle(time_env.client, subscription_id)
    assert await handle.result() == "canceled"
    seen = observe(pg_sessions, subscription_id)
    assert seen.status == "canceled"
    assert [i.status for i in seen.invoices] == ["uncollectible"]
    assert seen.email_kinds[-1] == "canceled_unpaid"
    assert len(seen.invoices) == 1  # nothing new billed while past due or suspended
    transitions = [
        (a.from_status, a.to_status) for a in seen.audit if a.entity_type == "subscription"
    ]
    assert transitions == [
        ("active", "past_due"),
        ("past_due", "suspended"),
        ("suspended", "canceled"),
    ]
    await record_histories(time_env.client, subscription_id, "dunning_to_cancel")


async def _declined_subscription(
    env: WorkflowEnvironment,
    sessions: sessionmaker[Session],
    stripe: StripeGateway,
    task_queue: str,
) -> tuple[str, datetime]:
    customer_id, price_id = customer_and_price(sessions, stripe, card=DECLINED_CARD)
    start = (await env.get_current_time()) + timedelta(hours=1)
    subscription_id = await subscriptions.start_subscription(
        env.client,
        sessions,
        task_queue=task_queue,
        customer_id=customer_id,
        price_id=price_id,
        start_at=start,
    )
    return subscription_id, start


async def _new_card(
    env: WorkflowEnvironment,
    sessions: sessionmaker[Session],
    stripe: StripeGateway,
    subscription_id: str,
) -> None:
    await payments.update_payment_method(
        env.client,
        sessions,
        stripe,
        subscription_id,
        card_number=OK_CARD,
        requested_by="support:hanako",
    )


async def test_new_payment_method_recovers_from_past_due(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    subscription_id, start = await _declined_subscription(
        time_env, pg_sessions, stripe_gateway, task_queue
    )
    await advance_to(time_env, start + timedelta(days=4))
    assert (await status_of(time_env, subscription_id)).status == "past_due"

    await _new_card(time_env, pg_sessions, stripe_gateway, subscription_id)
    await advance_to(time_env, start + timedelta(days=4, minutes=1))

    status = await status_of(time_env, subscription_id)
    assert status.status == "active"
    assert status.outstanding_invoice is None
    assert status.next_action == "renew"
    seen = observe(pg_sessions, subscription_id)
    assert seen.status == "active"
    assert [i.status for i in seen.invoices] == ["paid"]
    assert [a.status for a in seen.attempts] == ["declined", "declined", "succeeded"]
    assert seen.email_kinds == ["payment_failed", "payment_reminder", "receipt"]
    # The next renewal bills normally on the anchored date.
    await advance_to(time_env, status.next_action_at + timedelta(hours=1))  # type: ignore[operator]
    seen = observe(pg_sessions, subscription_id)
    assert [i.status for i in seen.invoices] == ["paid", "paid"]
    assert seen.invoices[1].period_start == status.current_period_end
    await record_histories(time_env.client, subscription_id, "recovery_from_past_due")


async def test_new_payment_method_recovers_from_suspended(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    subscription_id, start = await _declined_subscription(
        time_env, pg_sessions, stripe_gateway, task_queue
    )
    await advance_to(time_env, start + timedelta(days=15))
    assert (await status_of(time_env, subscription_id)).status == "suspended"

    await _new_card(time_env, pg_sessions, stripe_gateway, subscription_id)
    await advance_to(time_env, start + timedelta(days=15, minutes=1))

    status = await status_of(time_env, subscription_id)
    assert status.status == "active"
    seen = observe(pg_sessions, subscription_id)
    assert seen.status == "active"
    assert [i.status for i in seen.invoices] == ["paid"]
    assert seen.email_kinds[-1] == "receipt"
    assert ("suspended", "active") in [(a.from_status, a.to_status) for a in seen.audit]
    recovered = [a for a in seen.audit if a.to_status == "active"]
    assert recovered[-1].actor == "support:hanako"
    await record_histories(time_env.client, subscription_id, "recovery_from_suspended")


async def test_cancel_now_stops_billing_at_once(
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
        time_env.client, subscription_id,
        reason="customer asked by phone", at_period_end=False, requested_by="support:ken",
    )  # fmt: skip
    assert await subscriptions.handle(time_env.client, subscription_id).result() == "canceled"
    await advance_to(time_env, start + timedelta(days=70))

    seen = observe(pg_sessions, subscription_id)
    assert seen.status == "canceled"
    assert len(seen.invoices) == 1  # no renewal after the cancellation
    assert seen.email_kinds == ["receipt", "canceled"]
    cancel = [a for a in seen.audit if a.to_status == "canceled"]
    assert len(cancel) == 1
    assert (cancel[0].actor, cancel[0].reason) == ("support:ken", "customer asked by phone")
    await record_histories(time_env.client, subscription_id, "cancel_now")


async def test_cancel_at_period_end_runs_out_the_paid_period(
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
        time_env.client, subscription_id,
        reason="too expensive", at_period_end=True, requested_by="support:ken",
    )  # fmt: skip
    await advance_to(time_env, start + timedelta(days=11))
    status = await status_of(time_env, subscription_id)
    assert (status.status, status.cancel_at_period_end, status.next_action) == (
        "active",
        True,
        "end",
    )
    period_end = status.current_period_end
    assert period_end is not None
    await advance_to(time_env, period_end + timedelta(hours=1))
    handle = subscriptions.handle(time_env.client, subscription_id)
    assert await handle.result() == "canceled"

    seen = observe(pg_sessions, subscription_id)
    assert seen.status == "canceled"
    assert len(seen.invoices) == 1  # the paid period ran out, no renewal
    assert seen.email_kinds == ["receipt", "canceled"]
    cancel = [a for a in seen.audit if a.to_status == "canceled"][-1]
    assert cancel.occurred_at == period_end
    assert cancel.reason == "too expensive"
    await record_histories(time_env.client, subscription_id, "cancel_at_period_end")


async def test_trial_then_first_invoice(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway, currency="USD",
                                               unit_amount=1250, locale="en")  # fmt: skip
    start = (await time_env.get_current_time()) + timedelta(hours=1)
    subscription_id = await subscriptions.start_subscription(
        time_env.client, pg_sessions, task_queue=task_queue,
        customer_id=customer_id, price_id=price_id, start_at=start, trial_days=14,
    )  # fmt: skip
    await advance_to(time_env, start + timedelta(days=13))
    status = await status_of(time_env, subscription_id)
    assert (status.status, status.next_action) == ("trialing", "start_billing")
    assert status.next_action_at == start + timedelta(days=14)
    assert observe(pg_sessions, subscription_id).invoices == []

    await advance_to(time_env, start + timedelta(days=14, hours=1))
    seen = observe(pg_sessions, subscription_id)
    assert seen.status == "active"
    assert len(seen.invoices) == 1
    invoice = seen.invoices[0]
    assert (invoice.period_start, invoice.total, invoice.currency, invoice.status) == (
        start + timedelta(days=14),
        1250,
        "USD",
        "paid",
    )
    assert seen.email_kinds == ["receipt"]
    await record_histories(time_env.client, subscription_id, "trial")


async def test_charges_run_on_the_rate_limited_stripe_queue_when_configured(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    activities: Activities,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    stripe_queue = f"{task_queue}-stripe"
    customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway)
    with ThreadPoolExecutor(max_workers=2) as executor:
        async with build_stripe_worker(
            time_env.client, task_queue=stripe_queue, activities=activities, executor=executor,
            stripe_rate_limit=25,
        ):  # fmt: skip
            subscription_id = await subscriptions.start_subscription(
                time_env.client, pg_sessions, task_queue=task_queue, customer_id=customer_id,
                price_id=price_id, stripe_task_queue=stripe_queue,
                start_at=(await time_env.get_current_time()) + timedelta(hours=1),
            )  # fmt: skip
            await time_env.sleep(timedelta(hours=2))
            assert [i.status for i in observe(pg_sessions, subscription_id).invoices] == ["paid"]
    queues = {
        event.activity_task_scheduled_event_attributes.activity_type.name: (
            event.activity_task_scheduled_event_attributes.task_queue.name
        )
        for history in await run_histories(time_env.client, f"subscription-{subscription_id}")
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    }
    # The renewal's invoice is issued and charged by one activity (run-of-renewals),
    # which runs where charges run; the receipt is rendered and sent on the main queue.
    assert queues["issue_and_charge_invoice"] == stripe_queue
    assert queues["render_and_email"] == task_queue


# -- the customer's calendar (issue 11, item 0) -----------------------------------------

JST = ZoneInfo("Asia/Tokyo")


def next_local(now: datetime, month: int, day: int, at: time, tz: ZoneInfo) -> datetime:
    """The next ``month``/``day`` at local time ``at`` in ``tz`` after ``now``."""
    year = now.astimezone(tz).year
    while (moment := datetime.combine(date(year, month, day), at, tzinfo=tz)) <= now:
        year += 1
    return moment


def local_days(invoices: list[Invoice], tz: ZoneInfo) -> list[tuple[date, date, time]]:
    """Each invoice's period as the customer's calendar has it: first day, the day the
    next period starts, and the renewal's local time."""
    return [
        (
            i.period_start.astimezone(tz).date(),
            i.period_end.astimezone(tz).date(),
            i.period_start.astimezone(tz).time(),
        )
        for i in invoices
    ]


def ja(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


async def test_a_tokyo_month_end_renews_on_the_local_month_end(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
    outbox: Path,
) -> None:
    """2027-01-31 08:00 JST is 2027-01-30 23:00 UTC: on the UTC calendar the anchor is
    the 30th, and February had no renewal. On Tokyo's: 2月28日, then 3月31日."""
    customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway)
    start = next_local(await time_env.get_current_time(), 1, 31, time(8), JST)
    year = start.year
    feb = date(year, 2, monthrange.monthrange(year, 2)[1])  # 28, or 29 in leap years
    subscription_id = await subscriptions.start_subscription(
        time_env.client, pg_sessions, task_queue=task_queue,
        customer_id=customer_id, price_id=price_id, start_at=start,
    )  # fmt: skip
    # Three invoices: issued 1月31日, 2月28日 and 3月31日, each at 08:00 JST.
    await advance_to(time_env, datetime.combine(date(year, 3, 31), time(9), tzinfo=JST))

    seen = observe(pg_sessions, subscription_id)
    eight = time(8)
    assert local_days(seen.invoices, JST) == [
        (date(year, 1, 31), feb, eight),
        (feb, date(year, 3, 31), eight),
        (date(year, 3, 31), date(year, 4, 30), eight),
    ]
    # What the customer reads: ご利用期間 with the last day, on the invoice and the receipt.
    printed = [
        f"{ja(date(year, 1, 31))}〜{ja(feb - timedelta(days=1))}",
        f"{ja(feb)}〜{ja(date(year, 3, 30))}",
        f"{ja(date(year, 3, 31))}〜{ja(date(year, 4, 29))}",
    ]
    for invoice, period in zip(seen.invoices, printed, strict=True):
        assert "ご利用期間" in (invoice.html or "") and period in (invoice.html or "")
    receipts = [page.read_text() for page in outbox.glob("email_receipt_*.html")]
    assert [sum(period in page for page in receipts) for period in printed] == [1, 1, 1]
    # The upcoming invoice (the status query) is on the same calendar: 4月30日〜5月31日.
    status = await status_of(time_env, subscription_id)
    assert status.next_period_start is not None and status.next_period_end is not None
    assert status.next_period_start.astimezone(JST) == datetime(year, 4, 30, 8, tzinfo=JST)
    assert status.next_period_end.astimezone(JST) == datetime(year, 5, 31, 8, tzinfo=JST)
    await record_histories(time_env.client, subscription_id, "local_calendar")


async def test_a_tokyo_first_of_the_month_renews_on_the_first_local(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    """2027-03-01 08:00 JST is Feb 28 23:00 UTC: on the UTC calendar it renewed on the
    29th (JST) of every month from March on."""
    customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway)
    start = next_local(await time_env.get_current_time(), 3, 1, time(8), JST)
    year = start.year
    subscription_id = await subscriptions.start_subscription(
        time_env.client, pg_sessions, task_queue=task_queue,
        customer_id=customer_id, price_id=price_id, start_at=start,
    )  # fmt: skip
    await advance_to(time_env, datetime.combine(date(year, 5, 1), time(9), tzinfo=JST))

    seen = observe(pg_sessions, subscription_id)
    assert local_days(seen.invoices, JST) == [
        (date(year, 3, 1), date(year, 4, 1), time(8)),
        (date(year, 4, 1), date(year, 5, 1), time(8)),
        (date(year, 5, 1), date(year, 6, 1), time(8)),
    ]
    assert f"{ja(date(year, 4, 1))}〜{ja(date(year, 4, 30))}" in (seen.invoices[1].html or "")


async def test_a_trial_across_dst_ends_at_the_local_time_it_started(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    """A 14-day trial in Los Angeles from 09:00 PST ends at 09:00 PDT (13 days 23 hours
    later), and the subscription renews at 09:00 local from then on."""
    la = ZoneInfo("America/Los_Angeles")
    customer_id, price_id = customer_and_price(
        pg_sessions, stripe_gateway, currency="USD", unit_amount=1250, locale="en"
    )
    with pg_sessions() as session:
        customer = session.get(Customer, customer_id)
        assert customer is not None
        customer.time_zone = "America/Los_Angeles"
        session.commit()
    # From the first Sunday of March: the second Sunday (DST begins) is inside the trial.
    start = next_local(await time_env.get_current_time(), 3, 1, time(9), la)
    start += timedelta(days=(6 - start.weekday()) % 7)
    subscription_id = await subscriptions.start_subscription(
        time_env.client, pg_sessions, task_queue=task_queue,
        customer_id=customer_id, price_id=price_id, start_at=start, trial_days=14,
    )  # fmt: skip
    # The customer changes zone during the trial: the subscription keeps the calendar
    # it started with (the snapshot), past and future periods alike.
    with pg_sessions() as session:
        customer = session.get(Customer, customer_id)
        assert customer is not None
        customer.time_zone = "Asia/Tokyo"
        session.commit()
    trial_end = datetime.combine(start.date() + timedelta(days=14), time(9), tzinfo=la)
    assert trial_end.astimezone(UTC) - start.astimezone(UTC) == timedelta(days=13, hours=23)
    await advance_to(time_env, trial_end + timedelta(days=31, hours=1))

    seen = observe(pg_sessions, subscription_id)
    assert [i.period_start for i in seen.invoices] == [
        trial_end.astimezone(UTC),
        datetime(trial_end.year, 4, 21, 9, tzinfo=la).astimezone(UTC),  # a month later
    ]
    assert all(i.period_start.astimezone(la).time() == time(9) for i in seen.invoices)
    await record_histories(time_env.client, subscription_id, "local_trial")


async def test_a_customer_zone_the_tz_database_does_not_know_is_refused_at_start(
    time_env: WorkflowEnvironment,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    """Refused with a sentence, before anything is stored: a workflow could compute no
    period on it (the API checks zones; rows written otherwise may hold anything)."""
    customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway)
    with pg_sessions() as session:
        customer = session.get(Customer, customer_id)
        assert customer is not None
        customer.time_zone = "Mars/Olympus"
        session.commit()
    with pytest.raises(errors.InvalidRequestError, match="'Mars/Olympus' is not an IANA"):
        await subscriptions.start_subscription(
            time_env.client, pg_sessions, task_queue=task_queue,
            customer_id=customer_id, price_id=price_id,
        )  # fmt: skip
    with pg_sessions() as session:
        assert (
            session.scalars(
                select(Subscription).where(Subscription.customer_id == customer_id)
            ).all()
            == []
        )
