"""Support signalling with the real ``temporal`` CLI, against the real dev server.

Through the codec endpoint (``--codec-endpoint`` with ``--codec-auth``) the CLI has the
signal's input encrypted by kakin before it reaches the server: the history holds only
ciphertext. Without it the server stores the input as sent; kakin applies it (refusing
it would protect nothing already stored and would wedge the subscription) and warns,
naming the workflow, never the contents.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.codec_server import create_codec_app
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.platform.binaries import find_binary
from kakin.platform.codec import ENCODING
from kakin.services import api_keys, subscriptions
from kakin.services.api_keys import CreatedKey
from tests.helpers import customer_and_price, observe, running
from tests.support.encryption import codec_for_tests

pytestmark = pytest.mark.devserver
REASON = "山田様 (taro@example.jp) asked by phone to stop"


@pytest.fixture
def codec_url(pg_sessions: sessionmaker[Session]) -> Iterator[str]:
    """``kakin codec-server``'s app, served for real (the CLI speaks HTTP to it)."""
    app = create_codec_app(
        codec=codec_for_tests(), sessions=pg_sessions, ui_origin="http://localhost:8233"
    )
    with running(app) as url:
        yield url


@pytest.fixture
def keys(pg_sessions: sessionmaker[Session]) -> dict[str, CreatedKey]:
    return {
        role: api_keys.create_key(pg_sessions, name=f"cli signal {role}", role=role)
        for role in ("service", "support")
    }


async def waiting_subscription(
    env: WorkflowEnvironment, sessions: sessionmaker[Session], stripe: StripeGateway, queue: str
) -> str:
    customer_id, price_id = customer_and_price(sessions, stripe)
    start = (await env.get_current_time()) + timedelta(hours=1)
    return await subscriptions.start_subscription(
        env.client, sessions, task_queue=queue,
        customer_id=customer_id, price_id=price_id, start_at=start,
    )  # fmt: skip


async def temporal_signal(
    env: WorkflowEnvironment, workflow_id: str, *codec: str
) -> subprocess.CompletedProcess[str]:
    """``temporal workflow signal`` as support types it, in a thread (the worker runs here)."""
    cancel = {"reason": REASON, "at_period_end": False, "requested_by": "support:ken"}
    command = [
        find_binary("temporal"), "workflow", "signal",
        "--address", env.client.service_client.config.target_host, "--namespace", "default",
        "--workflow-id", workflow_id, "--name", "cancel",
        "--input", json.dumps(cancel, ensure_ascii=False), *codec,
    ]  # fmt: skip
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, encoding="utf-8", timeout=60
    )


async def signal_payloads(
    env: WorkflowEnvironment, workflow_id: str
) -> tuple[list[dict[str, bytes]], bytes]:
    """The cancel signal's payload metadata and the whole history's bytes, as the server
    keeps them (read with a client that has no keys)."""
    plain = await Client.connect(env.client.service_client.config.target_host)
    history = await plain.get_workflow_handle(workflow_id).fetch_history()
    signals = [
        event.workflow_execution_signaled_event_attributes
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    metadata = [dict(p.metadata) for s in signals for p in s.input.payloads]
    return metadata, b"".join(event.SerializeToString() for event in history.events)


async def test_support_signals_through_the_codec_endpoint_and_the_history_holds_ciphertext(
    dev_env: WorkflowEnvironment,
    dev_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
    codec_url: str,
    keys: dict[str, CreatedKey],
    caplog: pytest.LogCaptureFixture,
) -> None:
    subscription_id = await waiting_subscription(dev_env, pg_sessions, stripe_gateway, task_queue)
    workflow_id = subscriptions.workflow_id(subscription_id)
    handle = dev_env.client.get_workflow_handle(workflow_id)

    # A service key may not encrypt (or decrypt) payloads: the CLI sends nothing.
    refused = await temporal_signal(
        dev_env, workflow_id,
        "--codec-endpoint", codec_url, "--codec-auth", f"Bearer {keys['service'].secret}",
    )  # fmt: skip
    assert refused.returncode != 0
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

    with caplog.at_level(logging.WARNING, logger="kakin.codec"):
        sent = await temporal_signal(
            dev_env, workflow_id,
            "--codec-endpoint", codec_url, "--codec-auth", f"Bearer {keys['support'].secret}",
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        assert await handle.result() == "canceled"

    metadata, raw = await signal_payloads(dev_env, workflow_id)
    assert [m["encoding"] for m in metadata] == [ENCODING]
    for secret in ("taro@example.jp", "asked by phone", "support:ken"):
        assert secret.encode() not in raw, secret
    # The worker decrypted it and did what support asked; the audit log has who and why.
    cancel = [a for a in observe(pg_sessions, subscription_id).audit if a.to_status == "canceled"]
    assert [(a.actor, a.reason) for a in cancel] == [("support:ken", REASON)]
    assert not [r for r in caplog.records if r.name == "kakin.codec"], caplog.text


async def test_a_plain_cli_signal_is_applied_and_warned_about_without_its_contents(
    dev_env: WorkflowEnvironment,
    dev_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    subscription_id = await waiting_subscription(dev_env, pg_sessions, stripe_gateway, task_queue)
    workflow_id = subscriptions.workflow_id(subscription_id)
    with caplog.at_level(logging.WARNING, logger="kakin.codec"):
        sent = await temporal_signal(dev_env, workflow_id)
        assert sent.returncode == 0, sent.stderr
        assert await dev_env.client.get_workflow_handle(workflow_id).result() == "canceled"

    # Stored as sent: this is what the README warns about.
    metadata, raw = await signal_payloads(dev_env, workflow_id)
    assert [m["encoding"] for m in metadata] == [b"json/plain"]
    assert b"asked by phone" in raw
    # Applied, not refused: the subscription did what support asked.
    cancel = [a for a in observe(pg_sessions, subscription_id).audit if a.to_status == "canceled"]
    assert [(a.actor, a.reason) for a in cancel] == [("support:ken", REASON)]
    # Warned once, naming the workflow and how to signal instead, never the contents.
    warnings = [r.getMessage() for r in caplog.records if r.name == "kakin.codec"]
    assert len(warnings) == 1, warnings
    [warning] = warnings
    assert workflow_id in warning and "json/plain" in warning and "--codec-endpoint" in warning
    for secret in ("taro@example.jp", "asked by phone", "山田"):
        assert secret not in warning
