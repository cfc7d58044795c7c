"""KAKIN_WORKER_ROLE / ``python worker.py --role``: workflows and activities in separate
workers on one task queue bill a renewal exactly as one worker running both does."""

from __future__ import annotations

import email
import email.policy
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from activities.bundle import Activities
from kakin import runtime as worker_module
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.platform.settings import Settings
from kakin.services import subscriptions
from tests.helpers import customer_and_price, observe


def test_the_role_setting_defaults_to_all_and_refuses_unknown_roles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KAKIN_WORKER_ROLE", raising=False)
    assert Settings(_env_file=None).worker_role == "all"  # type: ignore[call-arg]
    monkeypatch.setenv("KAKIN_WORKER_ROLE", "activities")
    assert Settings(_env_file=None).worker_role == "activities"  # type: ignore[call-arg]
    monkeypatch.setenv("KAKIN_WORKER_ROLE", "both")
    with pytest.raises(ValueError):
        Settings(_env_file=None)  # type: ignore[call-arg]


async def test_build_worker_checks_its_role(
    time_env: WorkflowEnvironment, activities: Activities, task_queue: str
) -> None:
    with pytest.raises(ValueError, match="unknown worker role"):
        worker_module.build_worker(
            time_env.client, task_queue=task_queue, activities=activities, executor=None,
            role="everything",
        )  # fmt: skip
    with pytest.raises(ValueError, match="needs an activity executor"):
        worker_module.build_worker(
            time_env.client, task_queue=task_queue, activities=activities, executor=None,
            role="activities",
        )  # fmt: skip


def test_the_command_line_role_overrides_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    async def fake_run_worker(settings: Settings) -> None:
        seen.append(settings.worker_role)

    monkeypatch.setattr(worker_module, "run_worker", fake_run_worker)
    monkeypatch.setenv("KAKIN_WORKER_ROLE", "workflows")
    worker_module.get_settings.cache_clear()
    try:
        worker_module.worker_main(["--role", "activities"])
        worker_module.worker_main([])  # `kakin worker` passes no arguments: the setting decides
    finally:
        worker_module.get_settings.cache_clear()
    assert seen == ["activities", "workflows"]


async def test_a_workflow_worker_and_an_activity_worker_bill_a_renewal_together(
    time_env: WorkflowEnvironment,
    activities: Activities,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
    outbox: Path,
) -> None:
    workflows_only = worker_module.build_worker(
        time_env.client, task_queue=task_queue, activities=activities, executor=None,
        role="workflows",
    )  # fmt: skip
    with ThreadPoolExecutor(max_workers=4) as executor:
        activities_only = worker_module.build_worker(
            time_env.client, task_queue=task_queue, activities=activities, executor=executor,
            role="activities",
        )  # fmt: skip
        async with workflows_only, activities_only:
            customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway)
            subscription_id = await subscriptions.start_subscription(
                time_env.client,
                pg_sessions,
                task_queue=task_queue,
                customer_id=customer_id,
                price_id=price_id,
                start_at=(await time_env.get_current_time()) + timedelta(hours=1),
            )
            await time_env.sleep(timedelta(hours=2))

    invoice = observe(pg_sessions, subscription_id).invoices[0]
    assert invoice.status == "paid" and invoice.number is not None
    (eml,) = outbox.glob("*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == f"{invoice.number}.pdf"
