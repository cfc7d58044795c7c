"""Fixtures of the outgoing webhooks' tests: a worker running the webhook workflows on
the time-skipping server, endpoints registered through the service (removed after each
test, so one test's receiver never hears another's events), and the dispatcher."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.webhooks import Sender, WebhookActivities
from kakin import contracts
from kakin.adapters.webhook_sender import send
from kakin.platform.codec import Keyring
from kakin.runtime import WEBHOOK_WORKFLOWS, ensure_webhook_dispatcher
from kakin.services import webhook_endpoints
from kakin.views.webhook_endpoints import WebhookEndpointWithSecret
from kakin.views.webhook_events import event_data
from models.repositories import webhook_endpoints as endpoint_sql
from tests.support.encryption import TEST_KEY, TEST_KEY_ID

HISTORIES = Path(__file__).resolve().parent / "histories"
KEYRING = Keyring(keys={TEST_KEY_ID: TEST_KEY}, current=TEST_KEY_ID)
# A try gives up after this long here (15 s in production): the receiver that "times
# out" sleeps a little longer than this, not 15 s.
TRY_TIMEOUT = 1.0
# The dispatcher looks at the ledger when poked; its own poll would only add timers
# for the time-skipping server to fire.
POLL_SECONDS = 3600.0


def register(
    sessions: sessionmaker[Session], url: str, events: list[str], *, live_mode: bool = False
) -> WebhookEndpointWithSecret:
    return webhook_endpoints.create_endpoint(
        sessions, KEYRING, WebhookEndpointWithSecret.with_secret, url=url,
        enabled_events=events, live_mode=live_mode, created_by="test",
    )  # fmt: skip


@pytest.fixture(autouse=True)
def _endpoints_removed(pg_sessions: sessionmaker[Session]) -> Iterator[None]:
    yield
    with pg_sessions() as session:
        for row in endpoint_sql.endpoints(session):
            endpoint_sql.delete_endpoint(session, row)
        session.commit()


def hook_activities(
    sessions: sessionmaker[Session], *, live_mode: bool = False, sender: Sender = send
) -> WebhookActivities:
    return WebhookActivities(
        session_factory=sessions, keyring=KEYRING, shape_event=event_data, live_mode=live_mode,
        timeout_seconds=TRY_TIMEOUT, sender=sender,
    )  # fmt: skip


@pytest.fixture
async def hook_worker(
    time_env: WorkflowEnvironment, pg_sessions: sessionmaker[Session], task_queue: str
) -> AsyncIterator[Worker]:
    with ThreadPoolExecutor(max_workers=4) as executor:
        worker = Worker(
            time_env.client,
            task_queue=task_queue,
            workflows=WEBHOOK_WORKFLOWS,
            activities=hook_activities(pg_sessions).activities(),
            activity_executor=executor,
        )
        async with worker:
            yield worker


async def dispatcher(client: Client, task_queue: str) -> WorkflowHandle[object, None]:
    """The dispatcher, started as the worker starts it (and poked: look now)."""
    await ensure_webhook_dispatcher(client, task_queue=task_queue, poll_seconds=POLL_SECONDS)
    handle: WorkflowHandle[object, None] = client.get_workflow_handle(
        contracts.WEBHOOK_DISPATCH_WORKFLOW_ID
    )
    await handle.signal(contracts.SIGNAL_WEBHOOK_POKE)
    return handle
