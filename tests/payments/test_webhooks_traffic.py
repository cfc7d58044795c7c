"""Stripe's real webhook traffic: the emulator's own sender, duplicated, held back, reordered.

localstripe signs and sends its events (``/_config/webhooks/<name>``) to a relay
(tests/support/webhook_relay.py) in front of the real kakin API, which forwards them
as real Stripe may: several copies at once, late, in another order, retried until a
2xx. Subscriptions run on the dev server with a real worker; cards change through
kakin (as ``kakin update-card`` and the card page do) and at Stripe (as a dashboard
or Checkout would). Every delivery must end 2xx and each event take effect once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import create_app
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import payments, subscriptions
from models.repositories import subscriptions as subscription_sql
from models.tables import AuditLog, WebhookEvent
from tests.helpers import (
    DECLINED_CARD,
    OK_CARD,
    SETTINGS,
    connect_to,
    customer_and_price,
    eventually,
    observe,
    pay_elsewhere,
    running,
)
from tests.support.webhook_relay import WebhookRelay, register, unregister

SECRET = "whsec_kakin_traffic"

pytestmark = pytest.mark.devserver


@pytest.fixture(scope="module")
def relay(
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    dev_env: WorkflowEnvironment,
    module_task_queue: str,
    localstripe_url: str,
) -> Iterator[WebhookRelay]:
    settings = SETTINGS.model_copy(
        update={"stripe_webhook_secret": SECRET, "task_queue": module_task_queue}
    )
    app = create_app(
        settings=settings,
        sessions=pg_sessions,
        temporal=connect_to(dev_env.client.service_client.config.target_host),
        stripe=stripe_gateway,
    )
    with running(app) as url, WebhookRelay(f"{url}/v1/webhooks/stripe", secret=SECRET) as relay:
        register(localstripe_url, relay)
        try:
            yield relay
        finally:
            unregister(localstripe_url)


@pytest.fixture
def traffic(relay: WebhookRelay) -> Iterator[WebhookRelay]:
    """The relay, reset to plain forwarding; afterwards, every event was answered 2xx."""
    relay.copies, relay.max_tries, relay.retry_delay = 1, 8, 0.3
    yield relay
    assert relay.idle(60), "deliveries still in flight"
    assert relay.unanswered() == [], "events that never got a 2xx"


def _stripe(localstripe_url: str) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_kakin", base_addresses={"api": localstripe_url})


async def _subscription(
    dev_env: WorkflowEnvironment,
    sessions: sessionmaker[Session],
    gateway: StripeGateway,
    task_queue: str,
    *,
    card: str,
    want: str,
) -> tuple[str, str]:
    """A subscription started now; returns (its id, its Stripe customer) once ``want``."""
    customer_id, price_id = customer_and_price(sessions, gateway, card=card)
    subscription_id = await subscriptions.start_subscription(
        dev_env.client, sessions, task_queue=task_queue,
        customer_id=customer_id, price_id=price_id,
    )  # fmt: skip
    charged = "paid" if want == "active" else "open"

    def there() -> bool:
        seen = observe(sessions, subscription_id)
        return seen.status == want and [i.status for i in seen.invoices] == [charged]

    await eventually(there, timeout=30, what=want)
    with sessions() as session:
        stripe_customer = subscription_sql.subscription(
            session, subscription_id
        ).customer.stripe_customer_id
    assert stripe_customer
    return subscription_id, stripe_customer


def _events(relay: WebhookRelay, kind: str, **match: str) -> list[dict[str, Any]]:
    def fits(event: dict[str, Any]) -> bool:
        data = event["data"]["object"]
        meta = data.get("metadata") or {}
        return event["type"] == kind and all(
            data.get(k) == v or meta.get(k) == v for k, v in match.items()
        )

    return [e for e in list(relay.events) if fits(e)]


def _processed_once(relay: WebhookRelay, event_id: str) -> None:
    """Of all deliveries of one event, exactly one did the work; all ended 2xx."""
    tries = relay.of(event_id)
    answered = [t for t in tries if 200 <= t.status < 300]
    assert answered, f"{event_id}: {[(t.status, t.body) for t in tries]}"
    first = [t for t in answered if json.loads(t.body)["duplicate"] is False]
    assert len(first) == 1, f"{event_id}: {[(t.status, t.body) for t in tries]}"


def _outcome(sessions: sessionmaker[Session], event_id: str) -> str:
    with sessions() as session:
        return str(session.get_one(WebhookEvent, event_id).outcome)


def _card_changes(sessions: sessionmaker[Session], subscription_id: str) -> list[str]:
    with sessions() as session:
        customer_id = subscription_sql.subscription(session, subscription_id).customer_id
        rows = session.scalars(
            select(AuditLog)
            .where(AuditLog.entity_id == customer_id, AuditLog.action == "payment_method_updated")
            .order_by(AuditLog.id)
        )
        return [str((row.details or {}).get("payment_method_id")) for row in rows]


def _card(sessions: sessionmaker[Session], subscription_id: str) -> str | None:
    with sessions() as session:
        return subscription_sql.subscription(
            session, subscription_id
        ).customer.stripe_payment_method_id


async def test_concurrent_copies_of_a_card_change_retry_the_charge_once(
    traffic: WebhookRelay,
    dev_env: WorkflowEnvironment,
    module_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    module_task_queue: str,
    localstripe_url: str,
) -> None:
    traffic.copies = 3  # every delivery three times, at the same moment
    subscription_id, customer = await _subscription(
        dev_env, pg_sessions, stripe_gateway, module_task_queue, card=DECLINED_CARD,
        want="past_due",
    )  # fmt: skip

    # The customer picks another card on a Stripe page: it becomes Stripe's default.
    other = stripe_gateway.create_test_payment_method(
        card_number=DECLINED_CARD, stripe_customer_id=customer
    )
    stripe_gateway.set_default_payment_method(stripe_customer_id=customer, payment_method_id=other)
    await eventually(lambda: len(observe(pg_sessions, subscription_id).attempts) == 2, timeout=30)
    await eventually(  # its email follows the attempt (slow on a busy machine)
        lambda: observe(pg_sessions, subscription_id).email_kinds.count("payment_failed") == 2,
        timeout=30,
    )
    assert traffic.idle(30)
    await asyncio.sleep(2)  # room for a second retry to show, if one were coming
    seen = observe(pg_sessions, subscription_id)
    assert [a.status for a in seen.attempts] == ["declined", "declined"], "one retry per change"
    assert seen.email_kinds.count("payment_failed") == 2, seen.email_kinds
    assert _card_changes(pg_sessions, subscription_id) == [other]

    # Through kakin (kakin update-card, the card page): Stripe's default follows.
    card = await payments.update_payment_method(
        dev_env.client, pg_sessions, stripe_gateway, subscription_id,
        card_number=OK_CARD, requested_by="support:test",
    )  # fmt: skip
    assert stripe_gateway.default_payment_method(customer) == card
    await eventually(lambda: observe(pg_sessions, subscription_id).status == "active", timeout=30)
    # An unrelated change at Stripe (the email) sends customer.updated again.
    _stripe(localstripe_url).v1.customers.update(customer, params={"email": "new@example.jp"})
    await eventually(lambda: len(_events(traffic, "customer.updated", id=customer)) == 3)
    assert traffic.idle(30)
    await asyncio.sleep(1)

    seen = observe(pg_sessions, subscription_id)
    assert [a.status for a in seen.attempts] == ["declined", "declined", "succeeded"]
    assert (
        _card(pg_sessions, subscription_id)
        == card
        == stripe_gateway.default_payment_method(customer)
    )
    assert _card_changes(pg_sessions, subscription_id) == [other, card]
    for event in _events(traffic, "customer.updated", id=customer):
        _processed_once(traffic, event["id"])
        assert len(traffic.of(event["id"])) >= 3


async def test_an_older_card_event_arriving_late_does_not_put_back_a_stale_card(
    traffic: WebhookRelay,
    dev_env: WorkflowEnvironment,
    module_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    module_task_queue: str,
) -> None:
    subscription_id, customer = await _subscription(
        dev_env, pg_sessions, stripe_gateway, module_task_queue, card=OK_CARD, want="active"
    )
    traffic.hold("customer.updated")
    older, newer = (
        stripe_gateway.create_test_payment_method(card_number=OK_CARD, stripe_customer_id=customer)
        for _ in range(2)
    )
    for n, method in enumerate((older, newer), start=1):
        stripe_gateway.set_default_payment_method(
            stripe_customer_id=customer, payment_method_id=method
        )
        await eventually(lambda n=n: len(_events(traffic, "customer.updated", id=customer)) == n)
    assert traffic.release(order="reverse") >= 2  # the newer event first, then the older
    assert traffic.idle(30)
    # The workflow records what it was told (slow on a busy machine); then a moment more,
    # in which a stale card put back late would show.
    await eventually(
        lambda: (
            _card(pg_sessions, subscription_id) == newer
            and _card_changes(pg_sessions, subscription_id) != []
        ),
        timeout=60,
    )
    await asyncio.sleep(2)

    assert _card(pg_sessions, subscription_id) == newer
    assert stripe_gateway.default_payment_method(customer) == newer
    assert _card_changes(pg_sessions, subscription_id) == [newer]
    outcomes = [_outcome(pg_sessions, e["id"]) for e in _events(traffic, "customer.updated")]
    assert f"card {newer} already current" in outcomes


async def test_late_events_for_ended_subscriptions_are_acknowledged(
    traffic: WebhookRelay,
    dev_env: WorkflowEnvironment,
    module_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    module_task_queue: str,
) -> None:
    traffic.copies = 2
    # Our own charge's payment_intent.succeeded, while the subscription runs: no signal.
    running_id, _ = await _subscription(
        dev_env, pg_sessions, stripe_gateway, module_task_queue, card=OK_CARD, want="active"
    )
    paid = observe(pg_sessions, running_id).invoices[0].id
    await eventually(
        lambda: bool(_events(traffic, "payment_intent.succeeded", kakin_invoice_id=paid))
    )
    assert traffic.idle(30)
    history = await subscriptions.handle(dev_env.client, running_id).fetch_history()
    signals = [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert signals == [], "a charge kakin made and recorded came back as a signal"
    (own,) = _events(traffic, "payment_intent.succeeded", kakin_invoice_id=paid)
    assert _outcome(pg_sessions, own["id"]) == f"invoice {paid} already paid"

    # Canceled right after its charge, the event held back until the workflow ended.
    traffic.hold("payment_intent.succeeded")
    ended_id, _ = await _subscription(
        dev_env, pg_sessions, stripe_gateway, module_task_queue, card=OK_CARD, want="active"
    )
    invoice = observe(pg_sessions, ended_id).invoices[0].id
    await eventually(
        lambda: bool(_events(traffic, "payment_intent.succeeded", kakin_invoice_id=invoice))
    )
    await _cancel_and_wait(dev_env, ended_id)
    traffic.release()
    assert traffic.idle(30)
    (late,) = _events(traffic, "payment_intent.succeeded", kakin_invoice_id=invoice)
    _processed_once(traffic, late["id"])

    # A payment made elsewhere for a written-off invoice, after the workflow ended: 2xx,
    # and the money is on the books.
    dunned_id, _ = await _subscription(
        dev_env, pg_sessions, stripe_gateway, module_task_queue, card=DECLINED_CARD,
        want="past_due",
    )  # fmt: skip
    await _cancel_and_wait(dev_env, dunned_id)
    (unpaid,) = observe(pg_sessions, dunned_id).invoices
    assert unpaid.status == "uncollectible"
    intent = await pay_elsewhere(stripe_gateway, pg_sessions, dunned_id, unpaid.id, unpaid.total)
    await eventually(lambda: bool(_events(traffic, "payment_intent.succeeded", id=intent)))
    assert traffic.idle(30)
    (event,) = _events(traffic, "payment_intent.succeeded", id=intent)
    _processed_once(traffic, event["id"])
    seen = observe(pg_sessions, dunned_id)
    assert (seen.status, [i.status for i in seen.invoices]) == ("canceled", ["paid"])
    assert "marked paid" in _outcome(pg_sessions, event["id"])


async def _cancel_and_wait(dev_env: WorkflowEnvironment, subscription_id: str) -> None:
    await subscriptions.cancel_subscription(
        dev_env.client, subscription_id, reason="test", at_period_end=False, requested_by="test"
    )
    handle = subscriptions.handle(dev_env.client, subscription_id)

    async def ended() -> bool:
        return (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED

    await eventually(ended, timeout=30, what="workflow completed")
