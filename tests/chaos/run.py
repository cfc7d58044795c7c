"""One chaos run: set everything up, renew subscriptions under faults, settle, check.

The run owns every process it starts (private Temporal dev server, private
PostgreSQL cluster, localstripe, the worker) and stops each of them by its own pid
in ``finally`` blocks, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from billing.dunning import DunningPolicy
from kakin import contracts
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.dev.embedded import ManagedProcess, start_localstripe
from kakin.platform.binaries import find_binary
from kakin.platform.codec import Keyring
from kakin.platform.settings import Settings
from kakin.services import catalog, payments, usage, webhook_endpoints
from kakin.services import customers as customers_service
from kakin.services import subscriptions as subscriptions_service
from models.db import make_engine, make_session_factory, migrate
from models.repositories import webhook_endpoints as endpoint_sql
from models.webhook_tables import WebhookDelivery
from tests.chaos import invariants
from tests.chaos.invariants import Planned, Report, StripeIntent, UsageLog, WorkflowView
from tests.chaos.processes import PrivatePostgres, WorkerProcess
from tests.helpers import connect_to, free_ports, running
from tests.support import fault_proxy
from tests.support.encryption import TEST_KEY, TEST_KEY_ID, TEST_KEYS, converter_for_tests
from tests.support.fault_proxy import FaultProxy
from tests.support.sendgrid_loopback import SendGridLoopback
from tests.support.webhook_receiver import Answer, Receiver, receiving
from tests.support.webhook_relay import WebhookRelay, register

OK_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"
METRIC = "chaos_api_calls"
WEBHOOK_SECRET = "whsec_chaos"
# kakin's outgoing webhooks in the run: a few types, so a delivery workflow per event
# does not crowd out the billing (customer.created comes from the outbox, the rest from
# the ledger); a share of the receiver's answers are 503 with Retry-After: 1.
OUTGOING_TYPES = (
    "customer.created", "subscription.created", "subscription.canceled", "invoice.payment_failed",
)  # fmt: skip
OUTGOING_REFUSED = 0.1


@dataclass
class ChaosConfig:
    subscriptions: int = 200
    renewals: int = 3  # renewals after the first period: renewals + 1 paid invoices each
    seconds_per_month: float = 20.0  # test clock: a month of billing time in real seconds
    declined_share: float = 0.05  # cards declined: dunning all the way to cancellation
    metered_share: float = 0.25  # subscriptions with a metered item receiving usage events
    stripe_fault_rate: float = 0.08  # share of PaymentIntent requests that get a fault
    max_stalls: int = 4  # Stripe timeouts (each holds a charge ~20 s)
    kills: int = 5  # worker SIGKILLs, at random moments while the subscriptions renew
    # Faults are timed by progress (the share of the wanted paid periods that are paid),
    # not by the clock, so they land while work is going on however slow the machine is.
    kill_progress: tuple[float, float] = (0.05, 0.85)
    email_outage_at: float = 0.3
    db_outage_at: float = 0.55
    kill_downtime: tuple[float, float] = (0.5, 3.0)  # seconds before the restart
    db_outage_seconds: float = 5.0
    email_outage_seconds: float = 10.0
    attach_pdf: bool = False  # PDFs cost ~0.2 s of CPU per email
    # Stripe's webhooks, sent by the emulator through tests/support/webhook_relay.py:
    # each event delayed up to this many seconds (so they overtake each other), and
    # with these shares sent twice at once, or again later.
    webhook_max_delay: float = 3.0
    webhook_concurrent: float = 0.2
    webhook_duplicate: float = 0.2
    card_change_share: float = 0.1  # good subscriptions whose card changes, twice
    card_change_at: tuple[float, float] = (0.25, 0.6)
    outgoing_settle_timeout: float = 120.0  # outgoing webhooks left pending after the run
    seed: int = 5
    timeout: float = 900.0  # the chaos phase gives up after this many seconds
    stalled_after: float = 150.0  # ...or when nothing got paid or ended for this long
    settle_timeout: float = 240.0
    keep: bool = False  # keep the run directory (logs) afterwards
    log: Callable[[str], None] = field(default=lambda line: print(line, flush=True), repr=False)


@dataclass
class FaultCounts:
    worker_kills: int = 0
    worker_starts: int = 0
    stripe_requests: int = 0
    stripe_faults: dict[str, int] = field(default_factory=dict)
    db_outages: int = 0
    db_outage_seconds: float = 0.0
    email_outage_seconds: float = 0.0
    email_failures: int = 0  # requests the email endpoint answered with an error
    usage_batches: int = 0
    usage_resends: int = 0
    usage_errors: int = 0
    webhook_events: int = 0  # sent by the emulator
    webhook_deliveries: int = 0  # tries by the relay (copies and retries included)
    webhook_not_2xx: int = 0  # tries answered otherwise (the database was down...)
    card_changes: int = 0


@dataclass
class ChaosResult:
    config: dict[str, Any]
    report: Report
    faults: FaultCounts
    seconds: dict[str, float]
    run_dir: str

    @property
    def violations(self) -> int:
        return self.report.violations

    def as_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            **self.report.as_dict(),
            "faults": asdict(self.faults),
            "seconds": self.seconds,
            "run_dir": self.run_dir,
        }


class _Run:
    def __init__(self, config: ChaosConfig, run_dir: Path) -> None:
        self.config = config
        self.run_dir = run_dir
        self.rng = random.Random(config.seed)
        self.hook_rng = random.Random(config.seed + 2)
        self.faults = FaultCounts()
        self.usage = UsageLog()
        self.planned: list[Planned] = []
        self.cancel_sent: set[str] = set()
        self.card_changed: dict[str, str] = {}  # kakin customer id -> Stripe customer id
        self.stop = asyncio.Event()
        self.db_down = False
        self.t0 = time.monotonic()
        self.t_chaos = self.t0
        self.progress = 0.0  # share of the wanted paid periods that are paid
        self.timeline: list[tuple[float, str]] = []  # (time.monotonic(), fault)
        # set up in run()
        self.sessions: sessionmaker[Session]
        self.client: Client
        self.worker: WorkerProcess
        self.pg: PrivatePostgres
        self.proxy: FaultProxy
        self.mail: SendGridLoopback
        self.relay: WebhookRelay
        self.hooks: Receiver
        self.hook_secret: str
        self.stripe_direct: StripeGateway

    def explain(self, moment: float) -> str:
        """A moment as run time, with the faults from 60 s before to 5 s after it (evidence)."""
        near = [
            f"{what} {abs(moment - when):.1f} s {'before' if when <= moment else 'after'}"
            for when, what in self.timeline
            if -5 <= moment - when <= 60
        ]
        return f"t={moment - self.t0:.1f}s" + (f" ({', '.join(near)})" if near else "")

    def say(self, line: str) -> None:
        self.config.log(f"[chaos {time.monotonic() - self.t0:6.1f}s] {line}")

    # -- set up ---------------------------------------------------------------------------

    def _customers(self, stripe_direct: StripeGateway) -> list[tuple[str, bool, bool]]:
        n = self.config.subscriptions
        declined = set(self.rng.sample(range(n), round(n * self.config.declined_share)))
        good = [i for i in range(n) if i not in declined]
        metered = set(self.rng.sample(good, round(n * self.config.metered_share)))

        def one(i: int) -> tuple[str, bool, bool]:
            customer_id = customers_service.create_customer(
                self.sessions, stripe_direct,
                email=f"chaos{i:05d}@example.jp", name=f"カオス {i:05d}", currency="JPY",
                locale="ja" if i % 2 else "en", time_zone="Asia/Tokyo",
                card_number=DECLINED_CARD if i in declined else OK_CARD,
            )  # fmt: skip
            return customer_id, i in declined, i in metered

        with ThreadPoolExecutor(max_workers=6) as pool:
            return list(pool.map(one, range(n)))

    async def _start_subscriptions(
        self, customers: list[tuple[str, bool, bool]], price_id: str, metered_price: str
    ) -> None:
        speed = 30 * 86_400 / self.config.seconds_per_month
        gate = asyncio.Semaphore(8)

        async def one(customer_id: str, declined: bool, metered: bool) -> None:
            async with gate:
                sub_id = await subscriptions_service.start_subscription(
                    self.client, self.sessions, task_queue="billing",
                    customer_id=customer_id, price_id=price_id,
                    test_clock_speed=speed, dunning=DunningPolicy(),
                )  # fmt: skip
                if metered:
                    await asyncio.to_thread(
                        catalog.add_item,
                        self.sessions,
                        subscription_id=sub_id,
                        price_id=metered_price,
                    )
                self.planned.append(Planned(sub_id, customer_id, declined, metered))

        await asyncio.gather(*(one(*c) for c in customers))

    # -- faults ---------------------------------------------------------------------------

    async def _killer(self) -> None:
        low, high = self.config.kill_progress
        for at in sorted(self.rng.uniform(low, high) for _ in range(self.config.kills)):
            await self._at_progress(at)
            if self.stop.is_set():
                break
            # A kill of a worker still importing would test nothing: let it work a little.
            await asyncio.to_thread(self.worker.wait_polling)
            assert self.worker.polling_since is not None
            await asyncio.sleep(max(0.0, self.worker.polling_since + 2 - time.monotonic()))
            await asyncio.to_thread(self.worker.kill)
            self.timeline.append((time.monotonic(), "worker SIGKILL"))
            self.faults.worker_kills += 1
            await asyncio.sleep(self.rng.uniform(*self.config.kill_downtime))
            self.worker.start()
            self.faults.worker_starts += 1
            self.say(f"worker SIGKILLed and restarted (kill #{self.faults.worker_kills})")

    async def _db_outage(self, at: float) -> None:
        await self._at_progress(at)
        if self.stop.is_set():
            return
        self.say("PostgreSQL: stop -m immediate")
        began = time.monotonic()
        self.timeline.append((began, "PostgreSQL stopped"))
        self.db_down = True
        await asyncio.to_thread(self.pg.stop, "immediate")
        await asyncio.sleep(self.config.db_outage_seconds)
        await asyncio.to_thread(self.pg.start)
        self.db_down = False
        self.timeline.append((time.monotonic(), "PostgreSQL started"))
        self.faults.db_outages += 1
        self.faults.db_outage_seconds += time.monotonic() - began
        self.say(f"PostgreSQL: back after {time.monotonic() - began:.1f} s")

    async def _email_outage(self, at: float) -> None:
        await self._at_progress(at)
        if self.stop.is_set():
            return
        self.say(f"email endpoint: 503 for {self.config.email_outage_seconds:.0f} s")
        self.mail.fail_for(self.config.email_outage_seconds, 503)
        self.timeline.append((time.monotonic(), "email endpoint 503s"))
        self.faults.email_outage_seconds += self.config.email_outage_seconds

    async def _at_progress(self, share: float) -> None:
        while not self.stop.is_set() and self.progress < share:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 0.5)

    # -- card changes (webhook traffic) --------------------------------------------------------

    async def _card_changes(self) -> None:
        """Cards change twice, a moment apart: at Stripe (as its hosted pages would; kakin
        learns from customer.updated, late, duplicated and reordered) or through kakin
        (``kakin update-card``: Stripe's default is set, its event must change nothing)."""
        good = [p for p in self.planned if not p.declined]
        chosen = self.rng.sample(good, round(len(good) * self.config.card_change_share))
        for at in self.config.card_change_at:
            await self._at_progress(at)
            if self.stop.is_set():
                return
            for n, plan in enumerate(chosen):
                try:
                    await self._change_card(plan, through_kakin=n % 2 == 1)
                except Exception as error:  # the database is down: this change is skipped
                    self.say(f"card change of {plan.subscription_id} failed: {error!r}")
            self.say(f"{len(chosen)} cards changed (progress {self.progress:.0%})")

    async def _change_card(self, plan: Planned, *, through_kakin: bool) -> None:
        with self.sessions() as session:
            stripe_customer = session.execute(
                text("SELECT stripe_customer_id FROM customers WHERE id = :id"),
                {"id": plan.customer_id},
            ).scalar_one()
        self.card_changed[plan.customer_id] = stripe_customer
        if through_kakin:
            await payments.update_payment_method(
                self.client, self.sessions, self.stripe_direct, plan.subscription_id,
                card_number=OK_CARD, requested_by="chaos",
            )  # fmt: skip
        else:
            for _ in range(2):  # two changes in a row: their events may arrive swapped
                method = await asyncio.to_thread(
                    self.stripe_direct.create_test_payment_method,
                    card_number=OK_CARD, stripe_customer_id=stripe_customer,
                )  # fmt: skip
                await asyncio.to_thread(
                    self.stripe_direct.set_default_payment_method,
                    stripe_customer_id=stripe_customer, payment_method_id=method,
                )  # fmt: skip
        self.faults.card_changes += 1

    def _stripe_defaults(self) -> dict[str, str | None]:
        return {
            customer_id: self.stripe_direct.default_payment_method(stripe_customer)
            for customer_id, stripe_customer in self.card_changed.items()
        }

    def _webhook_tries(self) -> list[invariants.WebhookTry]:
        tries = []
        for d in self.relay.deliveries:
            duplicate = None
            if 200 <= d.status < 300:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    duplicate = bool(json.loads(d.body)["duplicate"])
            tries.append(invariants.WebhookTry(d.event_id, d.type, d.status, duplicate))
        return tries

    # -- usage traffic ------------------------------------------------------------------------

    def _open_periods(self, ids: list[str]) -> dict[str, tuple[Any, Any, str, str]]:
        with self.sessions() as session:
            rows = session.execute(
                text(
                    "SELECT id, current_period_start, current_period_end, customer_id, status "
                    "FROM subscriptions WHERE id = ANY(:ids)"
                ),
                {"ids": ids},
            ).all()
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows if r[1] is not None}

    async def _ingest(self, events: list[usage.UsageEventIn]) -> list[usage.EventResult] | None:
        """Send one batch like a careful client: retry (same ids) until it is answered."""
        for attempt in range(30):
            try:
                return await asyncio.to_thread(usage.ingest, self.sessions, events)
            except Exception:
                self.usage.errors += 1
                await asyncio.sleep(min(0.25 * 2**attempt, 3.0))
        return None

    async def _usage_traffic(self) -> None:
        metered = [p for p in self.planned if p.metered]
        if not metered:
            return
        counter = 0
        while not self.stop.is_set():
            await asyncio.sleep(0.3)
            chosen = self.rng.sample(metered, min(6, len(metered)))
            try:
                periods = await asyncio.to_thread(
                    self._open_periods, [p.subscription_id for p in chosen]
                )
            except Exception:
                continue  # the database is down: try again later
            events = []
            owners: dict[str, str] = {}
            for sub_id, (start, end, customer_id, status) in periods.items():
                if status == "canceled":
                    continue
                for _ in range(self.rng.randint(1, 3)):
                    counter += 1
                    event_id = f"chaos-{counter:07d}"
                    moment = start + (end - start) * self.rng.uniform(0.0, 0.95)
                    event = usage.UsageEventIn(
                        event_id=event_id, metric=METRIC, timestamp=moment, subscription_id=sub_id
                    )
                    events.append(event)
                    self.usage.sent[(customer_id, event_id)] = sub_id
                    owners[event_id] = customer_id
            if not events:
                continue
            if self.rng.random() < 0.15:
                events.append(events[0])  # the same event twice in one batch
            tries = 2 if self.rng.random() < 0.3 else 1  # a client resending after a timeout
            for _ in range(tries):
                results = await self._ingest(events)
                self.usage.batches += 1
                if results is None:
                    continue
                for result in results:
                    self.usage.record((owners[result.event_id], result.event_id), result.status)
            self.usage.resends += tries - 1

    # -- progress -----------------------------------------------------------------------------

    def _progress(self) -> dict[str, tuple[str, int]]:
        with self.sessions() as session:
            rows = session.execute(
                text(
                    "SELECT s.id, s.status, count(i.id) FILTER (WHERE i.status = 'paid' AND "
                    "EXISTS (SELECT 1 FROM invoice_lines l WHERE l.invoice_id = i.id "
                    "AND l.kind = 'subscription')) FROM subscriptions s "
                    "LEFT JOIN invoices i ON i.subscription_id = s.id GROUP BY s.id, s.status"
                )
            ).all()
        return {r[0]: (r[1], int(r[2])) for r in rows}

    async def _drive(self) -> None:
        """Until every subscription is through its script: cancel the ones that are."""
        target = self.config.renewals + 1
        last_line = 0.0
        deadline = time.monotonic() + self.config.timeout
        seen, moved = (-1, -1), time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            try:
                progress = await asyncio.to_thread(self._progress)
            except Exception:
                continue
            done = 0
            for plan in self.planned:
                status, paid = progress.get(plan.subscription_id, ("?", 0))
                if plan.declined:
                    done += status == "canceled"
                    continue
                if paid >= target:
                    done += 1
                    if plan.subscription_id not in self.cancel_sent:
                        # Nothing more to bill: end at the end of the paid period.
                        with contextlib.suppress(Exception):
                            # Done: cancel now (its usage goes on a final invoice).
                            await subscriptions_service.cancel_subscription(
                                self.client, plan.subscription_id,
                                reason="chaos run: renewals done", at_period_end=False,
                                requested_by="chaos",
                            )  # fmt: skip
                            self.cancel_sent.add(plan.subscription_id)
            paid_total = sum(min(p[1], target) for p in progress.values())
            wanted = target * sum(not p.declined for p in self.planned)
            self.progress = paid_total / max(wanted, 1)
            if time.monotonic() - last_line > 5:
                last_line = time.monotonic()
                self.say(
                    f"{done}/{len(self.planned)} through their script, paid periods "
                    f"{paid_total}/{wanted}, "
                    f"kills {self.faults.worker_kills}, stripe faults "
                    f"{sum(self.proxy.counts.values())}, usage events {len(self.usage.sent)}, "
                    f"webhooks waiting {self.relay.waiting}, {_threads()}"
                )
            if done == len(self.planned):
                return
            if (paid_total, done) != seen:
                seen, moved = (paid_total, done), time.monotonic()
            elif time.monotonic() - moved > self.config.stalled_after:
                self.say(f"nothing moved for {self.config.stalled_after:.0f} s: stuck?")
                return
        self.say("chaos phase timed out; checking what there is")

    # -- settle and compare ---------------------------------------------------------------------

    async def _running(self) -> int:
        count = await self.client.count_workflows(
            "WorkflowType = 'SubscriptionWorkflow' AND ExecutionStatus = 'Running'"
        )
        return count.count

    async def _settle(self) -> None:
        deadline = time.monotonic() + self.config.settle_timeout
        while time.monotonic() < deadline:
            running = await self._running()
            if running == 0:
                return
            self.say(f"settling: {running} workflows still running")
            await asyncio.sleep(3)

    async def _views(self) -> list[WorkflowView]:
        gate = asyncio.Semaphore(10)

        async def one(sub_id: str) -> WorkflowView:
            async with gate:
                handle = self.client.get_workflow_handle(subscriptions_service.workflow_id(sub_id))
                described = await handle.describe()
                status = described.status
                name = status.name if status is not None else "UNKNOWN"
                if status == WorkflowExecutionStatus.COMPLETED:
                    return WorkflowView(sub_id, name, str(await handle.result()))
                if status != WorkflowExecutionStatus.RUNNING:
                    return WorkflowView(sub_id, name, None)
                # Running: the query and the row must agree once nothing is in flight.
                for _ in range(10):
                    first = await subscriptions_service.subscription_status(self.client, sub_id)
                    row = await asyncio.to_thread(self._progress_one, sub_id)
                    second = await subscriptions_service.subscription_status(self.client, sub_id)
                    if first.status == second.status == row:
                        break
                    await asyncio.sleep(1)
                return WorkflowView(sub_id, name, str(second.status))

        return await asyncio.gather(*(one(p.subscription_id) for p in self.planned))

    def _progress_one(self, sub_id: str) -> str:
        with self.sessions() as session:
            return str(
                session.execute(
                    text("SELECT status FROM subscriptions WHERE id = :id"), {"id": sub_id}
                ).scalar_one()
            )

    def _intents(self, api_base: str) -> list[StripeIntent]:
        return invariants.stripe_intents(api_base)

    # -- the whole run ----------------------------------------------------------------------------

    async def run(self) -> ChaosResult:
        config = self.config
        seconds: dict[str, float] = {}
        pg_port, stripe_port = free_ports(2)
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.pg = PrivatePostgres(pg_port)
        localstripe: ManagedProcess | None = None
        env: WorkflowEnvironment | None = None
        self.worker = WorkerProcess({}, cwd=self.run_dir, log=logs / "worker.log")
        stripe_url = f"http://127.0.0.1:{stripe_port}"
        self.stripe_url = stripe_url
        self.proxy = FaultProxy(stripe_url, stall_seconds=21)
        self.mail = SendGridLoopback()
        self.proxy.__enter__()
        self.mail.start()
        stack = contextlib.ExitStack()
        try:
            self.say(f"private PostgreSQL on port {pg_port} in {self.pg.base}")
            await asyncio.to_thread(self.pg.init)
            await asyncio.to_thread(self.pg.start)
            await asyncio.to_thread(migrate, self.pg.url)
            self.sessions = make_session_factory(make_engine(self.pg.url))
            # Registered before anything happens: every event of the run is for it.
            self.hooks = stack.enter_context(receiving(Receiver([], choose=self._hook_answer)))
            self.hook_secret = webhook_endpoints.create_endpoint(
                self.sessions, Keyring(keys={TEST_KEY_ID: TEST_KEY}, current=TEST_KEY_ID),
                lambda _row, secret: secret, url=self.hooks.url,
                enabled_events=list(OUTGOING_TYPES), live_mode=False, created_by="chaos",
            )  # fmt: skip
            localstripe, started = await asyncio.gather(
                start_localstripe(port=stripe_port, log_dir=logs),
                WorkflowEnvironment.start_local(
                    dev_server_existing_path=find_binary("temporal"),
                    search_attributes=list(contracts.SEARCH_ATTRIBUTES),
                    data_converter=converter_for_tests(),
                    ui=False,
                    # Its warnings about tasks of a killed worker would drown the figures.
                    dev_server_log_level="error",
                ),
            )
            env = started
            self.client = env.client
            self.worker.env = self._worker_env(env)
            api_url = stack.enter_context(running(self._api(env)))
            self.relay = stack.enter_context(
                WebhookRelay(
                    f"{api_url}/v1/webhooks/stripe",
                    secret=WEBHOOK_SECRET,
                    retry_delay=1.0,
                    max_tries=120,
                )
            )
            self.relay.chaos(
                random.Random(config.seed + 1),
                max_delay=config.webhook_max_delay,
                duplicate=config.webhook_duplicate,
                concurrent=config.webhook_concurrent,
            )
            await asyncio.to_thread(register, stripe_url, self.relay)
            seconds["start_services"] = time.monotonic() - self.t0

            began = time.monotonic()
            stripe_direct = StripeGateway(
                api_key="sk_test_kakin", api_base=stripe_url, confirm_off_session=False
            )
            self.stripe_direct = stripe_direct
            await asyncio.to_thread(
                catalog.create_metric,
                self.sessions, code=METRIC, name="API calls", aggregation="count",
            )  # fmt: skip
            price_id = await asyncio.to_thread(
                catalog.create_price, self.sessions,
                product_name="Chaos plan", currency="JPY", unit_amount=3000, interval="month",
            )  # fmt: skip
            metered_price = await asyncio.to_thread(
                catalog.create_price, self.sessions,
                product_name="Chaos API", currency="JPY", interval="month",
                pricing_model="per_unit", unit_amount=2, metric_code=METRIC,
            )  # fmt: skip
            customers = await asyncio.to_thread(self._customers, stripe_direct)
            seconds["create_customers"] = time.monotonic() - began
            self.say(f"{len(customers)} customers at Stripe; starting the worker")

            self.worker.start()
            self.faults.worker_starts += 1
            await asyncio.to_thread(self.worker.wait_polling)
            await self._start_subscriptions(customers, price_id, metered_price)
            self.say(f"{len(self.planned)} subscriptions started; faults on")
            self.t_chaos = time.monotonic()
            self.proxy.chaos(
                config.stripe_fault_rate,
                {
                    500: 3, 429: 3,
                    fault_proxy.DROP: 2,
                    fault_proxy.DROP_AFTER_FORWARD: 3,
                    fault_proxy.ERROR_AFTER_FORWARD: 2,
                    fault_proxy.STALL: 1,
                },
                path_regex=r"^/v1/payment_intents",
                methods=("GET", "POST"),
                seed=config.seed,
                limits={fault_proxy.STALL: config.max_stalls},
            )  # fmt: skip
            tasks = [
                asyncio.create_task(self._killer()),
                asyncio.create_task(self._email_outage(config.email_outage_at)),
                asyncio.create_task(self._db_outage(config.db_outage_at)),
                asyncio.create_task(self._usage_traffic()),
                asyncio.create_task(self._card_changes()),
            ]
            try:
                await self._drive()
            finally:
                self.stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)
                self.proxy.calm()
                if not self.pg.running:
                    await asyncio.to_thread(self.pg.start)
                if not self.worker.alive():
                    self.worker.start()
                    self.faults.worker_starts += 1
            seconds["chaos"] = time.monotonic() - self.t_chaos
            self.say("faults off; letting the subscriptions settle")

            began = time.monotonic()
            await self._settle()
            seconds["settle"] = time.monotonic() - began
            began = time.monotonic()
            views = await self._views()
            seconds["compare_states"] = time.monotonic() - began
            # Anything still running is stuck: end it so the run leaves nothing behind.
            for view in views:
                if view.execution == "RUNNING":
                    with contextlib.suppress(Exception):
                        await subscriptions_service.cancel_subscription(
                            self.client, view.subscription_id, reason="chaos run over",
                            at_period_end=False, requested_by="chaos",
                        )  # fmt: skip
            began = time.monotonic()
            self.say(f"waiting for {self.relay.waiting} webhook deliveries queued or in flight")
            if not await asyncio.to_thread(self.relay.settle):
                self.say(f"webhook deliveries stopped draining: {self.relay.waiting} left")
            refused = Counter(
                f"{d.status} {d.body[:80]}"
                for d in self.relay.deliveries
                if not 200 <= d.status < 300
            )
            self.say(f"webhook answers other than 2xx: {dict(refused.most_common(8))}")
            seconds["webhooks_idle"] = time.monotonic() - began
            began = time.monotonic()
            if not await self._outgoing_settle():
                self.say("outgoing webhook deliveries still pending")
            seconds["outgoing_webhooks_idle"] = time.monotonic() - began
            began = time.monotonic()
            intents = await asyncio.to_thread(self._intents, stripe_url)
            defaults = await asyncio.to_thread(self._stripe_defaults)
            seconds["list_stripe"] = time.monotonic() - began
            began = time.monotonic()
            report = await asyncio.to_thread(
                invariants.check,
                self.sessions,
                intents=intents,
                delivered=self.mail.accepted(),
                usage=self.usage,
                views=views,
                planned=self.planned,
                renewals=config.renewals,
                explain=self.explain,
                webhook_events=list(self.relay.events),
                webhook_tries=self._webhook_tries(),
                stripe_defaults=defaults,
                outgoing=invariants.OutgoingLog(
                    types=OUTGOING_TYPES, secret=self.hook_secret,
                    received=list(self.hooks.received),
                    kills=[when for when, what in self.timeline if what == "worker SIGKILL"],
                ),
            )  # fmt: skip
            seconds["check"] = time.monotonic() - began
        finally:
            await asyncio.to_thread(self.worker.stop)
            await asyncio.to_thread(stack.close)  # the API and the webhook relay
            self.proxy.__exit__()
            with contextlib.suppress(Exception):
                self.mail.stop()
            if env is not None:
                await env.shutdown()
            if localstripe is not None:
                localstripe.stop()
            await asyncio.to_thread(self.pg.remove)
        self.faults.stripe_requests = self.proxy.requests
        self.faults.stripe_faults = dict(sorted(self.proxy.counts.items()))
        self.faults.email_failures = sum(1 for r in self.mail.requests if r.status >= 400)
        self.faults.usage_batches = self.usage.batches
        self.faults.usage_resends = self.usage.resends
        self.faults.usage_errors = self.usage.errors
        if hasattr(self, "relay"):
            self.faults.webhook_events = len(self.relay.events)
            self.faults.webhook_deliveries = len(self.relay.deliveries)
            self.faults.webhook_not_2xx = sum(
                1 for d in self.relay.deliveries if not 200 <= d.status < 300
            )
        seconds["total"] = time.monotonic() - self.t0
        shown = {k: v for k, v in asdict(config).items() if k != "log"}
        return ChaosResult(shown, report, self.faults, seconds, str(self.run_dir))

    def _hook_answer(self) -> Answer:
        """The run's receiver of outgoing webhooks: mostly 200, sometimes 503 asking for
        a retry in 1 s (the next try comes then, not on the 5 min step)."""
        if self.hook_rng.random() < OUTGOING_REFUSED:
            return Answer(503, headers={"Retry-After": "1"}, body="busy")
        return Answer(200)

    async def _outgoing_settle(self) -> bool:
        """Wait until the dispatcher has read the whole ledger and no delivery is pending."""
        deadline = time.monotonic() + self.config.outgoing_settle_timeout
        while time.monotonic() < deadline:
            with self.sessions() as session:
                ledger, outbox = endpoint_sql.heads(session)
                (endpoint,) = endpoint_sql.endpoints(session)
                pending = session.scalar(
                    select(func.count()).select_from(WebhookDelivery)
                    .where(WebhookDelivery.status == "pending")
                )  # fmt: skip
                caught_up = (endpoint.ledger_cursor, endpoint.outbox_cursor) == (ledger, outbox)
            if caught_up and not pending:
                return True
            await asyncio.sleep(1)
        return False

    def _api(self, env: WorkflowEnvironment) -> FastAPI:
        """kakin's HTTP API (served in a thread), for the webhooks: Stripe reached directly."""
        settings = Settings(
            stripe_api_key="sk_test_kakin", database_url=self.pg.url, task_queue="billing",
            stripe_webhook_secret=WEBHOOK_SECRET,
        )  # fmt: skip
        return create_app(
            settings=settings,
            sessions=self.sessions,
            temporal=connect_to(env.client.service_client.config.target_host),
            stripe=StripeGateway(
                api_key="sk_test_kakin", api_base=self.stripe_url, confirm_off_session=False
            ),
        )

    def _worker_env(self, env: WorkflowEnvironment) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("KAKIN_")}
        return {
            **base,
            "PYTHONUNBUFFERED": "1",
            "KAKIN_DATABASE_URL": self.pg.url,
            "KAKIN_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "KAKIN_TASK_QUEUE": "billing",
            "KAKIN_STRIPE_API_KEY": "sk_test_kakin",
            "KAKIN_STRIPE_API_BASE": self.proxy.url,
            "KAKIN_STRIPE_CONFIRM_OFF_SESSION": "false",
            "KAKIN_EMAIL_BACKEND": "sendgrid",
            "KAKIN_SENDGRID_API_KEY": "SG.chaos-loopback",
            "KAKIN_SENDGRID_HOST": self.mail.url,
            "KAKIN_OUTBOX_DIR": str(self.run_dir / "outbox"),
            "KAKIN_ATTACH_INVOICE_PDF": "true" if self.config.attach_pdf else "false",
            "KAKIN_ENCRYPTION_KEYS": TEST_KEYS,
            "KAKIN_SELLER_REGISTRATION_NUMBER": "",
        }


async def run_chaos(config: ChaosConfig) -> ChaosResult:
    """Run the whole thing; the run directory (logs) is removed unless ``config.keep``."""
    run_dir = Path(tempfile.mkdtemp(prefix="kakin-chaos-"))
    try:
        return await _Run(config, run_dir).run()
    finally:
        if not config.keep:
            shutil.rmtree(run_dir, ignore_errors=True)


def _threads() -> str:
    """The driver's threads, by what they run: a count that keeps growing is a leak
    (the relay, the proxy and the loopbacks start a thread per delivery or connection)."""
    kinds = Counter(re.sub(r"[-_]\d+", "", t.name) for t in threading.enumerate())
    top = ", ".join(f"{name} {n}" for name, n in kinds.most_common(3))
    return f"threads {threading.active_count()} ({top})"


def timed(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))
