"""Outgoing webhooks on the real workflows (time-skipped): the Svix schedule, one
webhook-id across tries and resends, signatures that the ``standardwebhooks`` library
verifies, a 410 disabling the endpoint, Retry-After, and secret rotation."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from itertools import pairwise

from prometheus_client import REGISTRY
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from kakin import contracts
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import customers, webhook_deliveries, webhook_endpoints
from kakin.views.webhook_endpoints import (
    WebhookDeliveryOut,
    WebhookEndpointOut,
    WebhookEndpointWithSecret,
)
from kakin.views.webhook_events import event_data
from tests.helpers import eventually
from tests.support.webhook_receiver import Answer, Receiver, receiving
from tests.webhooks.conftest import HISTORIES, KEYRING, dispatcher, register


def new_customer(sessions: sessionmaker[Session], stripe: StripeGateway, name: str) -> str:
    return customers.create_customer(
        sessions, stripe, email=f"{name}@example.jp", name=name, currency="JPY", locale="ja"
    )


def delivery_count(outcome: str) -> float:
    """What this process's ``kakin_webhook_deliveries_total{outcome}`` holds now."""
    found = REGISTRY.get_sample_value("kakin_webhook_deliveries_total", {"outcome": outcome})
    return found or 0.0


async def delivery_of(
    sessions: sessionmaker[Session], endpoint_id: str, count: int = 1
) -> list[WebhookDeliveryOut]:
    """The endpoint's deliveries once the dispatcher has made ``count`` of them."""
    found: list[WebhookDeliveryOut] = []

    def made() -> bool:
        nonlocal found
        found = webhook_deliveries.list_deliveries(sessions, endpoint_id, WebhookDeliveryOut.of)
        return len(found) >= count

    await eventually(made, what=f"{count} deliveries to {endpoint_id}")
    return found


async def finished(env: WorkflowEnvironment, delivery_id: str, run: int = 0) -> str:
    """Wait for a delivery run to end, time skipping meanwhile; its final status.

    The dispatcher starts delivery workflows, not this test, so their handles are not
    the time-skipping client's own (whose ``result()`` unlocks the clock): unlock it here.
    """
    handle = env.client.get_workflow_handle(
        contracts.webhook_delivery_workflow_id(delivery_id, run), result_type=str
    )

    async def started() -> bool:
        try:
            await handle.describe()
        except RPCError:
            return False
        return True

    await eventually(started, what=f"the workflow of {delivery_id} (run {run})")
    async with env.time_skipping_unlocked():  # type: ignore[attr-defined]
        return await handle.result()


async def record(env: WorkflowEnvironment, workflow_id: str, scenario: str) -> None:
    """With KAKIN_RECORD_HISTORIES=1, keep the history for tests/webhooks/test_replay.py."""
    if os.environ.get("KAKIN_RECORD_HISTORIES") != "1":
        return
    history = await env.client.get_workflow_handle(workflow_id).fetch_history()
    HISTORIES.mkdir(exist_ok=True)
    path = HISTORIES / f"{scenario}.json"
    path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")


async def test_an_event_is_tried_on_the_schedule_and_accepted_once_with_one_id(
    time_env: WorkflowEnvironment,
    hook_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    # 500, 500, no answer within the timeout, then 200.
    script = [Answer(500, body="boom"), Answer(500), Answer(200, sleep=2.0), Answer(200)]
    delivered = delivery_count("delivered")
    with receiving(Receiver(script)) as receiver:
        endpoint = register(pg_sessions, receiver.url, ["customer.created"])
        customer_id = new_customer(pg_sessions, stripe_gateway, "hanako")
        await dispatcher(time_env.client, task_queue)
        (delivery,) = await delivery_of(pg_sessions, endpoint.id)
        assert await finished(time_env, delivery.id) == "delivered"
        await record(time_env, contracts.webhook_delivery_workflow_id(delivery.id), "retries")
        await record(time_env, contracts.WEBHOOK_DISPATCH_WORKFLOW_ID, "dispatch")
    # Operations see one delivery, not four tries (kakin_webhook_deliveries_total).
    assert delivery_count("delivered") == delivered + 1

    # Four requests, one accepted; the same webhook-id on every one.
    assert len(receiver.received) == 4
    assert len(receiver.accepted) == 1
    ids = {r.headers["webhook-id"] for r in receiver.received}
    assert ids == {delivery.event_id}
    assert delivery.event_id.startswith("evt_outbox_")
    # Each request is signed with the endpoint's secret, as the library checks it.
    for request in receiver.received:
        payload = Webhook(endpoint.secret).verify(request.body, request.headers)
        assert payload["type"] == "customer.created"
        assert payload["data"]["id"] == customer_id
        assert payload["data"]["object"] == "customer"
        assert payload["data"]["email"] == "hanako@example.jp"
        assert set(payload) == {"type", "timestamp", "data"}

    # Every try is recorded, on the schedule: at once, +5 s, +5 min, +30 min.
    shown = webhook_deliveries.get_delivery(pg_sessions, delivery.id, WebhookDeliveryOut.of)
    assert shown.status == "delivered" and shown.tries == 4 and shown.last_status_code == 200
    tries = shown.attempts
    assert [t.outcome for t in tries] == ["failed", "failed", "timeout", "delivered"]
    assert [t.status_code for t in tries] == [500, 500, None, 200]
    assert tries[0].response_excerpt == "boom"
    assert "no answer within 1 s" in tries[2].error
    gaps = [b.scheduled_at - a.scheduled_at for a, b in pairwise(tries)]
    for gap, wanted in zip(gaps, [timedelta(seconds=5), timedelta(minutes=5),
                                  timedelta(minutes=30)], strict=True):  # fmt: skip
        assert wanted <= gap < wanted + timedelta(seconds=10), gaps


async def test_a_410_disables_the_endpoint_and_it_hears_nothing_more(
    time_env: WorkflowEnvironment,
    hook_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    disabled = delivery_count("disabled")
    with receiving(Receiver([Answer(410, body="gone for good")])) as receiver:
        endpoint = register(pg_sessions, receiver.url, ["*"])
        new_customer(pg_sessions, stripe_gateway, "jiro")
        await dispatcher(time_env.client, task_queue)
        (delivery,) = await delivery_of(pg_sessions, endpoint.id)
        assert await finished(time_env, delivery.id) == "failed"
        assert delivery_count("disabled") == disabled + 1  # the endpoint is gone

        shown = webhook_endpoints.get_endpoint(pg_sessions, endpoint.id, WebhookEndpointOut.of)
        assert shown.enabled is False
        assert shown.disabled_reason.startswith("gone")
        # A later change makes no delivery for it.
        new_customer(pg_sessions, stripe_gateway, "saburo")
        webhook_deliveries.dispatch(pg_sessions, event_data)
        assert len(webhook_deliveries.list_deliveries(
            pg_sessions, endpoint.id, WebhookDeliveryOut.of)) == 1  # fmt: skip
    assert len(receiver.received) == 1


async def test_retry_after_sets_the_next_wait(
    time_env: WorkflowEnvironment,
    hook_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    script = [Answer(503, headers={"Retry-After": "120"}), Answer(200)]
    with receiving(Receiver(script)) as receiver:
        endpoint = register(pg_sessions, receiver.url, ["customer.created"])
        new_customer(pg_sessions, stripe_gateway, "shiro")
        await dispatcher(time_env.client, task_queue)
        (delivery,) = await delivery_of(pg_sessions, endpoint.id)
        assert await finished(time_env, delivery.id) == "delivered"
    tries = webhook_deliveries.get_delivery(
        pg_sessions, delivery.id, WebhookDeliveryOut.of
    ).attempts
    gap = tries[1].scheduled_at - tries[0].scheduled_at
    assert timedelta(seconds=120) <= gap < timedelta(seconds=130)  # not the schedule's 5 s
    assert len(receiver.accepted) == 1


async def test_a_resend_of_a_delivered_event_has_the_same_id_and_both_secrets_sign_it(
    time_env: WorkflowEnvironment,
    hook_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    with receiving(Receiver([])) as receiver:
        endpoint = register(pg_sessions, receiver.url, ["customer.created"])
        new_customer(pg_sessions, stripe_gateway, "goro")
        await dispatcher(time_env.client, task_queue)
        (delivery,) = await delivery_of(pg_sessions, endpoint.id)
        assert await finished(time_env, delivery.id) == "delivered"

        rotated = webhook_endpoints.rotate_secret(
            pg_sessions, KEYRING, endpoint.id, WebhookEndpointWithSecret.with_secret,
            actor="test", overlap=timedelta(hours=24),
        )  # fmt: skip
        assert rotated.secret != endpoint.secret and rotated.secret.startswith("whsec_")
        again = await webhook_deliveries.resend(
            pg_sessions, time_env.client, delivery.id, WebhookDeliveryOut.of,
            task_queue=task_queue, requested_by="test",
        )  # fmt: skip
        assert again.resends == 1
        assert await finished(time_env, delivery.id, run=1) == "delivered"

    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.event_id
    assert first.body == second.body
    # During the overlap the resend carries two signatures: old and new secret both verify.
    assert len(second.headers["webhook-signature"].split(" ")) == 2
    for secret in (endpoint.secret, rotated.secret):
        Webhook(secret).verify(second.body, second.headers)
    assert json.loads(second.body)["type"] == "customer.created"
    shown = webhook_deliveries.get_delivery(pg_sessions, delivery.id, WebhookDeliveryOut.of)
    assert [(t.run, t.number, t.outcome) for t in shown.attempts] == [
        (0, 1, "delivered"), (1, 1, "delivered"),
    ]  # fmt: skip


async def test_eight_failed_tries_fail_the_delivery_and_a_resend_of_it_delivers(
    time_env: WorkflowEnvironment,
    hook_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    with receiving(Receiver([Answer(500)] * 8)) as receiver:  # then 200
        endpoint = register(pg_sessions, receiver.url, ["customer.created"])
        new_customer(pg_sessions, stripe_gateway, "rokuro")
        await dispatcher(time_env.client, task_queue)
        (delivery,) = await delivery_of(pg_sessions, endpoint.id)
        assert await finished(time_env, delivery.id) == "failed"
        failed = webhook_deliveries.get_delivery(pg_sessions, delivery.id, WebhookDeliveryOut.of)
        assert failed.status == "failed" and failed.tries == 8
        # The whole Svix schedule: about 27 h 35 min from the first try to the eighth.
        span = failed.attempts[-1].scheduled_at - failed.attempts[0].scheduled_at
        assert timedelta(hours=27, minutes=35) <= span < timedelta(hours=27, minutes=36)

        await webhook_deliveries.resend(
            pg_sessions, time_env.client, delivery.id, WebhookDeliveryOut.of,
            task_queue=task_queue, requested_by="test",
        )  # fmt: skip
        assert await finished(time_env, delivery.id, run=1) == "delivered"
    assert {r.headers["webhook-id"] for r in receiver.received} == {delivery.event_id}
    assert len(receiver.received) == 9 and len(receiver.accepted) == 1
    shown = webhook_deliveries.get_delivery(pg_sessions, delivery.id, WebhookDeliveryOut.of)
    assert shown.status == "delivered" and shown.resends == 1
