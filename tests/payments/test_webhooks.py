"""Stripe webhooks: only genuine, fresh, first deliveries change anything.

Events are signed here exactly as Stripe signs them (HMAC-SHA256 of "t.payload" with
the endpoint secret) and verified by the real stripe SDK.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import create_app
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import customers as customers_service
from kakin.services import payments
from kakin.services import stripe_events as stripe_webhooks
from models.repositories import customers as customer_sql
from models.repositories import subscriptions as subscription_sql
from models.tables import WebhookEvent
from tests.helpers import (
    DECLINED_CARD,
    OK_CARD,
    SETTINGS,
    advance_to,
    connect_to,
    error_of,
    observe,
    pay_elsewhere,
    running,
    start_subscription,
    status_of,
)

SECRET = "whsec_kakin_test_secret"


def sign(payload: bytes, *, secret: str = SECRET, at: int | None = None) -> str:
    timestamp = int(time.time()) if at is None else at
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event(kind: str, obj: dict[str, Any], event_id: str | None = None) -> bytes:
    body = {
        "id": event_id or f"evt_{time.time_ns()}",
        "object": "event",
        "type": kind,
        "data": {"object": obj},
    }
    return json.dumps(body).encode()


def stored(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(WebhookEvent)) or 0)


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        (None, "header is missing"),
        ("t=1,v1=deadbeef", "does not verify"),
        ("garbage", "does not verify"),
    ],
)
async def test_unsigned_or_badly_signed_events_change_nothing(
    time_env: WorkflowEnvironment,
    pg_sessions: sessionmaker[Session],
    signature: str | None,
    reason: str,
) -> None:
    before = stored(pg_sessions)
    with pytest.raises(stripe_webhooks.WebhookRejectedError, match=reason):
        await stripe_webhooks.receive(
            time_env.client, pg_sessions, event("payment_intent.succeeded", {}), signature,
            secret=SECRET,
        )  # fmt: skip
    assert stored(pg_sessions) == before


async def test_a_stale_or_wrongly_keyed_signature_is_refused(
    time_env: WorkflowEnvironment, pg_sessions: sessionmaker[Session]
) -> None:
    payload = event("payment_intent.succeeded", {})
    for signature in (
        sign(payload, at=int(time.time()) - 3600),  # an hour old: outside the window
        sign(payload, at=int(time.time()) + 3600),  # an hour ahead: outside it too
        sign(payload, secret="whsec_someone_else"),
    ):
        with pytest.raises(stripe_webhooks.WebhookRejectedError, match="does not verify"):
            await stripe_webhooks.receive(
                time_env.client, pg_sessions, payload, signature, secret=SECRET, tolerance=300
            )
    with pytest.raises(stripe_webhooks.WebhookRejectedError, match="disabled"):
        await stripe_webhooks.receive(
            time_env.client, pg_sessions, payload, sign(payload), secret=""
        )


async def test_payment_succeeded_returns_a_past_due_subscription_to_active_once(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    subscription_id, start = await start_subscription(
        time_env, pg_sessions, stripe_gateway, task_queue, card=DECLINED_CARD
    )
    await advance_to(time_env, start + timedelta(days=1))
    outstanding = (await status_of(time_env, subscription_id)).outstanding_invoice
    assert outstanding is not None
    intent = await pay_elsewhere(
        stripe_gateway, pg_sessions, subscription_id, outstanding.invoice_id, 3000
    )
    ours = {"kakin_invoice_id": outstanding.invoice_id}
    payload = event(
        "payment_intent.succeeded", {"id": intent, "object": "payment_intent", "metadata": ours}
    )
    first = await stripe_webhooks.receive(
        time_env.client, pg_sessions, payload, sign(payload), secret=SECRET
    )
    replay = await stripe_webhooks.receive(
        time_env.client, pg_sessions, payload, sign(payload), secret=SECRET
    )
    assert (first.duplicate, first.signals) == (False, 1)
    assert (replay.duplicate, replay.signals) == (True, 0)
    await advance_to(time_env, start + timedelta(days=1, minutes=1))

    assert (await status_of(time_env, subscription_id)).status == "active"
    seen = observe(pg_sessions, subscription_id)
    assert [i.status for i in seen.invoices] == ["paid"]
    assert seen.email_kinds == ["payment_failed", "receipt"]


async def test_a_new_default_card_retries_at_once(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    subscription_id, start = await start_subscription(
        time_env, pg_sessions, stripe_gateway, task_queue, card=DECLINED_CARD
    )
    await advance_to(time_env, start + timedelta(days=1))
    with pg_sessions() as session:
        stripe_customer = subscription_sql.subscription(
            session, subscription_id
        ).customer.stripe_customer_id
    assert stripe_customer
    card = stripe_gateway.create_test_payment_method(
        card_number=OK_CARD, stripe_customer_id=stripe_customer
    )
    # Made the default at Stripe (as a dashboard or Checkout would): that is what counts.
    stripe_gateway.set_default_payment_method(
        stripe_customer_id=stripe_customer, payment_method_id=card
    )
    payload = event(
        "customer.updated",
        {"id": stripe_customer, "object": "customer",
         "invoice_settings": {"default_payment_method": card}},
    )  # fmt: skip
    outcome = await stripe_webhooks.receive(
        time_env.client, pg_sessions, payload, sign(payload), secret=SECRET,
        stripe_gateway=stripe_gateway,
    )  # fmt: skip
    assert outcome.signals == 1
    await advance_to(time_env, start + timedelta(days=1, minutes=1))

    assert (await status_of(time_env, subscription_id)).status == "active"
    seen = observe(pg_sessions, subscription_id)
    assert [a.status for a in seen.attempts] == ["declined", "succeeded"]
    with pg_sessions() as session:
        assert (
            subscription_sql.subscription(
                session, subscription_id
            ).customer.stripe_payment_method_id
            == card
        )


async def test_an_event_whose_signals_failed_is_processed_when_redelivered(
    pg_sessions: sessionmaker[Session],
) -> None:
    from temporalio.client import Client

    payload = event(
        "customer.updated",
        {"id": "cus_unknown_to_kakin", "invoice_settings": {"default_payment_method": "pm_x"}},
    )
    unreachable: Client = None  # type: ignore[assignment]  # not ours: never called
    first = await stripe_webhooks.receive(
        unreachable, pg_sessions, payload, sign(payload), secret=SECRET
    )
    assert (first.duplicate, first.signals) == (False, 0)
    # Simulate a crash between storing and processing: the row exists, unprocessed.
    other = event("customer.updated", {"id": "cus_unknown_too"}, event_id="evt_crashed_once")
    assert stripe_webhooks.store_once(pg_sessions, json.loads(other))
    again = await stripe_webhooks.receive(
        unreachable, pg_sessions, other, sign(other), secret=SECRET
    )
    assert again.duplicate is False, "an unprocessed event must be processed on redelivery"
    replay = await stripe_webhooks.receive(
        unreachable, pg_sessions, other, sign(other), secret=SECRET
    )
    assert replay.duplicate is True


def test_the_http_endpoint_refuses_bad_signatures_and_acknowledges_replays(
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    dev_env: WorkflowEnvironment,
) -> None:
    app = create_app(
        settings=SETTINGS.model_copy(update={"stripe_webhook_secret": SECRET}),
        sessions=pg_sessions,
        temporal=connect_to(dev_env.client.service_client.config.target_host),
        stripe=stripe_gateway,
    )
    payload = event("customer.updated", {"id": "cus_not_ours", "object": "customer"})
    hook = "/v1/webhooks/stripe"
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        before = stored(pg_sessions)
        wrong_key = sign(payload, secret="whsec_wrong")
        bad = http.post(hook, content=payload, headers={"Stripe-Signature": wrong_key})
        assert "does not verify" in error_of(bad, 400)["message"]
        old = sign(payload, at=int(time.time()) - 900)
        error_of(http.post(hook, content=payload, headers={"Stripe-Signature": old}), 400)
        assert stored(pg_sessions) == before, "a refused webhook was stored"

        first = http.post(hook, content=payload, headers={"Stripe-Signature": sign(payload)})
        again = http.post(hook, content=payload, headers={"Stripe-Signature": sign(payload)})
    assert (first.status_code, first.json()["duplicate"]) == (200, False)
    assert (again.status_code, again.json()["duplicate"]) == (200, True)
    assert stored(pg_sessions) == before + 1


async def test_copies_at_once_are_processed_once_and_a_crashed_claim_runs_out(
    database_url: str, stripe_gateway: StripeGateway
) -> None:
    """On PostgreSQL and on SQLite (``kakin up``): the claim is one conditional UPDATE."""
    from datetime import UTC, datetime

    from sqlalchemy import update
    from temporalio.client import Client

    from models.db import make_engine, make_session_factory

    pg_sessions = make_session_factory(make_engine(database_url))

    stripe_customer = stripe_gateway.create_customer(
        email="x@example.jp", name="x", kakin_customer_id="cus_not_in_kakin"
    )
    payload = event("customer.updated", {"id": stripe_customer, "object": "customer"})
    unreachable: Client = None  # type: ignore[assignment]  # not ours: never called
    outcomes = await asyncio.gather(
        *(
            stripe_webhooks.receive(
                unreachable,
                pg_sessions,
                payload,
                sign(payload),
                secret=SECRET,
                stripe_gateway=stripe_gateway,
            )
            for _ in range(5)
        )
    )
    assert sorted(o.duplicate for o in outcomes) == [False, True, True, True, True]

    # A delivery that claimed the event and died: a copy inside its lease is told to
    # come back (503), one after the lease ran out does the work.
    crashed = event(
        "customer.updated", {"id": "cus_unknown"}, event_id=f"evt_claimed_and_died_{time.time_ns()}"
    )
    assert await stripe_webhooks.claim(pg_sessions, json.loads(crashed)) is not None
    with pytest.raises(stripe_webhooks.WebhookBusyError):
        await stripe_webhooks.receive(
            unreachable, pg_sessions, crashed, sign(crashed), secret=SECRET, wait=0.3
        )
    with pg_sessions() as session:
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == json.loads(crashed)["id"])
            .values(claimed_until=datetime(2020, 1, 1, tzinfo=UTC))
        )
        session.commit()
    late = await stripe_webhooks.receive(
        unreachable, pg_sessions, crashed, sign(crashed), secret=SECRET, wait=0.3
    )
    assert (late.duplicate, late.result) == (False, "not one of our customers")


async def test_an_attached_card_changes_nothing_until_it_is_the_default(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    subscription_id, start = await start_subscription(
        time_env, pg_sessions, stripe_gateway, task_queue, card=DECLINED_CARD
    )
    await advance_to(time_env, start + timedelta(days=1))
    with pg_sessions() as session:
        customer = subscription_sql.subscription(session, subscription_id).customer
        stripe_customer, before = customer.stripe_customer_id, customer.stripe_payment_method_id
    assert stripe_customer
    card = stripe_gateway.create_test_payment_method(
        card_number=OK_CARD, stripe_customer_id=stripe_customer
    )
    attached = {"id": card, "object": "payment_method", "customer": stripe_customer}
    payload = event("payment_method.attached", attached)
    outcome = await stripe_webhooks.receive(
        time_env.client, pg_sessions, payload, sign(payload), secret=SECRET,
        stripe_gateway=stripe_gateway,
    )  # fmt: skip
    # The customer's first card is Stripe's default (kakin made it so at sign-up).
    assert (outcome.signals, outcome.result) == (0, f"card {before} already current")
    await advance_to(time_env, start + timedelta(days=1, minutes=1))
    assert (await status_of(time_env, subscription_id)).status == "past_due"
    with pg_sessions() as session:
        assert (
            subscription_sql.subscription(
                session, subscription_id
            ).customer.stripe_payment_method_id
            == before
        )

    # Made the default at Stripe, the next such event (or customer.updated) applies it.
    stripe_gateway.set_default_payment_method(
        stripe_customer_id=stripe_customer, payment_method_id=card
    )
    payload = event("payment_method.attached", attached)
    outcome = await stripe_webhooks.receive(
        time_env.client, pg_sessions, payload, sign(payload), secret=SECRET,
        stripe_gateway=stripe_gateway,
    )  # fmt: skip
    assert outcome.signals == 1
    await advance_to(time_env, start + timedelta(days=1, minutes=2))
    assert (await status_of(time_env, subscription_id)).status == "active"


async def test_a_card_change_whose_signals_were_lost_in_a_crash_is_signalled_on_redelivery(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    from models.tables import utcnow

    subscription_id, start = await start_subscription(
        time_env, pg_sessions, stripe_gateway, task_queue, card=DECLINED_CARD
    )
    await advance_to(time_env, start + timedelta(days=1))
    with pg_sessions() as session:
        customer = subscription_sql.subscription(session, subscription_id).customer
        customer_id, stripe_customer = customer.id, customer.stripe_customer_id
    assert stripe_customer
    card = stripe_gateway.create_test_payment_method(
        card_number=OK_CARD, stripe_customer_id=stripe_customer
    )
    stripe_gateway.set_default_payment_method(
        stripe_customer_id=stripe_customer, payment_method_id=card
    )
    payload = event("customer.updated", {"id": stripe_customer, "object": "customer"})
    # The first delivery wrote the card and its row's outcome, then died before signalling.
    assert stripe_webhooks.store_once(pg_sessions, json.loads(payload))
    with pg_sessions() as session:
        assert payments.claim_payment_method(
            session, customer_id, card, actor="stripe-webhook", occurred_at=utcnow()
        )
        session.get_one(WebhookEvent, json.loads(payload)["id"]).outcome = f"applying {card}"
        session.commit()

    again = await stripe_webhooks.receive(
        time_env.client, pg_sessions, payload, sign(payload), secret=SECRET,
        stripe_gateway=stripe_gateway,
    )  # fmt: skip
    assert (again.duplicate, again.signals) == (False, 1)
    await advance_to(time_env, start + timedelta(days=1, minutes=1))
    assert (await status_of(time_env, subscription_id)).status == "active"


def test_a_customer_created_with_a_card_has_it_as_stripes_default(
    pg_sessions: sessionmaker[Session], stripe_gateway: StripeGateway
) -> None:
    # Otherwise the first unrelated customer.updated (Stripe's default: none) would not
    # match the card kakin holds, and kakin would act on a card change nobody made.
    customer_id = customers_service.create_customer(
        pg_sessions,
        stripe_gateway,
        email="hanako@example.jp",
        name="佐藤 花子",
        currency="JPY",
        card_number=OK_CARD,
    )
    customer = customer_sql.customer(pg_sessions(), customer_id)
    assert customer.stripe_payment_method_id is not None
    assert (
        stripe_gateway.default_payment_method(customer.stripe_customer_id)
        == customer.stripe_payment_method_id
    )


async def test_a_webhook_waiting_on_the_database_leaves_other_requests_running(
    pg_sessions: sessionmaker[Session],
) -> None:
    """The API serves every request from one event loop: a webhook waiting for a row
    lock (or for a database coming back) must wait in a thread, not on the loop."""
    import threading

    from sqlalchemy import text

    payload = event(
        "customer.updated", {"id": "cus_nobody"}, event_id=f"evt_locked_{time.time_ns()}"
    )
    event_id = json.loads(payload)["id"]
    assert stripe_webhooks.store_once(pg_sessions, json.loads(payload))
    locked, release = threading.Event(), threading.Event()

    def hold_the_row() -> None:
        with pg_sessions() as session:
            session.execute(
                select(WebhookEvent).where(WebhookEvent.id == event_id).with_for_update()
            )
            locked.set()
            release.wait(30)  # a bound, not a measure: the test fails, it does not hang
            session.rollback()

    def webhook_waits_for_the_lock() -> bool:
        with pg_sessions() as session:
            waiting = session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query ILIKE 'UPDATE webhook_events%'"
                )
            )
        return bool(waiting)

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    try:
        assert await asyncio.to_thread(locked.wait, 10)
        unreachable = None  # not one of our customers: Temporal is never called
        delivery = asyncio.create_task(
            stripe_webhooks.receive(unreachable, pg_sessions, payload, sign(payload), secret=SECRET)  # type: ignore[arg-type]
        )
        # This loop must go on turning while the delivery waits for the lock.
        seen = False
        for _ in range(200):
            await asyncio.sleep(0.05)
            if delivery.done():
                break
            if await asyncio.to_thread(webhook_waits_for_the_lock):
                seen = True
                break
        assert seen and not delivery.done(), (
            "the event loop stood still while the webhook waited for the database"
        )
    finally:
        release.set()
        await asyncio.to_thread(holder.join)
    outcome = await delivery
    assert (outcome.duplicate, outcome.result) == (False, "not one of our customers")
