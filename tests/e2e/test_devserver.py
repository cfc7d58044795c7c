"""Against the real Temporal dev server: what operations and support actually do.

Operations find subscriptions by search attribute (as in the Temporal UI's list
filter); support runs ``starter.py`` from a terminal. Both go through real
processes and the real visibility store.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from kakin.adapters.stripe_gateway import StripeGateway
from tests.helpers import DECLINED_CARD, customer_and_price, eventually, observe

pytestmark = pytest.mark.devserver
REPO = Path(__file__).resolve().parents[2]


async def starter(
    env: WorkflowEnvironment, task_queue: str, database_url: str, *args: str, expect: int = 0
) -> str:
    """Run ``python starter.py`` the way support would, and return what it printed.

    In a thread, so this test's event loop (which runs the worker answering the
    ``status`` query) keeps going while the process runs.
    """
    address = env.client.service_client.config.target_host
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "starter.py", "--temporal-address", address, "--task-queue", task_queue,
         *args],
        cwd=REPO,
        env={**os.environ, "KAKIN_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == expect, result.stderr
    return result.stdout if expect == 0 else result.stderr.strip()


async def workflow_ids(env: WorkflowEnvironment, query: str) -> list[str]:
    return [wf.id async for wf in env.client.list_workflows(query)]


async def test_find_past_due_by_search_attribute_and_cancel_with_starter(
    dev_env: WorkflowEnvironment,
    dev_worker: Worker,
    pg_sessions: sessionmaker[Session],
    postgres_url: str,
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway, card=DECLINED_CARD)
    subscription_id = (
        await starter(
            dev_env,
            task_queue,
            postgres_url,
            "start",
            "--customer",
            customer_id,
            "--price",
            price_id,
        )
    ).strip()
    workflow_id = f"subscription-{subscription_id}"

    # Each renewal continues as new; the closed runs keep their attributes, so an
    # operator's list of what is past due now asks for running executions.
    past_due = (
        f'SubscriptionStatus = "past_due" AND CustomerId = "{customer_id}" '
        'AND ExecutionStatus = "Running"'
    )

    async def listed_as_past_due() -> bool:
        return await workflow_ids(dev_env, past_due) == [workflow_id]

    await eventually(listed_as_past_due, what="the subscription listed as past_due")
    printed = await starter(dev_env, task_queue, postgres_url, "status", subscription_id)
    assert "past_due" in printed and "retry_payment" in printed
    refused = await starter(
        dev_env, task_queue, postgres_url,
        "pause", subscription_id, "--reason", "travelling", "--requested-by", "support:yuki",
        expect=2,
    )  # fmt: skip
    assert refused == "error: only an active or trialing subscription can be paused; it is past_due"

    await starter(
        dev_env, task_queue, postgres_url,
        "cancel", subscription_id,
        "--reason", "customer closed the account",
        "--requested-by", "support:yuki",
    )  # fmt: skip
    handle = dev_env.client.get_workflow_handle(workflow_id)
    assert await handle.result() == "canceled"

    canceled = (
        f'SubscriptionStatus = "canceled" AND PlanId = "{price_id}" '
        'AND ExecutionStatus = "Completed"'
    )

    async def listed_as_canceled() -> bool:
        return await workflow_ids(dev_env, canceled) == [workflow_id]

    await eventually(listed_as_canceled, what="the subscription listed as canceled")
    seen = observe(pg_sessions, subscription_id)
    assert seen.status == "canceled"
    assert [i.status for i in seen.invoices] == ["uncollectible"]
    cancel = [a for a in seen.audit if a.to_status == "canceled"]
    assert [(a.actor, a.reason) for a in cancel] == [
        ("support:yuki", "customer closed the account")
    ]
    assert seen.email_kinds == ["payment_failed", "canceled"]


async def test_starter_explains_a_bad_request(
    dev_env: WorkflowEnvironment, postgres_url: str, task_queue: str
) -> None:
    address = dev_env.client.service_client.config.target_host
    result = subprocess.run(
        [sys.executable, "starter.py", "--temporal-address", address,
         "start", "--customer", "cus_missing", "--price", "price_missing"],
        cwd=REPO,
        env={**os.environ, "KAKIN_DATABASE_URL": postgres_url},
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == "error: customer 'cus_missing' does not exist"
    missing = subprocess.run(
        [sys.executable, "starter.py", "--temporal-address", address, "status", "sub_nope"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 2
    assert "no subscription workflow 'sub_nope'" in missing.stderr
