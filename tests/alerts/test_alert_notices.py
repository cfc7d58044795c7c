"""``alert.triggered`` and ``usage.cap_reached`` move nothing: every figure is the same
with them in the ledger as without (their ``amount`` is the bill an alert saw)."""

from __future__ import annotations

from datetime import UTC, datetime

from billing.analytics.buckets import bucket_range
from billing.analytics.ledger import EntryKind, LedgerEntry
from billing.analytics.movements import mrr_movements
from billing.analytics.receivables import aging
from billing.analytics.revenue import revenue

AT = datetime(2026, 11, 10, tzinfo=UTC)
BUCKETS = bucket_range(from_=datetime(2026, 11, 1, tzinfo=UTC),
                       to=datetime(2026, 12, 1, tzinfo=UTC), interval="month")  # fmt: skip


def entry(id_: int, kind: EntryKind, **fields: object) -> LedgerEntry:
    base = {"occurred_at": AT, "recorded_at": AT, "customer_id": "cus_1",
            "subscription_id": "sub_1", "currency": "JPY"}  # fmt: skip
    return LedgerEntry(id=id_, kind=kind, **{**base, **fields})  # type: ignore[arg-type]


def test_notices_count_in_no_figure() -> None:
    billing = [
        entry(1, EntryKind.SUBSCRIPTION_STARTED, mrr_after=1000),
        entry(2, EntryKind.INVOICE_FINALIZED, invoice_id="in_1", amount=1000),
    ]
    notices = [
        entry(3, EntryKind.ALERT_TRIGGERED, amount=5500, details={"threshold": "4000"}),
        entry(4, EntryKind.USAGE_CAP_REACHED, details={"threshold": "100"}),
    ]
    both = billing + notices
    assert revenue(both, buckets=BUCKETS) == revenue(billing, buckets=BUCKETS)
    assert mrr_movements(both, buckets=BUCKETS) == mrr_movements(billing, buckets=BUCKETS)
    assert aging(both, as_of=AT) == aging(billing, as_of=AT)
