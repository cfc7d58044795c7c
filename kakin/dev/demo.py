"""The scripted demo that ``kakin up`` plays on a test clock, for a person watching.

Three subscriptions start together on a test clock that runs a month in about 16
real seconds:

* 山田 太郎 pays 3,980円 a month (JPY, Japanese emails) and renews;
* Jane Smith pays $12.50 a month (USD, English emails); once she has renewed twice,
  support cancels her with the public ``cancel`` signal;
* 佐藤 花子's card is declined (4000000000000341): she climbs the dunning ladder
  (retries on days 3 and 7) to ``suspended`` on day 14, and further if left running.

The demo prints one line per thing that happens, read from the database about once
a second, so what it says is what the UI, the outbox and finance see. It is done when
both good subscriptions have 3 paid invoices, 佐藤 has been suspended and Jane is
canceled (about 35 s); the subscriptions keep running afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from billing.money import format_amount
from kakin import runtime
from kakin.adapters.mailer import safe_key
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.platform.settings import Settings
from kakin.platform.temporal_ui import ui_link
from kakin.services import catalog, customers, feed, invoices, subscriptions
from kakin.services.errors import NotFoundError
from models.payloads import SubscriptionStatus
from models.tables import AuditLog, EmailMessage, Invoice, PaymentAttempt

# A month (30 days) of billing time in 16 real seconds: three invoices and the whole
# dunning ladder up to suspension fit in well under a minute.
SECONDS_PER_MONTH = 16.0
CLOCK_SPEED = 30 * 86_400 / SECONDS_PER_MONTH
# Generous: the demo needs ~35 s; anything near this means something is stuck.
DEMO_TIMEOUT = 150.0
PAID_INVOICES_WANTED = 3
CANCELED_BY = "support:demo"
CANCEL_REASON = "customer asked by email to stop the subscription"

OK_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"  # attaches fine, every charge is declined


@dataclass(frozen=True)
class Character:
    role: str  # "jpy" | "usd" | "declined"
    name: str
    email: str
    currency: str
    locale: str
    time_zone: str
    card: str
    product: str
    unit_amount: int  # minor units


CAST: tuple[Character, ...] = (
    Character("jpy", "山田 太郎", "taro.yamada@example.jp", "JPY", "ja", "Asia/Tokyo",
              OK_CARD, "kakin プロプラン", 3980),
    Character("usd", "Jane Smith", "jane.smith@example.com", "USD", "en", "America/New_York",
              OK_CARD, "kakin Team", 1250),
    Character("declined", "佐藤 花子", "hanako.sato@example.jp", "JPY", "ja", "Asia/Tokyo",
              DECLINED_CARD, "kakin プロプラン", 3980),
)  # fmt: skip


def demo_anchor(now: datetime) -> datetime:
    """The next 31st at 12:00 UTC: renewals then show month-end clamping (Jan 31 → Feb 28
    → Mar 31), and 12:00 UTC is the same calendar day in Tokyo and New York."""
    year, month = now.year, now.month
    while True:
        with contextlib.suppress(ValueError):  # months without a 31st
            anchor = datetime(year, month, 31, 12, tzinfo=UTC)
            if anchor >= now:
                return anchor
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


@dataclass
class Progress:
    paid: dict[str, int]  # role -> paid invoices
    statuses: dict[str, str]  # role -> subscription status
    declined_suspended: bool  # 佐藤 has reached ``suspended`` (maybe canceled since)
    usd_canceled_by_support: bool

    @property
    def done(self) -> bool:
        return (
            self.paid.get("jpy", 0) >= PAID_INVOICES_WANTED
            and self.paid.get("usd", 0) >= PAID_INVOICES_WANTED
            and self.declined_suspended
            and self.usd_canceled_by_support
        )

    def missing(self) -> str:
        return (
            f"paid invoices {self.paid}, statuses {self.statuses}, "
            f"declined suspended: {self.declined_suspended}, "
            f"USD canceled by support: {self.usd_canceled_by_support}"
        )


Row = TypeVar("Row", AuditLog, EmailMessage, PaymentAttempt)


class _NewRows:
    """Rows of an append-only table not shown yet.

    Ids can commit out of order (PostgreSQL sequences), so it looks back a little
    below the highest id seen and remembers which ids it has already shown.
    """

    LOOK_BACK = 200

    def __init__(self) -> None:
        self._seen: set[int] = set()
        self.floor = 0

    def take(self, rows: Iterable[Row]) -> list[Row]:
        new = [row for row in rows if row.id not in self._seen]
        self._seen.update(row.id for row in new)
        if len(self._seen) > 2 * self.LOOK_BACK:
            self.floor = sorted(self._seen)[-self.LOOK_BACK]
            self._seen = {i for i in self._seen if i >= self.floor}
        return new


class Demo:
    """Sets up the cast, narrates what happens, and cancels Jane at the right moment."""

    def __init__(
        self,
        settings: Settings,
        client: Client,
        *,
        out: Callable[[str], None] = lambda line: print(line, flush=True),
        clock_speed: float = CLOCK_SPEED,
        sessions: sessionmaker[Session] | None = None,
        stripe: StripeGateway | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.out = out
        self.clock_speed = clock_speed
        self.sessions = sessions or runtime.session_factory(settings)
        self.stripe = stripe or runtime.stripe_gateway(settings)
        self.subscriptions: dict[str, str] = {}  # role -> subscription id
        self._names: dict[str, str] = {}  # subscription id -> customer name
        self._audit = _NewRows()
        self._emails = _NewRows()
        self._declines = _NewRows()
        self._cancel_sent = False
        self._started = time.monotonic()

    # -- the script -------------------------------------------------------------------

    async def play(self, *, keep_watching: bool, timeout: float = DEMO_TIMEOUT) -> Progress:
        """Start the cast and narrate until done (then forever if ``keep_watching``)."""
        self._started = time.monotonic()
        await self.setup()
        progress = await self._narrate_until(lambda p: p.done, timeout)
        self._say(
            f"demo done in {time.monotonic() - self._started:.0f} s: "
            f"{self._cast_summary(progress)}."
        )
        if keep_watching:
            self._say("the subscriptions keep renewing; Ctrl-C stops everything")
            await self._narrate_until(lambda _: False, None)
        return progress

    async def setup(self) -> None:
        anchor = demo_anchor(datetime.now(UTC))
        for who in CAST:
            # Customers and prices talk to Stripe and the database: blocking calls.
            customer_id = await asyncio.to_thread(
                customers.create_customer, self.sessions, self.stripe,
                email=who.email, name=who.name, currency=who.currency,
                locale=who.locale, time_zone=who.time_zone, card_number=who.card,
            )  # fmt: skip
            price_id = await asyncio.to_thread(
                catalog.create_price, self.sessions,
                product_name=who.product, currency=who.currency,
                unit_amount=who.unit_amount, interval="month",
            )  # fmt: skip
            subscription_id = await subscriptions.start_subscription(
                self.client,
                self.sessions,
                task_queue=self.settings.task_queue,
                customer_id=customer_id,
                price_id=price_id,
                start_at=anchor,
                test_clock_speed=self.clock_speed,
                live_mode=self.settings.live_mode,
                dunning=self.settings.dunning_policy,
                stripe_task_queue=self.settings.stripe_task_queue,
            )
            self.subscriptions[who.role] = subscription_id
            self._names[subscription_id] = who.name
            price = format_amount(who.unit_amount, who.currency, locale=who.locale)
            self._say(
                f"{who.name}  subscribed to {who.product}, {price}/month, card "
                f"…{who.card[-4:]} → {subscription_id}\n"
                f"        {self._ui(subscriptions.workflow_id(subscription_id))}"
            )

    async def end(self, *, timeout: float = 8.0) -> None:
        """Cancel the demo's subscriptions that still run, and wait until they are canceled.

        Their test clocks keep counting while kakin is down: on the next ``kakin up``
        each would bill hundreds of months in a burst. Ending them now keeps a reused
        data dir sane.
        """
        statuses = await asyncio.to_thread(self._statuses)
        running = [
            sub_id
            for role, sub_id in self.subscriptions.items()
            if statuses.get(role) != SubscriptionStatus.CANCELED
        ]
        if not running:
            return
        self._say(f"ending the demo's {len(running)} running test-clock subscription(s)")
        for sub_id in running:
            with contextlib.suppress(Exception):  # already completed: nothing to end
                await subscriptions.cancel_subscription(
                    self.client, sub_id, reason="demo stopped (test clock)",
                    at_period_end=False, requested_by="kakin-up",
                )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            statuses = await asyncio.to_thread(self._statuses)
            if all(s == SubscriptionStatus.CANCELED for s in statuses.values()):
                return
            await asyncio.sleep(0.3)

    async def _narrate_until(
        self, done: Callable[[Progress], bool], timeout: float | None
    ) -> Progress:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            lines, progress = await asyncio.to_thread(self._poll)
            for line in lines:
                self._say(line)
            if not self._cancel_sent and progress.paid.get("usd", 0) >= PAID_INVOICES_WANTED:
                # Renewed twice (three paid invoices): support cancels at once.
                self._cancel_sent = True
                self._say(f"Jane Smith  support sends cancel: {CANCEL_REASON!r}")
                await subscriptions.cancel_subscription(
                    self.client, self.subscriptions["usd"], reason=CANCEL_REASON,
                    at_period_end=False, requested_by=CANCELED_BY,
                )  # fmt: skip
            if done(progress):
                return progress
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"the demo did not finish within {timeout:.0f} s: {progress.missing()}"
                )
            await asyncio.sleep(1.0)

    # -- reading the database -----------------------------------------------------------

    def _poll(self) -> tuple[list[str], Progress]:
        """New event lines, and how far the demo has got (runs in a thread)."""
        sub_ids = list(self._names)
        lines: list[tuple[datetime, int, str]] = []  # (billing time, rank, text)
        with self.sessions() as session:
            audit = feed.audit_entries_after(session, self._audit.floor)
            for row in self._audit.take(audit):
                line = self._describe_audit(session, row, sub_ids)
                if line:
                    lines.append((row.occurred_at, 1, line))
            declines = feed.declined_attempts_after(session, self._declines.floor, sub_ids)
            for attempt in self._declines.take(declines):
                invoice = invoices.find_invoice(session, attempt.invoice_id)
                lines.append((attempt.attempted_at, 0, self._describe_decline(invoice, attempt)))
            emails = feed.sent_emails_after(session, self._emails.floor, sub_ids)
            for email in self._emails.take(emails):
                name = self._names.get(email.subscription_id or "", "?")
                when = email.sent_at or email.created_at
                file = f"outbox/{safe_key(email.business_key)}.eml"
                lines.append((when, 2, f"{name}  email {email.kind}: {email.subject}  [{file}]"))
            progress = self._progress(session)
        # Billing-time order reads as a story (at one moment: the charge, what it
        # changed, the email it caused); elapsed real time is in _say.
        return [text for *_, text in sorted(lines, key=lambda item: item[:2])], progress

    def _statuses(self) -> dict[str, str]:
        with self.sessions() as session:
            return self._progress(session).statuses

    def _progress(self, session: Session) -> Progress:
        role_of = {sub_id: role for role, sub_id in self.subscriptions.items()}
        paid = feed.paid_invoice_counts(session, role_of)
        statuses = feed.subscription_statuses(session, role_of)
        declined = self.subscriptions.get("declined")
        usd = self.subscriptions.get("usd")
        suspended = declined is not None and feed.reached_status(
            session, declined, SubscriptionStatus.SUSPENDED
        )
        canceled_by_support = usd is not None and feed.reached_status(
            session, usd, SubscriptionStatus.CANCELED, actor=CANCELED_BY
        )
        return Progress(
            paid={role_of[sub_id]: count for sub_id, count in paid.items()},
            statuses={role_of[sub_id]: status for sub_id, status in statuses.items()},
            declined_suspended=bool(suspended),
            usd_canceled_by_support=bool(canceled_by_support),
        )

    # -- wording ------------------------------------------------------------------------

    def _describe_audit(self, session: Session, row: AuditLog, sub_ids: Sequence[str]) -> str:
        if row.entity_type == "subscription" and row.entity_id in sub_ids:
            name = self._names[row.entity_id]
            if row.action == "cancel_scheduled":
                return f"{name}  cancel at period end requested by {row.actor}: {row.reason}"
            if row.to_status == SubscriptionStatus.CANCELED and row.actor != "workflow":
                return f"{name}  canceled by {row.actor}: {row.reason}"
            why = f" ({row.reason})" if row.reason else ""
            return f"{name}  {row.from_status} → {row.to_status}{why}"
        if row.entity_type == "invoice" and row.action in ("paid", "marked_uncollectible"):
            try:
                invoice = invoices.find_invoice(session, row.entity_id)
            except NotFoundError:
                return ""
            if invoice.subscription_id not in sub_ids:
                return ""
            customer = invoice.customer
            amount = format_amount(invoice.total, invoice.currency, locale=customer.locale)
            what = "paid" if row.action == "paid" else f"uncollectible ({row.reason})"
            return (
                f"{customer.name}  invoice {invoice.number} {what} {amount} "
                f"(period {_period(invoice, customer.time_zone)})"
            )
        return ""

    def _describe_decline(self, invoice: Invoice, attempt: PaymentAttempt) -> str:
        customer = invoice.customer
        amount = format_amount(attempt.amount, attempt.currency, locale=customer.locale)
        return (
            f"{customer.name}  charge {attempt.attempt} of invoice {invoice.number} "
            f"({amount}) declined: {attempt.decline_code}"
        )

    def _cast_summary(self, progress: Progress) -> str:
        parts = []
        for who in CAST:
            status = progress.statuses.get(who.role, "?")
            parts.append(f"{who.name} {progress.paid.get(who.role, 0)} paid invoice(s), {status}")
        return "; ".join(parts)

    def _ui(self, workflow_id: str) -> str:
        return ui_link(
            self.settings.temporal_ui_url, self.settings.temporal_namespace,
            workflow_id=workflow_id,
        )  # fmt: skip

    def _say(self, line: str) -> None:
        self.out(f"[demo {time.monotonic() - self._started:5.1f}s] {line}")


def _period(invoice: Invoice, time_zone: str) -> str:
    zone = ZoneInfo(time_zone)
    return (
        f"{invoice.period_start.astimezone(zone):%Y-%m-%d} → "
        f"{invoice.period_end.astimezone(zone):%Y-%m-%d}"
    )
