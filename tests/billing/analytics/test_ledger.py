"""The ledger entry: validation, normalisation, and the status names it relies on."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from billing.analytics.ledger import EntryKind, LedgerEntry
from billing.analytics.mrr import COUNTED_STATUSES
from models.payloads import SubscriptionStatus
from tests.billing.analytics.ledger_builder import utc

JST = timezone(timedelta(hours=9))


def entry(**fields: object) -> LedgerEntry:
    values: dict[str, object] = {
        "id": 1,
        "kind": EntryKind.INVOICE_FINALIZED,
        "occurred_at": utc(1),
        "recorded_at": utc(1),
        "customer_id": "cus_a",
        "currency": "jpy",
    }
    return LedgerEntry(**(values | fields))  # type: ignore[arg-type]


def test_times_are_utc_and_currency_is_kakins_upper_case() -> None:
    made = entry(occurred_at=datetime(2027, 2, 1, 0, 30, tzinfo=JST), kind="invoice.paid")
    assert made.occurred_at == utc(1, 31, 15) + timedelta(minutes=30)
    assert made.occurred_at.tzinfo is not None and made.occurred_at.utcoffset() == timedelta(0)
    assert made.currency == "JPY"  # as billing.money.normalize_currency and the tables store it
    assert made.kind is EntryKind.INVOICE_PAID


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"occurred_at": datetime(2027, 1, 1)}, "timezone-aware"),  # noqa: DTZ001 -- on purpose
        ({"customer_id": ""}, "customer_id"),
        ({"currency": "XXY"}, "unknown currency"),
        ({"corrects": 3}, "corrects"),
        ({"kind": EntryKind.CORRECTION}, "corrects"),
        ({"kind": EntryKind.PLAN_CHANGED}, "subscription_id"),
        ({"mrr_before": 0, "mrr_after": 100}, "does not move MRR"),
        ({"attempt": 2}, "attempt"),
        ({"mrr_after": -1}, "at least 0"),
        ({"amount": 1.5}, "integer"),
        ({"id": 0}, "id"),
        ({"details": {"usage_amount": 12}}, "strings"),
    ],
)
def test_invalid_entries_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        entry(**fields)


def test_details_are_read_only_and_the_entry_hashable() -> None:
    made = entry(details={"usage_amount": "120"})
    with pytest.raises(TypeError):
        made.details["usage_amount"] = "0"  # type: ignore[index]
    assert hash(made) == hash(entry(details={"usage_amount": "120"}))


def test_counted_statuses_are_subscription_statuses() -> None:
    # billing/ cannot import models/, so the MRR rules name the statuses by value.
    assert {SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE} == COUNTED_STATUSES
