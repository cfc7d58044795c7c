"""Two ``python worker.py`` processes on one dev server share the renewals (issue 16).

500 subscriptions (a pool of 50 customers with a good test card) have their first cycle
due at the same second. Two worker processes, started as two copies of the production
worker are (the same environment, no option of their own), poll the same task queue.
Once every invoice is paid and every receipt sent:

- Stripe (localstripe) holds exactly one succeeded PaymentIntent per invoice and none
  for an unknown invoice; the database one payment attempt per invoice, succeeded; the
  invoice numbers, finalized by both processes at once, are gapless and unique;
- each process's identity (the SDK's default, pid@host, printed in its "polling" line)
  ran a share of the charges and of the workflow tasks, and the two charged at the same
  time: read from the histories (ActivityTaskStarted and WorkflowTaskStarted name the
  worker that polled the task).

Everything is private to the test, built from the bench's pieces (bench.common,
bench.stack): a dev server (SQLite with WAL), localstripe, a PostgreSQL database, the
customer pool and the starts; the worker processes are the chaos run's
(tests.chaos.processes.WorkerProcess), its charge and numbering checks too. The CPU of
each process is printed (``-s``), never asserted.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench import stack
from bench.common import CpuMeter, dev_server, localstripe, postgres_database
from kakin import contracts
from models.tables import Invoice, InvoiceNumberSequence, PaymentAttempt
from tests.chaos import invariants
from tests.chaos.processes import WorkerProcess
from tests.support.encryption import TEST_KEYS, converter_for_tests

pytestmark = pytest.mark.devserver  # its own dev server, localstripe and two workers

# The activities that charge: a cycle's charge alone (older runs), or issued and charged
# in one (the run-of-renewals patch).
CHARGING = (contracts.ACTIVITY_CHARGE_INVOICE, contracts.ACTIVITY_ISSUE_AND_CHARGE_INVOICE)
SUBSCRIPTIONS = 500
CUSTOMERS = 50  # a pool: subscriptions are spread over them round-robin
TASK_QUEUE = "billing"  # the default, as two copies of `python worker.py` would poll
# Seconds from the first start to the moment every first cycle falls due: enough for the
# starts to land before it (the test prints how long they took), so the cycles come as
# one burst that both processes work through at once.
LEAD_SECONDS = 20.0
# Each process runs at least this share of the charges: both did work, not a token task.
MIN_SHARE = 0.1


@dataclass
class Ran:
    """What one worker identity ran, from the histories."""

    activities: Counter[str] = field(default_factory=Counter)
    workflow_tasks: int = 0
    charge_times: list[datetime] = field(default_factory=list)


def worker_env(database_url: str, stripe_url: str, temporal: str, outbox: Path) -> dict[str, str]:
    """The environment of both copies: the same settings, as a deployment gives them."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("KAKIN_")}
    return {
        **inherited,
        "PYTHONUNBUFFERED": "1",
        "KAKIN_DATABASE_URL": database_url,
        "KAKIN_TEMPORAL_ADDRESS": temporal,
        "KAKIN_TASK_QUEUE": TASK_QUEUE,
        "KAKIN_STRIPE_API_KEY": stack.STRIPE_KEY,
        "KAKIN_STRIPE_API_BASE": stripe_url,
        "KAKIN_STRIPE_CONFIRM_OFF_SESSION": "false",  # localstripe rejects off_session
        "KAKIN_OUTBOX_DIR": str(outbox),
        # A receipt's PDF costs ~0.2 s of CPU: 500 of them would be most of the run.
        "KAKIN_ATTACH_INVOICE_PDF": "false",
        "KAKIN_ENCRYPTION_KEYS": TEST_KEYS,
        "KAKIN_SELLER_REGISTRATION_NUMBER": "",
    }


def identity_of(worker: WorkerProcess) -> str:
    """The identity a worker printed in its "polling task queue(s) ... as <identity>" line."""
    found = re.search(r"polling task queue\(s\) .* as (\S+)", worker.log.read_text())
    assert found, f"no polling line with an identity in {worker.log}"
    return found.group(1)


def settled(sessions: sessionmaker[Session], outbox: Path) -> tuple[int, int]:
    """(paid invoices, receipts in the outbox)."""
    with sessions() as session:
        paid = session.scalar(
            select(func.count()).select_from(Invoice).where(Invoice.status == "paid")
        )
    return int(paid or 0), stack.count_eml(outbox)


async def wait_settled(
    sessions: sessionmaker[Session], outbox: Path, workers: list[WorkerProcess], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        paid, receipts = await asyncio.to_thread(settled, sessions, outbox)
        if paid >= SUBSCRIPTIONS and receipts >= SUBSCRIPTIONS:
            return
        dead = [str(w.log) for w in workers if not w.alive()]
        assert not dead, f"worker(s) exited: see {dead}"
        assert time.monotonic() < deadline, (
            f"after {timeout:.0f} s only {paid} invoices paid, {receipts} receipts sent; "
            f"see {[str(w.log) for w in workers]}"
        )
        await asyncio.sleep(0.5)


async def what_each_ran(client: Client, subscription_ids: list[str]) -> dict[str, Ran]:
    """Per worker identity, the tasks it ran in every run of every subscription.

    Each subscription's runs are walked back from the latest through the run each one
    continued (however often the workflow continues as new).
    """
    ran: dict[str, Ran] = defaultdict(Ran)
    gate = asyncio.Semaphore(16)

    async def one_run(workflow_id: str, run_id: str | None) -> str | None:
        async with gate:
            history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        scheduled: dict[int, str] = {}
        previous = None
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
                started = event.workflow_execution_started_event_attributes
                previous = started.continued_execution_run_id or None
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                attributes = event.activity_task_scheduled_event_attributes
                scheduled[event.event_id] = attributes.activity_type.name
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                task = event.activity_task_started_event_attributes
                name = scheduled[task.scheduled_event_id]
                ran[task.identity].activities[name] += 1
                if name in CHARGING:
                    ran[task.identity].charge_times.append(event.event_time.ToDatetime())
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                ran[event.workflow_task_started_event_attributes.identity].workflow_tasks += 1
        return previous

    async def one_subscription(subscription_id: str) -> None:
        workflow_id, run_id = f"subscription-{subscription_id}", None
        while True:
            run_id = await one_run(workflow_id, run_id)
            if run_id is None:
                return

    await asyncio.gather(*(one_subscription(s) for s in subscription_ids))
    return dict(ran)


async def test_two_worker_processes_share_500_renewals_and_charge_each_invoice_once(
    tmp_path: Path,
) -> None:
    began = time.monotonic()
    outbox = tmp_path / "outbox"
    with postgres_database("two_workers") as database:
        async with localstripe(tmp_path) as stripe, dev_server(tmp_path) as server:
            client = await Client.connect(server.address, data_converter=converter_for_tests())
            kakin = stack.make_kakin(database.url, stripe.url, outbox)
            database.before_drop.append(kakin.close)
            address = server.address
            environment = worker_env(database.url, stripe.url, address, outbox)
            workers = [
                WorkerProcess(environment, cwd=tmp_path, log=tmp_path / f"worker-{n}.log")
                for n in (1, 2)
            ]
            try:
                for worker in workers:
                    worker.start()
                customers, price_id = await stack.make_customers(kakin, CUSTOMERS)
                await asyncio.gather(*(asyncio.to_thread(w.wait_polling) for w in workers))
                identities = [identity_of(w) for w in workers]
                ready = time.monotonic()
                meter = CpuMeter(
                    {"test": os.getpid(), "temporal": server.process.pid, "localstripe": stripe.pid}
                    | {f"worker_{n}": w.popen.pid for n, w in enumerate(workers, 1) if w.popen}
                )

                due = stack.due_after(LEAD_SECONDS)
                subscription_ids = await stack.start_subscriptions(
                    client, kakin, task_queue=TASK_QUEUE, customers=customers,
                    price_id=price_id, count=SUBSCRIPTIONS, due=due,
                )  # fmt: skip
                started = time.monotonic()
                await wait_settled(kakin.sessions, outbox, workers, timeout=LEAD_SECONDS + 240)
                settled_at = time.monotonic()
                meter.stop()  # CPU seconds per process, printed (figures are for reading)
            finally:
                for worker in workers:
                    await asyncio.to_thread(worker.stop)
            stopped = [w.popen.returncode if w.popen else None for w in workers]

            with kakin.sessions() as session:
                invoices = list(session.scalars(select(Invoice)))
                attempts = list(session.scalars(select(PaymentAttempt)))
                sequence = session.get(InvoiceNumberSequence, "invoice")
                next_number = sequence.next_value if sequence else None
            intents = await asyncio.to_thread(invariants.stripe_intents, stripe.url)
            ran = await what_each_ran(client, subscription_ids)
    checked = time.monotonic()
    charges = {who: sum(r.activities[name] for name in CHARGING) for who, r in ran.items()}
    print(
        f"\nsetup {ready - began:.1f} s, {SUBSCRIPTIONS} starts {started - ready:.1f} s "
        f"(due {LEAD_SECONDS:.0f} s after the first), all paid {settled_at - started:.1f} s "
        f"after the last start, histories read {checked - settled_at:.1f} s; "
        f"total {checked - began:.1f} s"
    )
    for who in identities:
        print(f"  {who}: charges {charges.get(who, 0)}, workflow tasks "
              f"{ran[who].workflow_tasks if who in ran else 0}, activities "
              f"{dict(ran[who].activities) if who in ran else {}}")  # fmt: skip

    # Two copies of one command, each with its own identity: the SDK's pid@host.
    host = socket.gethostname()
    assert identities == [f"{w.popen.pid}@{host}" for w in workers if w.popen]
    assert stopped == [0, 0], "both workers stop cleanly on SIGTERM"

    # Every subscription's invoice paid, one invoice each, one receipt each.
    assert len(invoices) == SUBSCRIPTIONS
    assert {i.subscription_id for i in invoices} == set(subscription_ids)
    assert {i.status for i in invoices} == {"paid"}
    assert stack.count_eml(outbox) == SUBSCRIPTIONS

    # Nobody charged twice: counted at Stripe and in the database.
    at_stripe = invariants.check_charges(invoices, intents)
    assert at_stripe.checked == SUBSCRIPTIONS
    assert not at_stripe.violations, at_stripe.examples
    assert sum(1 for i in intents if i.status == "succeeded") == SUBSCRIPTIONS
    per_invoice = Counter(a.invoice_id for a in attempts)
    assert set(per_invoice.values()) == {1} and len(per_invoice) == SUBSCRIPTIONS
    assert {a.status for a in attempts} == {"succeeded"}
    numbers = invariants.check_numbers(invoices, next_number)
    assert not numbers.violations, numbers.examples

    # Both did work: each ran a share of the charges and of the workflow tasks, every
    # charge ran once (no other identity), and their charging overlapped in time.
    assert set(charges) <= set(identities), f"charges by unknown workers: {charges}"
    assert sum(charges.values()) == SUBSCRIPTIONS
    for who in identities:
        assert charges.get(who, 0) >= MIN_SHARE * SUBSCRIPTIONS, charges
        assert ran[who].workflow_tasks >= MIN_SHARE * SUBSCRIPTIONS, (
            {w: r.workflow_tasks for w, r in ran.items()}
        )  # fmt: skip
    first, second = (ran[who].charge_times for who in identities)
    assert max(min(first), min(second)) < min(max(first), max(second)), (
        "one worker charged only after the other had finished"
    )
