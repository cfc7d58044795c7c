"""The hand-worked fixture's world: ten customers' lives in JPY and USD over January to
April 2031 (Asia/Tokyo), driven through the real workflow on the time-skipping server.

Everything happens through the services a face or support would call (start, coupons,
plan changes, pause and resume, cancels, a new card, credit notes): the ledger the
figures read is what the pipeline writes. The test reads the figures and holds them
to the values worked out by hand; this module only makes the lives happen.

The fixture keeps a database of its own: the shared test database holds other tests'
subscriptions, whose MRR (still counted when their test ends) would be in every month
after their start, in JPY and USD alike.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import catalog, credit_notes, customers, payments, subscriptions
from models.db import make_engine, make_session_factory, migrate
from tests.helpers import DECLINED_CARD, OK_CARD, advance_to, observe

TOKYO = ZoneInfo("Asia/Tokyo")
PG_ADMIN_URL = os.environ.get("KAKIN_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")


def jst(month: int, day: int, hour: int = 0) -> datetime:
    """A moment of 2031 on the reporting calendar (Asia/Tokyo), in UTC."""
    return datetime(2031, month, day, hour, tzinfo=TOKYO).astimezone(UTC)


@contextlib.contextmanager
def private_database() -> Iterator[sessionmaker[Session]]:
    """A fresh database migrated to head, dropped afterwards."""
    name = f"kakin_fixture_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL is required at {PG_ADMIN_URL}: {error}", pytrace=False)
    admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    engine = make_engine(url)
    try:
        migrate(url)
        yield make_session_factory(engine)
    finally:
        engine.dispose()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@dataclass
class World:
    """Who is who in the fixture (customer and subscription ids by role)."""

    customers: dict[str, str] = field(default_factory=dict)
    subscriptions: dict[str, str] = field(default_factory=dict)
    invoices: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Life:
    """Drives the fixture: the services, the server and its clock."""

    env: WorkflowEnvironment
    sessions: sessionmaker[Session]
    stripe: StripeGateway
    task_queue: str
    world: World = field(default_factory=World)
    # The server's time, which runs years ahead of the wall clock: services that take
    # a moment (a credit note's date) are handed this one.
    moment: datetime = datetime(2031, 1, 1, tzinfo=UTC)

    async def at(self, moment: datetime) -> None:
        await advance_to(self.env, moment)
        self.moment = moment

    def customer(self, role: str, currency: str, *, card: str = OK_CARD) -> str:
        customer_id = customers.create_customer(
            self.sessions, self.stripe, email=f"{role}@example.jp", name=role,
            currency=currency, locale="ja" if currency == "JPY" else "en",
            time_zone="Asia/Tokyo", card_number=card,
        )  # fmt: skip
        self.world.customers[role] = customer_id
        return customer_id

    def price(self, currency: str, amount: int, interval: str = "month") -> str:
        return catalog.create_price(
            self.sessions, product_name=f"{currency} {amount}/{interval}",
            currency=currency, unit_amount=amount, interval=interval,
        )  # fmt: skip

    async def subscribe(
        self, role: str, price_id: str, *, start: datetime, trial_days: int = 0,
        customer_id: str | None = None,
    ) -> str:  # fmt: skip
        subscription_id = await subscriptions.start_subscription(
            self.env.client, self.sessions, task_queue=self.task_queue,
            customer_id=customer_id or self.world.customers[role], price_id=price_id,
            start_at=start, trial_days=trial_days,
        )  # fmt: skip
        self.world.subscriptions[role] = subscription_id
        return subscription_id

    def coupon(self, role: str, code: str, *, at: datetime, **terms: object) -> None:
        catalog.create_coupon(self.sessions, code=code, name=code, **terms)  # type: ignore[arg-type]
        catalog.redeem_coupon(
            self.sessions, subscription_id=self.world.subscriptions[role], code=code, at=at
        )

    async def change_plan(self, role: str, price_id: str) -> None:
        await subscriptions.change_plan(
            self.env.client, self.sessions, self.world.subscriptions[role],
            price_id=price_id, requested_by="support:ken",
        )  # fmt: skip

    async def cancel(self, role: str, *, at_period_end: bool) -> None:
        await subscriptions.cancel_subscription(
            self.env.client, self.world.subscriptions[role], reason="closing",
            at_period_end=at_period_end, requested_by="support:ken",
        )  # fmt: skip

    async def pause(self, role: str) -> None:
        await subscriptions.pause_subscription(
            self.env.client, self.world.subscriptions[role], reason="travelling",
            requested_by="support:ken",
        )  # fmt: skip

    async def resume(self, role: str) -> None:
        await subscriptions.resume_subscription(
            self.env.client, self.world.subscriptions[role], requested_by="support:ken"
        )

    async def new_card(self, role: str, card: str = OK_CARD) -> None:
        await payments.update_payment_method(
            self.env.client, self.sessions, self.stripe, self.world.subscriptions[role],
            card_number=card, requested_by="support:hanako",
        )  # fmt: skip

    def credit_note(self, invoice_id: str, *, amount: int, method: str) -> str:
        return credit_notes.issue_credit_note(
            self.sessions, self.stripe, invoice_id=invoice_id, reason="product_unsatisfactory",
            method=method, actor="support:ken", amount=amount, at=self.moment,  # type: ignore[arg-type]
        )  # fmt: skip


async def live(life: Life, in_march: Callable[[], Awaitable[None]]) -> None:
    """January to April 2031, in order of time (the lives share one clock)."""
    # -- January: seven JPY customers start on the 5th (the renewal day of their lives).
    await life.at(jst(1, 4, 23))
    jan5 = jst(1, 5)
    yearly, jpy3000, jpy5000 = (
        life.price("JPY", 36000, "year"), life.price("JPY", 3000), life.price("JPY", 5000)
    )  # fmt: skip
    for role in ("yearly", "upgrader", "downgrader", "pauser", "leaver", "recovered", "returner"):
        card = DECLINED_CARD if role == "recovered" else OK_CARD
        life.customer(role, "JPY", card=card)
    await life.subscribe("yearly", yearly, start=jan5)
    await life.subscribe("upgrader", jpy3000, start=jan5)
    life.coupon("upgrader", "FOREVER10", at=jan5, duration="forever", percent_off="10")
    await life.subscribe("downgrader", jpy5000, start=jan5)
    life.coupon("downgrader", "ONCE1000", at=jan5, duration="once", amount_off=1000,
                currency="JPY")  # fmt: skip
    for role in ("pauser", "leaver", "recovered", "returner"):
        await life.subscribe(role, jpy3000, start=jan5)
    # The declined first charge (5th) and retry (8th), then a new card on the 10th.
    await life.at(jst(1, 10))
    await life.new_card("recovered")
    # A USD customer from the 20th, whose card starts declining in February.
    await life.at(jst(1, 19, 23))
    usd2000, usd1000 = life.price("USD", 2000), life.price("USD", 1000)
    life.customer("lost", "USD")
    await life.subscribe("lost", usd1000, start=jst(1, 20))

    # -- February: a second USD customer starts on the 5th.
    await life.at(jst(2, 4, 23))
    life.customer("refunded", "USD")
    await life.subscribe("refunded", usd2000, start=jst(2, 5))
    await life.at(jst(2, 9, 23))
    life.customer("trial", "JPY")
    await life.subscribe("trial", jpy3000, start=jst(2, 10), trial_days=14)
    await life.at(jst(2, 10))
    await life.cancel("leaver", at_period_end=True)
    await life.change_plan("downgrader", jpy3000)
    await life.cancel("returner", at_period_end=False)
    await life.new_card("lost", DECLINED_CARD)
    first_usd = invoices_of(life, "refunded")[0]
    life.credit_note(first_usd, amount=500, method="refund")
    life.credit_note(first_usd, amount=300, method="credit")
    await life.at(jst(2, 15))
    await life.pause("pauser")
    await life.at(jst(2, 19))
    await life.change_plan("upgrader", life.price("JPY", 5000))

    # -- March: ``in_march`` reads February's figures; the pauser resumes; the returner
    # comes back in April.
    await life.at(jst(3, 1, 1))
    await in_march()
    await life.at(jst(3, 10))
    await life.resume("pauser")
    await life.at(jst(4, 10) - timedelta(hours=1))
    await life.subscribe("returner", jpy3000, start=jst(4, 10))
    await life.at(jst(5, 1, 1))


def invoices_of(life: Life, role: str) -> list[str]:
    """The subscription's invoices, by period."""
    return [i.id for i in observe(life.sessions, life.world.subscriptions[role]).invoices]
