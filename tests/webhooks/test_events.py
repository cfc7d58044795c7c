"""Billing changes become events: a subscription started and billed on the real workflow
reaches a receiver as subscription.created, customer.created, invoice.finalized and
invoice.paid, each once, its data the object as the HTTP API shows it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.bundle import Activities
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.runtime import build_worker
from kakin.services import invoices
from kakin.views.invoices import InvoiceDetail
from tests.helpers import advance_to, eventually, start_subscription
from tests.support.webhook_receiver import Receiver, receiving
from tests.webhooks.conftest import dispatcher, hook_activities, register


@pytest.fixture
async def billing_and_hooks(
    time_env: WorkflowEnvironment,
    activities: Activities,
    pg_sessions: sessionmaker[Session],
    task_queue: str,
) -> AsyncIterator[Worker]:
    """The production worker with outgoing webhooks on (as ``kakin worker`` runs it)."""
    with ThreadPoolExecutor(max_workers=8) as executor:
        worker = build_worker(
            time_env.client, task_queue=task_queue, activities=activities, executor=executor,
            webhooks=hook_activities(pg_sessions),
        )  # fmt: skip
        async with worker:
            yield worker


async def test_a_billed_subscription_is_told_once_per_change_with_the_api_objects(
    time_env: WorkflowEnvironment,
    billing_and_hooks: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    with receiving(Receiver([])) as receiver:
        endpoint = register(pg_sessions, receiver.url, ["*"])
        subscription_id, start = await start_subscription(
            time_env, pg_sessions, stripe_gateway, task_queue
        )
        await advance_to(time_env, start + timedelta(minutes=5))  # the first invoice, paid
        poked = await dispatcher(time_env.client, task_queue)
        wanted = {"customer.created", "subscription.created", "invoice.finalized", "invoice.paid"}

        def heard() -> set[str]:
            return {Webhook(endpoint.secret).verify(r.body, r.headers)["type"]
                    for r in receiver.accepted}  # fmt: skip

        async def all_heard() -> bool:
            await poked.signal("poke")
            return heard() >= wanted

        await eventually(all_heard, what=f"{wanted} at the receiver", timeout=30)

    by_type: dict[str, list[dict[str, object]]] = {}
    for request in receiver.accepted:
        payload = Webhook(endpoint.secret).verify(request.body, request.headers)
        by_type.setdefault(payload["type"], []).append(payload["data"])
    ids = [r.headers["webhook-id"] for r in receiver.accepted]
    assert len(ids) == len(set(ids)), "an event was accepted twice"
    assert len(by_type["subscription.created"]) == 1
    assert by_type["subscription.created"][0]["id"] == subscription_id
    (paid,) = by_type["invoice.paid"]
    assert paid["object"] == "invoice" and paid["status"] == "paid"
    # The invoice as GET /v1/invoices/{id} shows it (a later change may have moved it on).
    shown = invoices.get_invoice(pg_sessions, str(paid["id"]), InvoiceDetail.with_lines)
    assert paid["total"] == shown.total and paid["number"] == shown.number
    assert paid["lines"] == [line.model_dump(mode="json") for line in shown.lines]
