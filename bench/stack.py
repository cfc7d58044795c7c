"""kakin's real pipeline for the timed benchmarks: customers, subscriptions, workers.

The subscription workflow and billing activities are the production ones, built the
way worker.py builds them (``build_worker``, a 16-thread activity pool); only the
addresses differ (a private PostgreSQL database, a private localstripe, an outbox in
a temp dir). The bare baseline gets a worker with the same settings.

``activity_workers`` K > 0 lays the workers out as a deployment with
KAKIN_WORKER_ROLE does: this process runs the workflows (role ``workflows``) and K
processes (bench.activity_worker, role ``activities``) run the activities, each with
its own 16-thread pool; the bare baseline gets the same layout with its no-op activity.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from activities.bundle import Activities, build_activities
from bench import bare as bare_module
from bench.bare import BareCycleWorkflow, noop, take_done
from bench.common import progress
from kakin.adapters import pdf
from kakin.adapters.mailer import OutboxMailer
from kakin.adapters.rendering import make_template_env
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.runtime import STRIPE_LIMITER_SHARE, build_stripe_worker, build_worker, stripe_bucket
from kakin.services import catalog
from kakin.services import customers as customers_service
from kakin.services import subscriptions as subscriptions_service
from kakin.services.invoice_documents import Seller
from models.db import make_engine, make_session_factory

ROOT = Path(__file__).resolve().parent.parent
# As kakin.runtime.run_worker: the production worker's activity pool.
ACTIVITY_THREADS = 16
STRIPE_KEY = "sk_test_kakin_bench"
OK_CARD = "4242424242424242"

SELLER = Seller(
    name="kakin bench K.K.",
    address="1-1 Chiyoda, Tokyo",
    registration_number="T9234567890123",
    payment_update_url="http://localhost:8000/pay/update",
)


@dataclass
class Kakin:
    """The pieces a run of real subscriptions needs."""

    engine: Engine
    sessions: sessionmaker[Session]
    setup_stripe: StripeGateway  # for creating customers (never rate limited)
    charge_stripe: StripeGateway  # what the activities use (maybe through a limiter)
    outbox: Path
    # Where they are, for activity worker processes (bench.activity_worker).
    database_url: str = ""
    charge_url: str = ""
    stripe_request_rate: float | None = None  # each process's Stripe bucket (None: unpaced)

    def close(self) -> None:
        """Close the pool before the database is dropped (no half-dead connections)."""
        self.engine.dispose()

    def activities(self) -> Activities:
        return build_activities(
            session_factory=self.sessions,
            stripe=self.charge_stripe,
            mailer=OutboxMailer(self.outbox),
            templates=make_template_env(),
            seller=SELLER,
        )


def make_kakin(
    database_url: str,
    stripe_url: str,
    outbox: Path,
    *,
    charge_url: str | None = None,
    stripe_request_rate: float | None = None,
) -> Kakin:
    """``stripe_request_rate``: the activities' Stripe requests per second, paced by the
    process's token bucket as kakin.runtime.stripe_gateway paces a worker's (None: unpaced)."""
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)

    def gateway(url: str, rate: float | None = None) -> StripeGateway:
        # localstripe rejects off_session on confirm (as `kakin up` configures it).
        return StripeGateway(
            api_key=STRIPE_KEY, api_base=url, confirm_off_session=False,
            bucket=stripe_bucket(rate) if rate else None,
        )  # fmt: skip

    return Kakin(
        engine=engine,
        sessions=sessions,
        setup_stripe=gateway(stripe_url),
        charge_stripe=gateway(charge_url or stripe_url, stripe_request_rate),
        outbox=outbox,
        database_url=database_url,
        charge_url=charge_url or stripe_url,
        stripe_request_rate=stripe_request_rate,
    )


async def make_customers(
    kakin: Kakin, count: int, *, interval: str = "month"
) -> tuple[list[str], str]:
    """``count`` JPY customers with a good card, and one price billed every ``interval``
    (monthly by default); returns their ids."""
    price_id = catalog.create_price(
        kakin.sessions, product_name="bench plan", currency="JPY", unit_amount=3980,
        interval=interval,
    )  # fmt: skip
    semaphore = asyncio.Semaphore(8)
    made = 0

    async def one(number: int) -> str:
        nonlocal made
        async with semaphore:
            customer = await asyncio.to_thread(
                customers_service.create_customer, kakin.sessions, kakin.setup_stripe,
                email=f"bench{number}@example.jp", name=f"ベンチ {number}", currency="JPY",
                locale="ja", time_zone="Asia/Tokyo", card_number=OK_CARD,
            )  # fmt: skip
        made += 1
        if made % 50 == 0:
            progress(f"  {made}/{count} customers created")
        return customer

    customers = await asyncio.gather(*(one(n) for n in range(count)))
    return list(customers), price_id


async def start_subscriptions(
    client: Client,
    kakin: Kakin,
    *,
    task_queue: str,
    customers: Sequence[str],
    price_id: str,
    count: int,
    due: datetime,
    stripe_task_queue: str | None = None,
    start_at: datetime | None = None,
) -> list[str]:
    """Start ``count`` subscriptions (round-robin over ``customers``) all due at ``due``
    (their start; with ``start_at``, they start then instead: a start in the past bills
    the first period at once, and ``due`` is when the price's interval ends it).

    subscriptions_service.start_subscription writes to the database synchronously: run on this
    loop it would stall the worker's loop for seconds (workflow tasks time out). So
    the starts run on a loop of their own in a thread, with their own client (with
    ``client``'s data converter: a test's encrypted payloads stay encrypted).
    """
    address = client.service_client.config.target_host
    namespace = client.namespace
    converter = client.data_converter

    async def start_all() -> list[str]:
        own = await Client.connect(address, namespace=namespace, data_converter=converter)
        semaphore = asyncio.Semaphore(16)
        started: list[str] = []

        async def one(number: int) -> None:
            async with semaphore:
                sub_id = await subscriptions_service.start_subscription(
                    own,
                    kakin.sessions,
                    task_queue=task_queue,
                    customer_id=customers[number % len(customers)],
                    price_id=price_id,
                    start_at=start_at or due,
                    stripe_task_queue=stripe_task_queue,
                )
            started.append(sub_id)
            if len(started) % 250 == 0:
                progress(f"  {len(started)}/{count} subscriptions started")

        await asyncio.gather(*(one(n) for n in range(count)))
        return started

    return await asyncio.to_thread(asyncio.run, start_all())


async def start_bare(
    client: Client, *, task_queue: str, count: int, due: datetime, prefix: str
) -> None:
    semaphore = asyncio.Semaphore(16)

    async def one(number: int) -> None:
        async with semaphore:
            await client.start_workflow(
                BareCycleWorkflow.run,
                due.isoformat(),
                id=f"{prefix}-{number}",
                task_queue=task_queue,
            )

    await asyncio.gather(*(one(n) for n in range(count)))


@dataclass
class ActivityProcess:
    """An activity-only worker process (bench.activity_worker) polling a task queue."""

    process: asyncio.subprocess.Process
    reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid


async def _read_done(process: asyncio.subprocess.Process) -> None:
    """Collect a bare activity process's ``done <time>`` lines as take_done() results."""
    assert process.stdout is not None
    while line := await process.stdout.readline():
        word, _, value = line.decode().partition(" ")
        if word == "done":
            with bare_module._done_lock:
                bare_module.DONE_AT.append(float(value))


@contextlib.asynccontextmanager
async def activity_processes(
    client: Client, task_queue: str, count: int, *, kind: str, kakin: Kakin | None = None
) -> AsyncIterator[list[ActivityProcess]]:
    """``count`` activity-only worker processes on ``task_queue``, as ``python worker.py
    --role activities`` runs them; stopped (stdin closed, then waited for) on exit."""
    address = client.service_client.config.target_host
    extra: list[str] = []
    if kind == "kakin":
        assert kakin is not None
        extra = ["--database-url", kakin.database_url, "--stripe-url", kakin.charge_url,
                 "--outbox", str(kakin.outbox)]  # fmt: skip
        if kakin.stripe_request_rate:
            extra += ["--stripe-request-rate", str(kakin.stripe_request_rate)]
    children: list[ActivityProcess] = []
    try:
        for _ in range(count):
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.activity_worker", "--address", address,
                "--task-queue", task_queue, "--kind", kind,
                "--threads", str(ACTIVITY_THREADS), *extra,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=str(ROOT),
            )  # fmt: skip
            children.append(ActivityProcess(process))
        for child in children:
            assert child.process.stdout is not None
            line = await asyncio.wait_for(child.process.stdout.readline(), 120)
            if line.decode().strip() != "ready":
                raise RuntimeError(f"activity worker did not start: {line!r}")
            child.reader = asyncio.create_task(_read_done(child.process))
        yield children
    finally:
        for child in children:
            if child.process.stdin is not None and not child.process.stdin.is_closing():
                child.process.stdin.close()
        for child in children:
            try:
                await asyncio.wait_for(child.process.wait(), 30)
            except TimeoutError:
                child.process.kill()
                await child.process.wait()
            if child.reader is not None:
                child.reader.cancel()


@contextlib.asynccontextmanager
async def kakin_worker(
    client: Client,
    kakin: Kakin,
    task_queue: str,
    *,
    stripe_task_queue: str | None = None,
    stripe_rate_limit: float = 25.0,
    stripe_share: float = STRIPE_LIMITER_SHARE,
    activity_workers: int = 0,
    pids: dict[str, int] | None = None,
) -> AsyncIterator[Worker]:
    """The production worker (kakin.runtime.build_worker) on ``task_queue``; with
    ``stripe_task_queue``, also build_stripe_worker's charge worker, as
    kakin.runtime.run_worker runs them when KAKIN_STRIPE_TASK_QUEUE is set.

    With ``activity_workers`` K > 0 this process runs the workflows only (role
    ``workflows``) and K processes run the activities (role ``activities``), each with
    its own 16-thread pool; their pids go into ``pids``."""
    activities = kakin.activities()
    with contextlib.ExitStack() as pools:
        executor = None
        if not activity_workers:
            await asyncio.to_thread(pdf.warm_up)  # as kakin.runtime.run_worker does before polling
            executor = pools.enter_context(
                ThreadPoolExecutor(ACTIVITY_THREADS, thread_name_prefix="kakin-activity")
            )
        worker = build_worker(
            client,
            task_queue=task_queue,
            activities=activities,
            executor=executor,
            role="workflows" if activity_workers else "all",
        )
        async with contextlib.AsyncExitStack() as workers:
            if activity_workers:
                children = await workers.enter_async_context(
                    activity_processes(
                        client, task_queue, activity_workers, kind="kakin", kakin=kakin
                    )
                )
                _add_pids(pids, children)
            await workers.enter_async_context(worker)
            if stripe_task_queue:
                stripe_executor = pools.enter_context(
                    ThreadPoolExecutor(ACTIVITY_THREADS, thread_name_prefix="kakin-stripe")
                )
                stripe_worker = build_stripe_worker(
                    client,
                    task_queue=stripe_task_queue,
                    activities=activities,
                    executor=stripe_executor,
                    stripe_rate_limit=stripe_rate_limit,
                    share=stripe_share,
                )
                await workers.enter_async_context(stripe_worker)
            yield worker


def _add_pids(pids: dict[str, int] | None, children: Sequence[ActivityProcess]) -> None:
    if pids is not None:
        for number, child in enumerate(children, 1):
            pids[f"activity_worker_{number}"] = child.pid


@contextlib.asynccontextmanager
async def bare_worker(
    client: Client,
    task_queue: str,
    *,
    activity_workers: int = 0,
    pids: dict[str, int] | None = None,
) -> AsyncIterator[Worker]:
    """The bare workflow's worker, with the same settings as kakin.runtime.build_worker; with
    ``activity_workers`` K > 0, laid out as kakin_worker lays it out (workflows here, the
    no-op activity in K processes, their pids into ``pids``)."""
    take_done()  # forget completions of an earlier phase
    async with contextlib.AsyncExitStack() as stack:
        if activity_workers:
            worker = Worker(client, task_queue=task_queue, workflows=[BareCycleWorkflow])
            children = await stack.enter_async_context(
                activity_processes(client, task_queue, activity_workers, kind="bare")
            )
            _add_pids(pids, children)
        else:
            executor = stack.enter_context(
                ThreadPoolExecutor(ACTIVITY_THREADS, thread_name_prefix="bare-activity")
            )
            worker = Worker(
                client,
                task_queue=task_queue,
                workflows=[BareCycleWorkflow],
                activities=[noop],
                activity_executor=executor,
                max_concurrent_activities=ACTIVITY_THREADS,
            )
        await stack.enter_async_context(worker)
        yield worker


def due_after(seconds: float) -> datetime:
    """A due time ``seconds`` from now, whole second (UTC)."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)


async def wait_until(
    count_done: Any, total: int, *, what: str, timeout: float, poll: float = 0.25
) -> None:
    """Poll ``count_done()`` (sync, run in a thread) until it reaches ``total``."""
    deadline = time.monotonic() + timeout
    last_report = 0.0
    while True:
        done = await asyncio.to_thread(count_done)
        if done >= total:
            progress(f"  {what}: {done}/{total} done")
            return
        if time.monotonic() - last_report > 5:
            progress(f"  {what}: {done}/{total} done")
            last_report = time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: only {done}/{total} done within {timeout:.0f} s")
        await asyncio.sleep(poll)


def outbox_times(outbox: Path) -> list[float]:
    """Modification times of the outbox's .eml files: when each email was 'sent'."""
    if not outbox.exists():
        return []
    return [entry.stat().st_mtime for entry in os.scandir(outbox) if entry.name.endswith(".eml")]


def count_eml(outbox: Path) -> int:
    if not outbox.exists():
        return 0
    return sum(1 for entry in os.scandir(outbox) if entry.name.endswith(".eml"))


async def sample_runs(client: Client, query: str, limit: int = 20) -> dict[str, float] | None:
    """Mean state transitions, events and history bytes of up to ``limit`` closed runs."""
    rows: list[tuple[int, int, int]] = []
    async for execution in client.list_workflows(query, limit=limit):
        described = await client.get_workflow_handle(
            execution.id, run_id=execution.run_id
        ).describe()
        info = described.raw_description.workflow_execution_info
        rows.append((info.state_transition_count, info.history_length, info.history_size_bytes))
    if not rows:
        return None
    n = len(rows)
    return {
        "runs_sampled": n,
        "state_transitions": sum(r[0] for r in rows) / n,
        "events": sum(r[1] for r in rows) / n,
        "history_bytes": sum(r[2] for r in rows) / n,
    }


__all__ = ["take_done"]
