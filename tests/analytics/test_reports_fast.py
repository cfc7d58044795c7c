"""The service's fast reads (kakin.services.analytics_reads) give billing.analytics's
figures exactly: on a hand-made ledger with late entries, partial payments, dunning
episodes and corrections (one of an entry booked after the range, which widens the
read), and, for the one-pass sweeps (kakin.services.analytics_sweeps: receivables, MRR
movements, dunning), on random ledgers.

The ledger is in SEK, which no other test bills.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from billing.analytics.booking import book
from billing.analytics.buckets import bucket_range
from billing.analytics.dunning import dunning
from billing.analytics.ledger import ATTEMPT_KINDS, EntryKind, LedgerEntry
from billing.analytics.movements import mrr_movements
from billing.analytics.receivables import aging
from billing.analytics.revenue import revenue
from kakin.services import analytics_reads as fast
from kakin.services import analytics_sweeps as sweeps
from models.repositories import analytics as analytics_sql
from models.repositories import ledger as ledger_sql

K = EntryKind
CODE = "SEK"
BUCKETS = bucket_range(
    from_=datetime(2025, 1, 1, tzinfo=UTC),
    to=datetime(2025, 5, 1, tzinfo=UTC),
    interval="month",
    time_zone="Asia/Tokyo",
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# (key, kind, occurred, recorded or None, fields)
LEDGER: list[tuple[str, EntryKind, str, str | None, dict[str, Any]]] = [
    (
        "s1",
        K.SUBSCRIPTION_STARTED,
        "2025-01-03",
        None,
        dict(subscription_id="f_s1", customer_id="f_c1", mrr_after=1000, status_after="active"),
    ),
    (
        "s2",
        K.SUBSCRIPTION_STARTED,
        "2025-01-05",
        None,
        dict(subscription_id="f_s2", customer_id="f_c2", mrr_after=500, status_after="trialing"),
    ),
    (
        "i1",
        K.INVOICE_FINALIZED,
        "2025-01-03",
        None,
        dict(invoice_id="f_i1", customer_id="f_c1", amount=1000, details={"usage_amount": "120"}),
    ),
    (
        "i1f1",
        K.PAYMENT_FAILED,
        "2025-01-03T00:01",
        None,
        dict(invoice_id="f_i1", customer_id="f_c1", amount=1000, attempt=1, decline_code="x"),
    ),
    (
        "i1f2",
        K.PAYMENT_FAILED,
        "2025-01-06",
        None,
        dict(invoice_id="f_i1", customer_id="f_c1", amount=1000, attempt=2, dunning_step="r1"),
    ),
    (
        "i1p",
        K.INVOICE_PAID,
        "2025-02-02",
        None,  # recovered in February
        dict(invoice_id="f_i1", customer_id="f_c1", amount=600, attempt=3),
    ),
    (
        "i1cn",
        K.CREDIT_NOTE_ISSUED,
        "2025-02-10",
        None,
        dict(invoice_id="f_i1", customer_id="f_c1", amount=400),
    ),
    (
        "s2up",
        K.PLAN_CHANGED,
        "2025-02-01",
        "2025-02-03",  # written late
        dict(
            subscription_id="f_s2",
            customer_id="f_c2",
            mrr_before=500,
            mrr_after=800,
            status_after="",
        ),
    ),
    (
        "i2",
        K.INVOICE_FINALIZED,
        "2025-02-01",
        None,
        dict(invoice_id="f_i2", customer_id="f_c2", amount=800, due_at=at("2025-02-15")),
    ),
    (
        "i2ok",
        K.PAYMENT_SUCCEEDED,
        "2025-02-01T00:01",
        None,
        dict(invoice_id="f_i2", customer_id="f_c2", amount=800, attempt=1),
    ),
    (
        "i3",
        K.INVOICE_FINALIZED,
        "2025-03-01",
        None,
        dict(invoice_id="f_i3", customer_id="f_c2", amount=800),
    ),
    (
        "i3f1",
        K.PAYMENT_FAILED,
        "2025-03-01T00:01",
        None,
        dict(invoice_id="f_i3", customer_id="f_c2", amount=800, attempt=1, decline_code="y"),
    ),
    ("i3v", K.INVOICE_VOIDED, "2025-03-20", None, dict(invoice_id="f_i3", customer_id="f_c2")),
    (
        "s1x",
        K.CANCELED,
        "2025-03-25",
        None,
        dict(
            subscription_id="f_s1",
            customer_id="f_c1",
            mrr_before=1000,
            mrr_after=0,
            status_after="canceled",
        ),
    ),
    (
        "i4",
        K.INVOICE_FINALIZED,
        "2025-04-02",
        None,
        dict(invoice_id="f_i4", customer_id="f_c2", amount=700),
    ),
    (
        "r1",
        K.REFUND_CREATED,
        "2025-04-05",
        None,
        dict(invoice_id="f_i2", customer_id="f_c2", amount=100),
    ),
    (
        "r1cn",  # the refund's own credit note: in refunded, not credited
        K.CREDIT_NOTE_ISSUED,
        "2025-04-05",
        None,
        dict(invoice_id="f_i2", customer_id="f_c2", amount=100, details={"method": "refund"}),
    ),
    (
        "i6",  # 300 of it paid from the customer's balance: 400 due
        K.INVOICE_FINALIZED,
        "2025-04-10",
        None,
        dict(invoice_id="f_i6", customer_id="f_c2", amount=700, details={"amount_due": "400"}),
    ),
    (
        "late",
        K.INVOICE_FINALIZED,
        "2025-05-10",
        None,
        dict(invoice_id="f_i5", customer_id="f_c2", amount=900),
    ),
]


def _write(session: Session) -> dict[str, int]:
    ids = {}
    for key, kind, occurred, recorded, fields in LEDGER:
        row = ledger_sql.append(
            session,
            f"fast:{key}",
            kind=kind,
            occurred_at=at(occurred),
            recorded_at=at(recorded or occurred),
            currency=CODE,
            **fields,
        )
        session.flush()
        ids[key] = row.id

    def correct(key: str, target: int, occurred: str, recorded: str, **fields: Any) -> None:
        row = ledger_sql.append(
            session,
            f"fast:{key}",
            kind=K.CORRECTION,
            corrects=target,
            occurred_at=at(occurred),
            recorded_at=at(recorded),
            currency=CODE,
            **fields,
        )
        session.flush()
        ids[key] = row.id

    # i1 was 900, not 1,000; then corrected again (a correction of the correction).
    correct(
        "c1",
        ids["i1"],
        "2025-01-03",
        "2025-03-02",
        invoice_id="f_i1",
        customer_id="f_c1",
        amount=900,
        details={"usage_amount": "100"},
    )
    correct(
        "c2",
        ids["c1"],
        "2025-01-03",
        "2025-03-03",
        invoice_id="f_i1",
        customer_id="f_c1",
        amount=950,
    )
    # s1 started with 1,200, booked as it was.
    correct(
        "c3",
        ids["s1"],
        "2025-01-03",
        "2025-02-20",
        subscription_id="f_s1",
        customer_id="f_c1",
        mrr_after=1200,
        status_after="active",
    )
    # The May invoice moved into April: a correction in the range of an entry after it.
    correct(
        "c4",
        ids["late"],
        "2025-04-20",
        "2025-04-21",
        invoice_id="f_i5",
        customer_id="f_c2",
        amount=900,
    )
    session.commit()
    return ids


@pytest.fixture(scope="module")
def sessions(pg_sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with pg_sessions() as session:
        if ledger_sql.by_key(session, "fast:s1") is None:
            _write(session)
    return pg_sessions


def _oracle(session: Session, until: datetime) -> list[LedgerEntry]:
    """What the service read before the fast reads: the entries booked before
    ``until``, all of them when a correction there corrects one outside."""
    found = ledger_sql.entries(session, currency=CODE, until=until)
    ids = {entry.id for entry in found}
    if any(entry.corrects and entry.corrects not in ids for entry in found):
        return ledger_sql.entries(session, currency=CODE)
    return found


@pytest.mark.parametrize("months", [1, 2, 3, 4])
def test_the_fast_reads_equal_the_definitions(sessions: sessionmaker[Session], months: int) -> None:
    buckets = BUCKETS[:months]
    until = buckets[-1].end
    with sessions() as session:
        entries = _oracle(session, until)
        scope = analytics_sql.scope(session, CODE, until)
        figures = revenue(entries, buckets=buckets, currency=CODE)
        assert fast.revenue(session, scope, buckets) == figures
        assert fast.usage_revenue(session, scope, buckets) == tuple(r.usage for r in figures)
        assert fast.movements(session, scope, buckets) == mrr_movements(
            entries, buckets=buckets, currency=CODE
        )
        assert fast.dunning(session, scope, buckets) == dunning(
            entries, buckets=buckets, currency=CODE
        )
        moments = [b.end for b in buckets]
        assert fast.receivables(session, scope, moments) == tuple(
            aging(entries, as_of=m, currency=CODE)[0] for m in moments
        )


def test_a_correction_of_an_entry_after_the_range_widens_the_read(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        assert analytics_sql.scope(session, CODE, BUCKETS[3].end).until is None
        assert analytics_sql.scope(session, CODE, BUCKETS[1].end).until == BUCKETS[1].end


# -- the receivables sweep on random ledgers ---------------------------------------------

START = at("2025-01-01")
KINDS = [
    K.INVOICE_FINALIZED,
    K.INVOICE_PAID,
    K.CREDIT_NOTE_ISSUED,
    K.INVOICE_VOIDED,
    K.INVOICE_WRITTEN_OFF,
    K.REFUND_CREATED,
]
steps = st.lists(
    st.tuples(
        st.integers(0, 5),  # invoice
        st.sampled_from(KINDS),
        st.integers(0, 120 * 24),  # hour after Jan 1
        st.sampled_from([0, 0, 300, 1000]),
        st.sampled_from([None, 0, 24 * 40]),  # due after finalizing (hours), None: no due_at
        st.sampled_from([0, 0, 24 * 31]),  # hours written late
        st.sampled_from(["", "", "200"]),  # amount due (finalized; "": the amount)
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_the_sweep_equals_aging_at_each_moment(changes: list) -> None:
    entries = []
    recorded = START
    for number, (invoice, kind, hour, amount, due, late, owed) in enumerate(changes, start=1):
        occurred = START + timedelta(hours=hour)
        recorded = max(recorded, occurred + timedelta(hours=late))
        entries.append(
            LedgerEntry(
                id=number,
                kind=kind,
                occurred_at=occurred,
                recorded_at=recorded,
                customer_id="c",
                currency=CODE,
                invoice_id=f"i{invoice}",
                amount=amount,
                due_at=None if due is None else occurred + timedelta(hours=due),
                details={"amount_due": owed} if owed and kind is K.INVOICE_FINALIZED else {},
            )
        )
    moments = [b.end for b in BUCKETS]
    assert fast.aging_at(entries, moments=moments, currency=CODE) == tuple(
        aging(entries, as_of=m, currency=CODE)[0] for m in moments
    )


# -- the MRR and dunning sweeps on random ledgers ----------------------------------------

MRR_CHANGES = [K.SUBSCRIPTION_STARTED, K.PLAN_CHANGED, K.PAUSED, K.CANCELED, K.STATUS_CHANGED]
mrr_steps = st.lists(
    st.tuples(
        st.integers(0, 4),  # subscription
        st.integers(0, 2),  # customer (a subscription may move to another)
        st.sampled_from(MRR_CHANGES),
        st.integers(-20 * 24, 120 * 24),  # hour after Jan 1 (some before the buckets)
        st.sampled_from([0, 0, 500, 1000, 3000]),  # MRR after
        st.sampled_from(["", "active", "past_due", "paused", "canceled", "trialing"]),
        st.sampled_from([0, 0, 24 * 31]),  # hours written late
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(mrr_steps)
def test_the_mrr_sweep_equals_the_movements(changes: list) -> None:
    entries = []
    recorded = START - timedelta(days=30)
    for number, (sub, customer, kind, hour, mrr, status, late) in enumerate(changes, start=1):
        occurred = START + timedelta(hours=hour)
        recorded = max(recorded, occurred + timedelta(hours=late))
        entries.append(
            LedgerEntry(
                id=number,
                kind=kind,
                occurred_at=occurred,
                recorded_at=recorded,
                customer_id=f"c{customer}",
                subscription_id=f"s{sub}",
                currency=CODE,
                mrr_after=mrr,
                status_after=status,
            )
        )
    rows = [sweeps.mrr_row(b) for b in book(entries)]
    assert sweeps.mrr_sweep(rows, buckets=BUCKETS, currency=CODE) == mrr_movements(
        entries, buckets=BUCKETS, currency=CODE
    )


DUNNING_KINDS = [K.PAYMENT_FAILED, K.PAYMENT_FAILED, K.PAYMENT_SUCCEEDED, K.INVOICE_PAID,
                 K.INVOICE_VOIDED, K.INVOICE_WRITTEN_OFF]  # fmt: skip
dunning_steps = st.lists(
    st.tuples(
        st.integers(0, 4),  # invoice
        st.sampled_from(DUNNING_KINDS),
        st.integers(-20 * 24, 120 * 24),  # hour after Jan 1
        st.sampled_from([300, 1000]),
        st.integers(1, 3),  # attempt
        st.sampled_from(["", "card_declined", "expired_card"]),
        st.sampled_from(["", "retry_1", "retry_2"]),
        st.sampled_from([0, 0, 24 * 31]),  # hours written late
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(dunning_steps)
def test_the_dunning_sweep_equals_the_definition(changes: list) -> None:
    entries = []
    recorded = START - timedelta(days=30)
    for number, (invoice, kind, hour, amount, attempt, code, step, late) in enumerate(
        changes, start=1
    ):
        occurred = START + timedelta(hours=hour)
        recorded = max(recorded, occurred + timedelta(hours=late))
        entries.append(
            LedgerEntry(
                id=number,
                kind=kind,
                occurred_at=occurred,
                recorded_at=recorded,
                customer_id="c",
                invoice_id=f"i{invoice}",
                currency=CODE,
                amount=amount,
                attempt=attempt if kind in ATTEMPT_KINDS else 0,
                decline_code=code,
                dunning_step=step,
            )
        )
    rows = [sweeps.dunning_row(b) for b in book(entries)]
    assert tuple(sweeps.dunning_sweep(rows, buckets=BUCKETS, currency=CODE)) == dunning(
        entries, buckets=BUCKETS, currency=CODE
    )
