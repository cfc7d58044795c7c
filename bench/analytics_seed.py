"""Seeding for ``python -m bench analytics``: 24 months of synthetic billing history.

Each customer's history is a generator of ledger rows in time order (start or trial,
monthly or yearly renewals, first-try failures and dunning that recovers or ends in a
suspension and a cancellation, upgrades with their proration invoice, downgrades,
pauses, cancellations, credit notes with refunds, reactivations as a new
subscription); ``heapq.merge`` interleaves all of them so ledger ids ascend in
recording order, as the pipeline writes them. Rows go in with ``COPY`` (the ledger
streamed as it is generated, invoices spooled to a temporary file because their
subscriptions' final state is known only at the end). A few ``correction`` entries
are appended last, so the figures' correction path is exercised too.

Nothing here goes through the services: the bench measures reading, and writing 4 M
rows one ORM object at a time would take hours.
"""

from __future__ import annotations

import heapq
import json
import random
import tempfile
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from billing.calendar import Interval, boundary

# (currency, interval, unit amount): the catalog every customer picks from. The
# upgrade path is the next plan of the same currency and interval.
PLANS = (
    ("JPY", "month", 980),
    ("JPY", "month", 2980),
    ("JPY", "month", 9800),
    ("JPY", "year", 29800),
    ("JPY", "year", 98000),
    ("USD", "month", 1250),
    ("USD", "month", 2900),
    ("USD", "month", 9900),
    ("USD", "year", 29000),
)
DECLINES = ("card_declined", "insufficient_funds", "expired_card", "do_not_honor")
MONTHS = 24
CORRECTIONS = 20

# Chances per period (or per start) that shape the history.
TRIAL = 0.15
FIRST_TRY_FAILS = 0.06
RECOVERS = 0.7
UPGRADE = 0.03
DOWNGRADE = 0.015
PAUSE = 0.005
CANCEL = 0.015
CANCEL_NOW = 0.3  # of cancellations: at once rather than at period end
CREDIT_NOTE = 0.01
REACTIVATE = 0.25
OPEN_LAST = 0.15  # of the invoices finalized in the last days: still unpaid
FROM_THE_START = 0.4  # of customers: already there when the history starts
YEARLY_WEIGHT = 1 / 6  # a yearly plan is picked a sixth as often as a monthly one
SCHEDULED_CANCEL = 0.02  # of active subscriptions at the end: canceling at period end

LEDGER_COLUMNS = (
    "id",
    "event_key",
    "kind",
    "occurred_at",
    "recorded_at",
    "customer_id",
    "subscription_id",
    "invoice_id",
    "currency",
    "amount",
    "mrr_before",
    "mrr_after",
    "status_before",
    "status_after",
    "actor",
    "attempt",
    "decline_code",
    "dunning_step",
    "due_at",
    "details",
    "corrects",
)
INVOICE_COLUMNS = (
    "id",
    "business_key",
    "number",
    "subscription_id",
    "customer_id",
    "status",
    "currency",
    "subtotal",
    "discount_total",
    "tax_total",
    "total",
    "credit_applied",
    "carried_forward",
    "amount_paid",
    "tax_breakdown",
    "registration_number",
    "period_start",
    "period_end",
    "issued_at",
    "finalized_at",
    "paid_at",
    "created_at",
)
SUBSCRIPTION_COLUMNS = (
    "id",
    "customer_id",
    "price_id",
    "quantity",
    "status",
    "billing_cycle_anchor",
    "current_period_start",
    "current_period_end",
    "trial_end",
    "cancel_at_period_end",
    "canceled_at",
    "cancel_reason",
    "workflow_id",
    "test_clock",
    "metadata",
    "created_at",
    "updated_at",
)


# A ledger row to be: its time, and its columns after ``id``.
Row = tuple[datetime, tuple[Any, ...]]


@dataclass
class Seeded:
    customers: int = 0
    subscriptions: int = 0
    invoices: int = 0
    ledger_entries: int = 0
    seconds: float = 0.0
    by_kind: dict[str, int] = field(default_factory=dict)


@dataclass
class _State:
    """A subscription's final state, for its row (written after the ledger)."""

    id: str
    customer_id: str
    plan: int
    created_at: datetime
    anchor: datetime
    status: str = "active"
    period_start: datetime | None = None
    period_end: datetime | None = None
    trial_end: datetime | None = None
    cancel_at_period_end: bool = False
    canceled_at: datetime | None = None
    invoices: int = 0  # how many it got: its invoices' numbers


def history_start(now: datetime) -> datetime:
    """The first day of the month ``MONTHS`` months before now's (UTC)."""
    months = now.year * 12 + now.month - 1 - MONTHS
    return datetime(months // 12, months % 12 + 1, 1, tzinfo=UTC)


def report_from(now: datetime) -> date:
    """The first of the 24 monthly report buckets that end with the current month."""
    months = now.year * 12 + now.month - MONTHS
    return date(months // 12, months % 12 + 1, 1)


def _mrr(plan: int) -> int:
    _, interval, amount = PLANS[plan]
    return amount if interval == "month" else round(amount / 12)


class _Customer:
    """One customer's history: ledger rows (without id) in time order."""

    def __init__(
        self,
        number: int,
        rng: random.Random,
        start: datetime,
        now: datetime,
        invoices: Any,
        states: list[_State],
    ) -> None:
        self.number, self.rng, self.now = number, rng, now
        self.id = f"bcus_{number}"
        self.invoices, self.states = invoices, states
        jpy = rng.random() < 0.8
        self.plans = [i for i, p in enumerate(PLANS) if (p[0] == "JPY") == jpy]
        span = timedelta(days=30) if rng.random() < FROM_THE_START else (now - start) * 0.95
        self.first = start + timedelta(seconds=rng.randrange(int(span.total_seconds())))
        self.currency = PLANS[self.plans[0]][0]
        self.row_count = 0

    def rows(self) -> Iterator[Row]:
        at, serial = self.first, 0
        while at < self.now:
            weights = [YEARLY_WEIGHT if PLANS[i][1] == "year" else 1 for i in self.plans]
            plan = self.rng.choices(self.plans, weights)[0]
            state = _State(
                id=f"bsub_{self.number}_{serial}",
                customer_id=self.id,
                plan=plan,
                created_at=at,
                anchor=at,
            )
            self.states.append(state)
            ended = yield from self._subscription(state, at)
            if ended is None or self.rng.random() >= REACTIVATE:
                return
            at, serial = ended + timedelta(days=self.rng.randint(20, 200)), serial + 1

    def _row(self, kind: str, at: datetime, state: _State, **fields: Any) -> Row:
        self.row_count += 1
        values = {
            "customer_id": self.id,
            "subscription_id": "",
            "invoice_id": "",
            "currency": self.currency,
            "amount": 0,
            "mrr_before": 0,
            "mrr_after": 0,
            "status_before": "",
            "status_after": "",
            "actor": "system",
            "attempt": 0,
            "decline_code": "",
            "dunning_step": "",
            "due_at": None,
            "details": "{}",
        }
        values.update(fields)
        key = f"bench:{self.id}:{self.row_count}"
        return at, (key, kind, at, at, *values.values(), 0)

    def _move(
        self,
        kind: str,
        at: datetime,
        state: _State,
        before: tuple[int, str],
        after: tuple[int, str],
    ) -> Row:
        return self._row(
            kind,
            at,
            state,
            subscription_id=state.id,
            mrr_before=before[0],
            mrr_after=after[0],
            status_before=before[1],
            status_after=after[1],
        )

    def _subscription(self, state: _State, at: datetime) -> Generator[Row, None, datetime | None]:
        rng = self.rng
        mrr = _mrr(state.plan)
        if rng.random() < TRIAL:
            yield self._move("subscription.started", at, state, (0, ""), (0, "trialing"))
            state.status, state.trial_end = "trialing", at + timedelta(days=14)
            state.period_start, state.period_end = at, state.trial_end
            at = state.trial_end
            if at >= self.now:
                return None
            state.anchor = at
            yield self._move("trial.converted", at, state, (0, "trialing"), (mrr, "active"))
        else:
            yield self._move("subscription.started", at, state, (0, ""), (mrr, "active"))
        state.status = "active"
        index = 0
        while True:
            interval = Interval(PLANS[state.plan][1])
            start = boundary(state.anchor, interval, 1, index)
            if start >= self.now:
                return None
            end = boundary(state.anchor, interval, 1, index + 1)
            if index and rng.random() < CANCEL * (12 if interval is Interval.YEAR else 1):
                yield self._move(
                    "subscription.canceled", start, state, (mrr, "active"), (0, "canceled")
                )
                state.status, state.canceled_at = "canceled", start
                return start
            if (
                index
                and rng.random() < DOWNGRADE
                and state.plan - 1 in self.plans
                and PLANS[state.plan - 1][1] == PLANS[state.plan][1]
            ):
                state.plan -= 1
                new = _mrr(state.plan)
                yield self._move(
                    "subscription.plan_changed", start, state, (mrr, "active"), (new, "active")
                )
                mrr = new
            if index and rng.random() < PAUSE:
                yield self._move(
                    "subscription.paused", start, state, (mrr, "active"), (0, "paused")
                )
                state.status = "paused"
                resume = start + timedelta(days=rng.randint(20, 70))
                if resume >= self.now:
                    return None
                yield self._move(
                    "subscription.resumed", resume, state, (0, "paused"), (mrr, "active")
                )
                state.status, state.anchor, index = "active", resume, 0
                continue
            state.period_start, state.period_end = start, end
            outcome = yield from self._renewal(state, index, start, end, mrr)
            if outcome is not None:
                return outcome
            if (
                rng.random() < UPGRADE
                and state.plan + 1 in self.plans
                and PLANS[state.plan + 1][1] == PLANS[state.plan][1]
            ):
                when = start + (end - start) / 2
                if when < self.now:
                    state.plan += 1
                    new = _mrr(state.plan)
                    yield self._move(
                        "subscription.plan_changed", when, state, (mrr, "active"), (new, "active")
                    )
                    yield from self._invoice(
                        state, f"p{index}", when, when, end, (new - mrr) // 2, proration=True
                    )
                    mrr = new
            index += 1

    def _renewal(
        self, state: _State, index: int, start: datetime, end: datetime, mrr: int
    ) -> Generator[Row, None, datetime | None]:
        """The period invoice and its payment; the cancellation moment if dunning ends it."""
        rng = self.rng
        amount = PLANS[state.plan][2]
        if PLANS[state.plan][0] == "JPY":
            amount += amount // 10  # consumption tax, 10%
        invoice = yield from self._invoice(state, str(index), start, start, end, amount, paid=False)
        ok = start + timedelta(seconds=5)
        recent = self.now - start < timedelta(days=5)
        if recent and rng.random() < OPEN_LAST:
            return None  # finalized, not yet charged: open in the receivables
        if rng.random() >= FIRST_TRY_FAILS:
            yield from self._paid(state, invoice, ok, amount, 1, "")
            if rng.random() < CREDIT_NOTE and ok + timedelta(days=10) < self.now:
                credit = amount // 10
                when = ok + timedelta(days=10)
                yield self._row(
                    "credit_note.issued", when, state, invoice_id=invoice, amount=credit
                )
                yield self._row("refund.created", when, state, invoice_id=invoice, amount=credit)
            return None
        code = rng.choice(DECLINES)
        yield self._row(
            "payment.failed",
            ok,
            state,
            invoice_id=invoice,
            amount=amount,
            attempt=1,
            decline_code=code,
        )
        yield self._move(
            "subscription.status_changed", ok, state, (mrr, "active"), (mrr, "past_due")
        )
        state.status = "past_due"
        recovered_at = rng.randint(2, 4) if rng.random() < RECOVERS else 0
        for attempt, days in ((2, 3), (3, 7), (4, 12)):
            when = start + timedelta(days=days)
            if when >= self.now:
                return None
            step = f"retry_{attempt - 1}"
            if attempt == recovered_at:
                yield from self._paid(state, invoice, when, amount, attempt, step)
                yield self._move(
                    "subscription.status_changed", when, state, (mrr, "past_due"), (mrr, "active")
                )
                state.status = "active"
                return None
            yield self._row(
                "payment.failed",
                when,
                state,
                invoice_id=invoice,
                amount=amount,
                attempt=attempt,
                decline_code=code,
                dunning_step=step,
            )
        suspended = start + timedelta(days=14)
        if suspended >= self.now:
            return None
        yield self._move(
            "subscription.status_changed", suspended, state, (mrr, "past_due"), (0, "suspended")
        )
        state.status = "suspended"
        closed = start + timedelta(days=21)
        if closed >= self.now:
            return None
        kind = "invoice.written_off" if rng.random() < 0.5 else "invoice.voided"
        yield self._row(kind, closed, state, invoice_id=invoice, amount=amount)
        yield self._move("subscription.canceled", closed, state, (0, "suspended"), (0, "canceled"))
        state.status, state.canceled_at = "canceled", closed
        return closed

    def _invoice(
        self,
        state: _State,
        suffix: str,
        at: datetime,
        start: datetime,
        end: datetime,
        amount: int,
        *,
        paid: bool = True,
        proration: bool = False,
    ) -> Generator[Row, None, str]:
        number, state.invoices = state.invoices, state.invoices + 1
        invoice = f"bin_{state.id[5:]}_{number}"
        key = f"proration:{state.id}:{number}" if proration else f"invoice:{state.id}:{number}"
        self.invoices.write_row(
            (
                invoice,
                key,
                None,
                state.id,
                self.id,
                "open",
                self.currency,
                amount,
                0,
                0,
                amount,
                0,
                0,
                0,
                "[]",
                "",
                start,
                end,
                at,
                at,
                None,
                at,
            )
        )
        yield self._row(
            "invoice.finalized",
            at,
            state,
            subscription_id=state.id,
            invoice_id=invoice,
            amount=amount,
            due_at=at,
        )
        if paid:
            yield from self._paid(state, invoice, at + timedelta(seconds=5), amount, 1, "")
        return invoice

    def _paid(
        self, state: _State, invoice: str, at: datetime, amount: int, attempt: int, step: str
    ) -> Generator[Row, None, None]:
        for kind in ("payment.succeeded", "invoice.paid"):
            yield self._row(
                kind,
                at,
                state,
                invoice_id=invoice,
                amount=amount,
                attempt=attempt,
                dunning_step=step,
            )


class _Spool:
    """Invoice rows kept in a temporary file until their subscriptions are written."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile("w+b")  # noqa: SIM115 (closed by seed, after COPY)
        self.count = 0

    def write_row(self, row: tuple[Any, ...]) -> None:
        cells = ["\\N" if v is None else str(v) for v in row]
        self.file.write(("\t".join(cells) + "\n").encode())
        self.count += 1


def _catalog(connection: psycopg.Connection[Any]) -> None:
    now = datetime.now(UTC)
    connection.execute(
        "INSERT INTO products (id, name, description, active, created_at) "
        "VALUES ('bprod', 'bench plan', '', true, %s)",
        (now,),
    )
    with connection.cursor().copy(
        "COPY prices (id, product_id, nickname, currency, unit_amount, interval, "
        "interval_count, active, pricing_model, tax_rate_ids, created_at) FROM STDIN"
    ) as copy:
        for number, (currency, interval, amount) in enumerate(PLANS):
            copy.write_row(
                (
                    f"bprice_{number}",
                    "bprod",
                    "",
                    currency,
                    amount,
                    interval,
                    1,
                    True,
                    "flat",
                    "[]",
                    now,
                )
            )


def _corrections(connection: psycopg.Connection[Any], next_id: int, count: int) -> int:
    """``count`` corrections of invoice.finalized amounts (a tenth less), recorded now."""
    rows = connection.execute(
        "SELECT id, occurred_at, customer_id, subscription_id, invoice_id, currency, "
        "amount, due_at FROM billing_ledger WHERE kind = 'invoice.finalized' "
        "ORDER BY id LIMIT %s",
        (count,),
    ).fetchall()
    now = datetime.now(UTC)
    with connection.cursor().copy(
        f"COPY billing_ledger ({', '.join(LEDGER_COLUMNS)}) FROM STDIN"
    ) as copy:
        for offset, (
            target,
            occurred,
            customer,
            sub,
            invoice,
            currency,
            amount,
            due,
        ) in enumerate(rows):
            copy.write_row(
                (
                    next_id + offset,
                    f"bench:correction:{target}",
                    "correction",
                    occurred,
                    now,
                    customer,
                    sub,
                    invoice,
                    currency,
                    amount - amount // 10,
                    0,
                    0,
                    "",
                    "",
                    "support:bench",
                    0,
                    "",
                    "",
                    due,
                    "{}",
                    target,
                )
            )
    return len(rows)


def seed(url: str, customers: int, now: datetime, *, seed_value: int = 13) -> Seeded:
    """Write ``customers`` customers' 24 months of history up to ``now``."""
    from bench.common import progress  # the seeder is usable without the bench's servers

    started = time.perf_counter()
    rng = random.Random(seed_value)
    start = history_start(now)
    spool = _Spool()
    states: list[_State] = []
    seeded = Seeded(customers=customers)
    with psycopg.connect(url) as connection:
        _catalog(connection)
        people = [_Customer(n, rng, start, now, spool, states) for n in range(customers)]
        with connection.cursor().copy(
            "COPY customers (id, email, name, locale, currency, time_zone, tax_rate_ids, "
            "created_at) FROM STDIN"
        ) as copy:
            for person in people:
                copy.write_row(
                    (
                        person.id,
                        f"{person.id}@example.jp",
                        person.id,
                        "ja",
                        person.currency,
                        "UTC",
                        "[]",
                        person.first,
                    )
                )
        progress(f"  {customers:,} customers written; generating the ledger")
        merged = heapq.merge(*(person.rows() for person in people), key=lambda pair: pair[0])
        count = 0
        with connection.cursor().copy(
            f"COPY billing_ledger ({', '.join(LEDGER_COLUMNS)}) FROM STDIN"
        ) as copy:
            for _, row in merged:
                count += 1
                copy.write_row((count, *row))
                seeded.by_kind[row[1]] = seeded.by_kind.get(row[1], 0) + 1
                if count % 500_000 == 0:
                    progress(f"  {count:,} ledger entries")
        count += _corrections(connection, count + 1, CORRECTIONS)
        connection.execute(
            "SELECT setval(pg_get_serial_sequence('billing_ledger', 'id'), %s)", (count,)
        )
        progress(f"  {count:,} ledger entries; {len(states):,} subscriptions")
        with connection.cursor().copy(
            f"COPY subscriptions ({', '.join(SUBSCRIPTION_COLUMNS)}) FROM STDIN"
        ) as copy:
            for state in states:
                if state.status == "active" and rng.random() < SCHEDULED_CANCEL:
                    state.cancel_at_period_end = True
                copy.write_row(
                    (
                        state.id,
                        state.customer_id,
                        f"bprice_{state.plan}",
                        1,
                        state.status,
                        state.anchor,
                        state.period_start,
                        state.period_end,
                        state.trial_end,
                        state.cancel_at_period_end,
                        state.canceled_at,
                        "",
                        f"subscription-{state.id}",
                        False,
                        json.dumps({}),
                        state.created_at,
                        state.created_at,
                    )
                )
        spool.file.seek(0)
        with connection.cursor().copy(
            f"COPY invoices ({', '.join(INVOICE_COLUMNS)}) FROM STDIN"
        ) as copy:
            while block := spool.file.read(1 << 20):
                copy.write(block)
        spool.file.close()
        progress(f"  {spool.count:,} invoices")
        connection.commit()
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
    seeded.subscriptions, seeded.invoices, seeded.ledger_entries = len(states), spool.count, count
    seeded.seconds = time.perf_counter() - started
    return seeded
