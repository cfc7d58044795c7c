"""Small helpers the tests share: set up a customer and a subscription, run a worker or
the API, move the test server's clock, read what happened."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.bundle import Activities
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.platform.settings import Settings
from kakin.runtime import build_worker
from kakin.services import catalog, customers, subscriptions
from kakin.services.api_keys import CreatedKey
from models.payloads import StatusView
from models.repositories import subscriptions as subscription_sql
from models.tables import AuditLog, EmailMessage, Invoice, PaymentAttempt, Subscription
from tests.support.encryption import converter_for_tests

OK_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"


def free_ports(count: int) -> list[int]:
    """Distinct free ports (held open together so the kernel cannot hand one out twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def customer_and_price(
    sessions: sessionmaker[Session],
    stripe: StripeGateway,
    *,
    card: str = OK_CARD,
    currency: str = "JPY",
    unit_amount: int = 3000,
    locale: str = "ja",
    interval: str = "month",
) -> tuple[str, str]:
    customer_id = customers.create_customer(
        sessions,
        stripe,
        email="taro@example.jp",
        name="山田 太郎",
        currency=currency,
        locale=locale,
        time_zone="Asia/Tokyo",
        card_number=card,
    )
    price_id = catalog.create_price(
        sessions,
        product_name="Pro plan",
        currency=currency,
        unit_amount=unit_amount,
        interval=interval,
    )
    return customer_id, price_id


async def start_subscription(
    env: WorkflowEnvironment,
    sessions: sessionmaker[Session],
    stripe: StripeGateway,
    task_queue: str,
    *,
    card: str = OK_CARD,
) -> tuple[str, datetime]:
    """A new customer's subscription starting in an hour (server time), and that start."""
    customer_id, price_id = customer_and_price(sessions, stripe, card=card)
    start = (await env.get_current_time()) + timedelta(hours=1)
    subscription_id = await subscriptions.start_subscription(
        env.client, sessions, task_queue=task_queue,
        customer_id=customer_id, price_id=price_id, start_at=start,
    )  # fmt: skip
    return subscription_id, start


async def status_of(env: WorkflowEnvironment, subscription_id: str) -> StatusView:
    return await subscriptions.subscription_status(env.client, subscription_id)


async def advance_to(env: WorkflowEnvironment, moment: datetime) -> None:
    """Let the server's clock run until ``moment`` (timers fire on the way)."""
    delta = moment - await env.get_current_time()
    if delta > timedelta(0):
        await env.sleep(delta)


async def pay_elsewhere(
    stripe: StripeGateway, sessions: sessionmaker[Session], subscription_id: str,
    invoice_id: str, amount: int,
) -> str:  # fmt: skip
    """The customer pays the invoice outside our charge (a hosted page, a bank transfer)."""
    with sessions() as session:
        customer = subscription_sql.subscription(session, subscription_id).customer
        stripe_customer = customer.stripe_customer_id or ""
    method = stripe.create_test_payment_method(
        card_number=OK_CARD, stripe_customer_id=stripe_customer
    )
    intent = stripe.create_intent(
        amount=amount, currency="JPY", stripe_customer_id=stripe_customer,
        payment_method_id=method, metadata={"kakin_invoice_id": invoice_id},
        idempotency_key=f"test-pay-elsewhere:{invoice_id}:{amount}",
    )  # fmt: skip
    assert stripe.confirm_intent(intent, idempotency_key=f"{intent}:confirm").status == "succeeded"
    return intent


# -- calling the API ---------------------------------------------------------------------

# Settings for an app whose database and Temporal the test passes in (create_app).
SETTINGS = Settings(stripe_api_key="sk_test_kakin", database_url="sqlite:///unused.db")


def client(base_url: str, key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=base_url, headers=headers, timeout=30)


def as_role(url: str, made_keys: dict[str, CreatedKey], role: str) -> httpx.AsyncClient:
    """An async client that calls the API with the key made for ``role``."""
    return httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {made_keys[role].secret}"}, timeout=60
    )


def error_of(response: httpx.Response, status: int) -> dict[str, str]:
    """The API's error body (``{"error": {"type", "message"}}``), asserting its status."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"type", "message"}
    assert "Traceback" not in response.text
    return dict(body["error"])


# -- running pieces: a worker, the API ---------------------------------------------------


@contextlib.asynccontextmanager
async def serving_worker(
    client: Client, task_queue: str, activities: Activities, *, threads: int = 8
) -> AsyncIterator[Worker]:
    """The production worker on ``task_queue`` (activities in ``threads`` threads), running
    while inside."""
    with ThreadPoolExecutor(max_workers=threads) as executor:
        worker = build_worker(
            client, task_queue=task_queue, activities=activities, executor=executor
        )
        async with worker:
            yield worker


@contextlib.contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` on a free port in a background thread; yields its base URL."""
    port = free_ports(1)[0]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="kakin-api-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("the API server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def connect_to(target: str) -> Callable[[], Any]:
    # Connect lazily, inside the server's own event loop.
    return lambda: Client.connect(target, data_converter=converter_for_tests())


@dataclass
class Observed:
    """What a user can see of a subscription: the database rows and the outbox."""

    status: str
    invoices: list[Invoice]
    attempts: list[PaymentAttempt]
    emails: list[EmailMessage]
    audit: list[AuditLog]

    @property
    def email_kinds(self) -> list[str]:
        return [e.kind for e in self.emails]


def observe(sessions: sessionmaker[Session], subscription_id: str) -> Observed:
    with sessions() as session:
        subscription = session.get(Subscription, subscription_id)
        assert subscription is not None
        invoices = list(
            session.scalars(
                select(Invoice)
                .where(Invoice.subscription_id == subscription_id)
                .order_by(Invoice.period_start)
            )
        )
        ids = [i.id for i in invoices]
        attempts = list(
            session.scalars(
                select(PaymentAttempt)
                .where(PaymentAttempt.invoice_id.in_(ids))
                .order_by(PaymentAttempt.id)
            )
        )
        emails = list(
            session.scalars(
                select(EmailMessage)
                .where(EmailMessage.subscription_id == subscription_id)
                .order_by(EmailMessage.id)
            )
        )
        audit = list(
            session.scalars(
                select(AuditLog)
                .where(AuditLog.entity_id.in_([subscription_id, *ids]))
                .order_by(AuditLog.id)
            )
        )
        for invoice in invoices:
            _ = invoice.lines  # load while the session is open
        return Observed(subscription.status, invoices, attempts, emails, audit)


def outbox_files(outbox: Path) -> list[str]:
    return sorted(p.name for p in outbox.glob("*.eml")) if outbox.exists() else []


def count_invoices(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Invoice)) or 0)


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], *, timeout: float = 20, what: str = ""
) -> None:
    """Wait (real time) until ``check`` holds; fail with ``what`` if it never does."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for: {what or check}")
        await asyncio.sleep(0.1)


def day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


HISTORIES = Path(__file__).resolve().parent / "histories"


async def run_histories(client: Client, workflow_id: str) -> list[WorkflowHistory]:
    """Every run of a workflow, oldest first (it continues as new at each renewal)."""
    histories: list[WorkflowHistory] = []
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        histories.insert(0, history)
        started = history.events[0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id
        if not run_id:
            return histories


async def record_histories(client: Client, subscription_id: str, scenario: str) -> None:
    """With KAKIN_RECORD_HISTORIES=1, keep this scenario's histories for replay tests.

    Recorded once per workflow path and committed under tests/histories/, they make
    CI fail when a workflow change would break subscriptions that are running.
    """
    if os.environ.get("KAKIN_RECORD_HISTORIES") != "1":
        return
    HISTORIES.mkdir(exist_ok=True)
    for number, history in enumerate(
        await run_histories(client, f"subscription-{subscription_id}")
    ):
        path = HISTORIES / f"{scenario}.run{number:02d}.json"
        path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
