"""Properties over random ledgers: the movement identity, currencies apart, past
figures fixed when later entries are appended, aging summing to the open balance."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.analytics.buckets import bucket_range
from billing.analytics.ledger import EntryKind as K
from billing.analytics.ledger import LedgerEntry
from billing.analytics.movements import mrr_movements
from billing.analytics.receivables import aging
from billing.analytics.revenue import revenue
from tests.billing.analytics.ledger_builder import utc

START = utc(1, 1)
WEEKS = bucket_range(from_=utc(1, 4), to=utc(5, 3), interval="week", time_zone="Asia/Tokyo")
# Subscription i belongs to customer i % 3 and is billed in JPY or USD.
SUBSCRIPTIONS = [(f"sub_{i}", f"cus_{i % 3}", "JPY" if i % 2 else "USD") for i in range(6)]
STATUSES = ["active", "past_due", "trialing", "paused", "suspended", "canceled", ""]

changes = st.lists(
    st.tuples(
        st.integers(0, len(SUBSCRIPTIONS) - 1),
        st.integers(0, 130 * 24),  # effective hour after Jan 1
        st.sampled_from([0, 0, 500, 1000, 3317, 9800]),
        st.sampled_from(STATUSES),
        st.sampled_from([0, 0, 0, 5, 30, 24 * 20]),  # hours written late
    ),
    max_size=60,
)


def ledger(steps: list[tuple[int, int, int, str, int]]) -> list[LedgerEntry]:
    entries: list[LedgerEntry] = []
    recorded = START
    for number, (index, hour, mrr, status, late) in enumerate(steps, start=1):
        subscription, customer, currency = SUBSCRIPTIONS[index]
        occurred = START + timedelta(hours=hour)
        recorded = max(recorded, occurred + timedelta(hours=late))  # rows append in order
        entries.append(
            LedgerEntry(id=number, kind=K.STATUS_CHANGED, occurred_at=occurred,
                        recorded_at=recorded, customer_id=customer, currency=currency,
                        subscription_id=subscription, mrr_after=mrr, status_after=status)
        )  # fmt: skip
    return entries


def mrr_at(entries: list[LedgerEntry], moment: datetime, currency: str) -> int:
    """The oracle: each subscription's latest recorded entry booked before ``moment``."""
    latest: dict[str, LedgerEntry] = {}
    for entry in entries:
        if max(entry.occurred_at, entry.recorded_at) >= moment or entry.currency != currency:
            continue
        if entry.subscription_id not in latest or latest[entry.subscription_id].id < entry.id:
            latest[entry.subscription_id] = entry
    return sum(e.mrr_after for e in latest.values())


@settings(max_examples=150, deadline=None)
@given(changes)
def test_identity_holds_exactly_and_currencies_never_mix(steps: list) -> None:
    entries = ledger(steps)
    rows = mrr_movements(entries, buckets=WEEKS)
    assert len({(r.currency, r.bucket.label) for r in rows}) == len(rows)
    for row in rows:
        assert (
            row.start + row.new + row.expansion + row.reactivation - row.contraction - row.churn
            == row.end
        )
        assert min(row.new, row.expansion, row.contraction, row.churn, row.reactivation) >= 0
        # start and end are exactly the currency's own subscriptions, nothing else.
        assert row.start == mrr_at(entries, row.bucket.start, row.currency)
        assert row.end == mrr_at(entries, row.bucket.end, row.currency)


@settings(max_examples=150, deadline=None)
@given(changes, st.integers(0, len(WEEKS)))
def test_past_buckets_do_not_change_when_later_entries_are_appended(
    steps: list, asked_week: int
) -> None:
    entries = ledger(steps)
    asked_at = WEEKS[asked_week].start if asked_week < len(WEEKS) else WEEKS[-1].end
    known = [e for e in entries if e.recorded_at <= asked_at]  # the ledger when asked
    past = [b for b in WEEKS if b.end <= asked_at]
    if not past:
        return
    then = mrr_movements(known, buckets=past, currency="JPY")
    assert mrr_movements(entries, buckets=past, currency="JPY") == then
    assert mrr_movements(entries, buckets=past, currency="JPY", known_at=asked_at) == then


invoices = st.lists(
    st.tuples(
        st.integers(0, 9),  # invoice number
        st.sampled_from([K.INVOICE_FINALIZED, K.INVOICE_PAID, K.CREDIT_NOTE_ISSUED,
                         K.INVOICE_VOIDED, K.INVOICE_WRITTEN_OFF, K.REFUND_CREATED]),
        st.integers(0, 200),  # day
        st.integers(0, 20_000),
        st.integers(0, 60),  # days until due
    ),
    max_size=40,
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(invoices, st.integers(0, 220))
def test_aging_sums_to_the_open_balance_and_revenue_keeps_currencies(
    steps: list, as_of_day: int
) -> None:
    entries = [
        LedgerEntry(id=n, kind=kind, occurred_at=START + timedelta(days=day),
                    recorded_at=START + timedelta(days=day), customer_id="cus",
                    currency="JPY" if number % 2 else "USD", invoice_id=f"in_{number}",
                    amount=amount, due_at=START + timedelta(days=day + due))
        for n, (number, kind, day, amount, due) in enumerate(steps, start=1)
    ]  # fmt: skip
    as_of = START + timedelta(days=as_of_day, hours=12)
    open_by_currency: dict[str, int] = {}
    for number in range(10):
        mine = [e for e in entries if e.invoice_id == f"in_{number}" and e.occurred_at < as_of]
        finalized = sum(e.amount for e in mine if e.kind is K.INVOICE_FINALIZED)
        settled = sum(e.amount for e in mine if e.kind in (K.INVOICE_PAID, K.CREDIT_NOTE_ISSUED))
        closed = any(e.kind in (K.INVOICE_VOIDED, K.INVOICE_WRITTEN_OFF) for e in mine)
        if mine and not closed and finalized > settled:
            code = mine[0].currency
            open_by_currency[code] = open_by_currency.get(code, 0) + finalized - settled
    rows = aging(entries, as_of=as_of)
    assert {a.currency: a.open_balance for a in rows} == open_by_currency
    for row in rows:
        bands = (row.current, row.days_1_30, row.days_31_60, row.days_61_90, row.days_over_90)
        assert sum(bands) == row.open_balance and min(bands) >= 0
    months = bucket_range(from_=START, to=utc(9), interval="month")
    for row in revenue(entries, buckets=months):
        assert row.invoiced == sum(
            e.amount for e in entries
            if e.kind is K.INVOICE_FINALIZED and e.currency == row.currency
            and e.occurred_at in row.bucket
        )  # fmt: skip
