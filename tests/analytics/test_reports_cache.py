"""The cache of closed buckets (kakin.services.analytics_cache) never changes a figure:
after each change to the ledger (an entry in the open bucket, one written late with a
time before the horizon, a correction), every cached read equals the uncached one, and
the cached one shows the change at once.

The ledger is in NOK, which no other test bills.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from billing.analytics.buckets import bucket_range
from billing.analytics.ledger import EntryKind
from kakin.services import analytics_cache
from kakin.services import analytics_reads as fast
from kakin.services.analytics_cache import Closed
from models.repositories import analytics as analytics_sql
from models.repositories import ledger as ledger_sql

K = EntryKind
CODE = "NOK"
BUCKETS = bucket_range(
    from_=datetime(2025, 1, 1, tzinfo=UTC),
    to=datetime(2025, 5, 1, tzinfo=UTC),
    interval="month",
    time_zone="Asia/Tokyo",
)
AS_OF = datetime(2025, 4, 20, tzinfo=UTC)  # the horizon: April 1 (Tokyo); May is the last bucket


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _append(session: Session, key: str, kind: EntryKind, occurred: str,
            recorded: str | None = None, **fields: Any) -> int:  # fmt: skip
    row = ledger_sql.append(session, f"cache:{key}", kind=kind, occurred_at=at(occurred),
                            recorded_at=at(recorded or occurred), currency=CODE,
                            **fields)  # fmt: skip
    session.flush()
    return row.id


def _history(session: Session) -> dict[str, int]:
    ids = {}
    for n, (customer, mrr, day) in enumerate([("c1", 1000, "01-05"), ("c2", 500, "02-10"),
                                              ("c3", 300, "03-03")]):  # fmt: skip
        ids[f"s{n}"] = _append(session, f"s{n}", K.SUBSCRIPTION_STARTED, f"2025-{day}",
                               subscription_id=f"k_s{n}", customer_id=f"k_{customer}",
                               mrr_after=mrr, status_after="active")  # fmt: skip
        for month in range(int(day[:2]), 5):
            invoice = f"k_i{n}_{month}"
            _append(session, f"i{n}{month}", K.INVOICE_FINALIZED, f"2025-{month:02}-{day[3:]}",
                    invoice_id=invoice, customer_id=f"k_{customer}", amount=mrr,
                    due_at=at(f"2025-{month:02}-{day[3:]}"))  # fmt: skip
            if n == 1 and month == 3:  # c2's March invoice fails, then is paid in April
                _append(session, f"f{n}{month}", K.PAYMENT_FAILED, f"2025-03-{day[3:]}T00:01",
                        invoice_id=invoice, customer_id=f"k_{customer}", amount=mrr,
                        attempt=1, decline_code="card_declined")  # fmt: skip
                _append(session, f"p{n}{month}", K.INVOICE_PAID, "2025-04-02",
                        invoice_id=invoice, customer_id=f"k_{customer}", amount=mrr,
                        attempt=2, dunning_step="retry_1")  # fmt: skip
            elif month < 4:
                _append(session, f"p{n}{month}", K.INVOICE_PAID, f"2025-{month:02}-{day[3:]}",
                        invoice_id=invoice, customer_id=f"k_{customer}", amount=mrr,
                        attempt=1)  # fmt: skip
    session.commit()
    return ids


@pytest.fixture(scope="module")
def sessions(pg_sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with pg_sessions() as session:
        if ledger_sql.by_key(session, "cache:s0") is None:
            _history(session)
    return pg_sessions


def _figures(session: Session, cache: Closed | None) -> tuple[Any, ...]:
    scope = analytics_sql.scope(session, CODE, BUCKETS[-1].end)
    moments = [min(b.end, AS_OF) for b in BUCKETS]
    return (
        fast.revenue(session, scope, BUCKETS, cache=cache),
        fast.usage_revenue(session, scope, BUCKETS, cache),
        fast.movements(session, scope, BUCKETS, cache),
        fast.dunning(session, scope, BUCKETS, cache),
        fast.receivables(session, scope, moments, cache),
        fast.open_invoices(session, scope, AS_OF, cache),
        fast.recovery_rate(session, scope, BUCKETS, cache),
    )


class _Counted(Closed):
    """Counts the values found kept."""

    found = 0

    def get(self, *args: Any) -> Any:
        value = super().get(*args)
        _Counted.found += value is not None
        return value


def _both(sessions: sessionmaker[Session]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    with sessions() as session:
        cached = _figures(session, _Counted(session, AS_OF))
        return cached, _figures(session, None)


def _kept_values_used(sessions: sessionmaker[Session]) -> int:
    _Counted.found = 0
    cached, plain = _both(sessions)
    assert cached == plain
    return _Counted.found


def test_cached_figures_equal_the_uncached_after_every_change(
    sessions: sessionmaker[Session],
) -> None:
    analytics_cache.clear()
    # Computed and kept: 8 values (receivables keeps its closed buckets and the open
    # invoices at the day's start); the recovery rate and the open invoices use the
    # dunning and the open invoices kept just before them in the same request.
    assert _kept_values_used(sessions) == 2
    assert _kept_values_used(sessions) == 8  # each kept value used
    with sessions() as session:
        assert Closed(session, AS_OF).horizon([b.end for b in BUCKETS]) == BUCKETS[2].end

    # An entry in the open bucket: the kept buckets stay, April shows it at once.
    with sessions() as session:
        _append(session, "open", K.INVOICE_FINALIZED, "2025-04-10", invoice_id="k_new",
                customer_id="k_c1", amount=777, due_at=at("2025-04-10"))  # fmt: skip
        session.commit()
    # All but the open invoices, kept at the day's start (April 19), after April 10
    # (recomputed by the receivables, then used by the open invoices).
    assert _kept_values_used(sessions) == 7
    cached, plain = _both(sessions)
    assert cached[0][3].invoiced == plain[0][3].invoiced == 1000 + 500 + 300 + 777
    assert cached[4][3].days_1_30 == 1000 + 500 + 300 + 777  # April unpaid

    # An entry written late, booked before the horizon (an activity's attempt scheduled
    # in March): the kept figures are dropped and recomputed.
    with sessions() as session:
        _append(session, "late", K.SUBSCRIPTION_STARTED, "2025-03-10", "2025-03-20",
                subscription_id="k_s9", customer_id="k_c9", mrr_after=250,
                status_after="active")  # fmt: skip
        session.commit()
    # Dropped: every figure reads March (then used again within the request, as above).
    assert _kept_values_used(sessions) == 2
    cached, plain = _both(sessions)
    assert cached[2][2].end == plain[2][2].end == 1000 + 500 + 300 + 250

    # A correction re-values a January entry: January's figures change, and say so.
    with sessions() as session:
        target = ledger_sql.by_key(session, "cache:i01")
        assert target is not None
        _append(session, "fix", K.CORRECTION, "2025-01-05", "2025-04-15", corrects=target.id,
                invoice_id="k_i0_1", customer_id="k_c1", amount=900,
                due_at=at("2025-01-05"))  # fmt: skip
        session.commit()
    assert _kept_values_used(sessions) == 2  # dropped: a correction (as above)
    cached, plain = _both(sessions)
    assert cached == plain
    assert cached[0][0].invoiced == 900
    assert cached[0][0].corrections
