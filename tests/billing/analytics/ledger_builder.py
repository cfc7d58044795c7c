"""A tiny ledger writer for the analytics tests: ascending ids, recorded when dated."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from billing.analytics.ledger import EntryKind, LedgerEntry


def utc(month: int, day: int = 1, hour: int = 0, *, year: int = 2027) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


class Ledger:
    def __init__(self) -> None:
        self.entries: list[LedgerEntry] = []

    def add(
        self,
        kind: EntryKind,
        occurred_at: datetime,
        *,
        recorded_at: datetime | None = None,
        customer_id: str = "cus_a",
        currency: str = "JPY",
        **fields: Any,
    ) -> LedgerEntry:
        entry = LedgerEntry(
            id=len(self.entries) + 1,
            kind=kind,
            occurred_at=occurred_at,
            recorded_at=recorded_at or occurred_at,
            customer_id=customer_id,
            currency=currency,
            **fields,
        )
        self.entries.append(entry)
        return entry

    def mrr(
        self,
        kind: EntryKind,
        when: datetime,
        subscription_id: str,
        before: int,
        after: int,
        status: str = "active",
        **fields: Any,
    ) -> LedgerEntry:
        """An MRR entry of ``subscription_id``: MRR ``before`` -> ``after``."""
        return self.add(
            kind,
            when,
            subscription_id=subscription_id,
            mrr_before=before,
            mrr_after=after,
            status_after=status,
            **fields,
        )
