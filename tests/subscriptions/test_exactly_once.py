"""A charge Stripe accepted but whose answer we lost is charged once, not twice.

A fault-injecting proxy sits in front of the real Stripe emulator: it forwards the
request, lets the emulator charge the card, then drops the connection (or answers
500/429 without forwarding). Temporal retries the activity; the retry must resume
the stored PaymentIntent instead of charging again.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import stripe
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.bundle import build_activities
from kakin.adapters.mailer import OutgoingEmail, SendGridMailer
from kakin.adapters.rendering import make_template_env
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.adapters.stripe_pacing import RATE_LIMITED_RETRIES
from kakin.services import subscriptions
from models.payloads import EmailRequest
from models.repositories import emails as email_sql
from models.repositories.common import new_id
from models.tables import Subscription
from tests.conftest import SELLER, make_activities
from tests.helpers import customer_and_price, observe, outbox_files, serving_worker
from tests.support.fault_proxy import FaultProxy
from tests.support.sendgrid_loopback import SendGridLoopback


@pytest.fixture
def proxy(localstripe_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(localstripe_url) as running:
        yield running


def intents_for_invoice(localstripe_url: str, invoice_id: str) -> list[stripe.PaymentIntent]:
    client = stripe.StripeClient("sk_test_kakin", base_addresses={"api": localstripe_url})
    return [
        intent
        for intent in client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
        if intent.to_dict().get("metadata", {}).get("kakin_invoice_id") == invoice_id
    ]


async def activity_attempts(env: WorkflowEnvironment, subscription_id: str) -> list[int]:
    """The attempt number of every activity in every run of the workflow (oldest first)."""
    attempts: list[int] = []
    run_id: str | None = None
    while True:
        handle = env.client.get_workflow_handle(
            subscriptions.workflow_id(subscription_id), run_id=run_id
        )
        run_attempts, run_id = [], None
        async for event in handle.fetch_history_events():
            if event.HasField("workflow_execution_started_event_attributes"):
                run_id = (
                    event.workflow_execution_started_event_attributes.continued_execution_run_id
                )
            if event.HasField("activity_task_started_event_attributes"):
                run_attempts.append(event.activity_task_started_event_attributes.attempt)
        attempts = run_attempts + attempts
        if not run_id:
            return attempts


CONFIRM = r"/v1/payment_intents/pi_\w+/confirm"


@pytest.mark.parametrize(
    "faults",
    [
        [("POST", CONFIRM, "drop_after_forward")],
        [("POST", r"/v1/payment_intents$", 500)],
        # The gateway retries a 429 itself (after Retry-After) a few times; one past
        # those fails the activity, and Temporal's retry resumes the stored intent.
        [("POST", CONFIRM, 429)] * (RATE_LIMITED_RETRIES + 1),
        # Only a retry asks Stripe where the intent stands; lose that answer too.
        [("POST", CONFIRM, 500), ("GET", r"/v1/payment_intents/pi_\w+$", "drop_after_forward")],
    ],
    ids=["confirm-accepted-answer-lost", "create-500", "confirm-429", "retry-retrieve-dropped"],
)
async def test_a_lost_answer_never_charges_twice(
    time_env: WorkflowEnvironment,
    pg_sessions: sessionmaker[Session],
    localstripe_url: str,
    proxy: FaultProxy,
    task_queue: str,
    outbox: Path,
    faults: list[tuple[str, str, str | int]],
) -> None:
    stripe_via_proxy = StripeGateway(
        api_key="sk_test_kakin", api_base=proxy.url, confirm_off_session=False
    )
    customer_id, price_id = customer_and_price(pg_sessions, stripe_via_proxy)
    for method, path, fault in faults:
        proxy.add(method, path, fault, times=1)
    activities = make_activities(pg_sessions, stripe_via_proxy, outbox)
    async with serving_worker(time_env.client, task_queue, activities, threads=4):
        start = (await time_env.get_current_time()) + timedelta(hours=1)
        subscription_id = await subscriptions.start_subscription(
            time_env.client, pg_sessions, task_queue=task_queue,
            customer_id=customer_id, price_id=price_id, start_at=start,
        )  # fmt: skip
        await time_env.sleep(timedelta(hours=2))
        charge_tries = await activity_attempts(time_env, subscription_id)

    assert len(proxy.faults_injected) == len(faults), "a fault was never injected"
    assert max(charge_tries) >= 2, "Temporal did not retry the failed activity"
    seen = observe(pg_sessions, subscription_id)
    assert seen.status == "active"
    assert len(seen.invoices) == 1
    invoice = seen.invoices[0]
    assert invoice.status == "paid" and invoice.number is not None
    assert [a.status for a in seen.attempts] == ["succeeded"]
    succeeded = [
        i for i in intents_for_invoice(localstripe_url, invoice.id) if i.status == "succeeded"
    ]
    assert len(succeeded) == 1, f"Stripe charged {len(succeeded)} times"
    assert succeeded[0].amount == invoice.total
    assert seen.email_kinds == ["receipt"]
    assert len(outbox_files(outbox)) == 1


def test_an_email_sent_by_a_try_that_died_is_not_sent_again(
    pg_sessions: sessionmaker[Session], stripe_gateway: StripeGateway
) -> None:
    """The crash window: SendGrid took the message, the worker died before recording it."""
    customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway)
    subscription_id = new_id("sub")
    with pg_sessions() as session:
        session.add(
            Subscription(
                id=subscription_id, customer_id=customer_id, price_id=price_id,
                status="canceled", workflow_id=subscriptions.workflow_id(subscription_id),
            )
        )  # fmt: skip
        session.commit()
    request = EmailRequest(
        kind="canceled", business_key=f"email:canceled:{subscription_id}",
        subscription_id=subscription_id, occurred_at=datetime.now(UTC),
    )  # fmt: skip
    with SendGridLoopback() as sendgrid:
        activities = build_activities(
            session_factory=pg_sessions,
            stripe=stripe_gateway,
            mailer=SendGridMailer("SG.test", host=sendgrid.url),
            templates=make_template_env(),
            seller=SELLER,
        )
        dying = DiesAfterSending(SendGridMailer("SG.test", host=sendgrid.url))
        first = build_activities(
            session_factory=pg_sessions, stripe=stripe_gateway, mailer=dying,
            templates=make_template_env(), seller=SELLER,
        )  # fmt: skip
        with pytest.raises(WorkerDied):
            ActivityEnvironment().run(first.notifications.send_email, request)
        ActivityEnvironment().run(activities.notifications.send_email, request)  # Temporal's retry

        assert sendgrid.accepted_keys() == [request.business_key]
    with pg_sessions() as session:
        row = email_sql.email_by_key(session, request.business_key)
        assert row is not None and row.status == "sent"
        assert row.provider_message_id == "loopback000001.filter0001.0.0"


class WorkerDied(Exception):
    """Stands for SIGKILL: nothing after the send runs."""


class DiesAfterSending:
    def __init__(self, mailer: SendGridMailer) -> None:
        self._mailer = mailer

    def send(self, message: OutgoingEmail) -> str:
        self._mailer.send(message)
        raise WorkerDied

    def find(self, key: str) -> str | None:
        return self._mailer.find(key)
