"""Dunning figures per bucket and currency: failures, recoveries, time to recover.

A **dunning episode** starts at an invoice's first ``payment.failed`` and ends when
the invoice is ``invoice.paid`` (**recovered**, by a retry or any other payment) or
``invoice.voided`` / ``invoice.written_off`` (**lost**). Episodes are counted in the
bucket where they end, so a past bucket's figures never wait on later events.

- **First-attempt failure rate**: ``payment.failed`` with ``attempt == 1`` /
  all ``payment.*`` with ``attempt == 1``, in the bucket.
- **Recovery rate**: episodes recovered / episodes ended, in the bucket.
- **Recovered amount**: the ``invoice.paid`` amounts ending episodes, also split by
  the ladder step they were recovered at (the paid entry's ``dunning_step``, else
  the last failed attempt's) and by the decline code of the first failure.
- **Time to recover**: from the first failure to the payment; median and mean, to
  the microsecond (the mean is rounded down, as ``timedelta`` division does).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from billing.analytics.booking import Booked, book
from billing.analytics.buckets import Bucket, bucket_locator
from billing.analytics.ledger import EntryKind, LedgerEntry
from billing.analytics.ratios import ratio
from billing.money import normalize_currency

_PAYMENTS = (EntryKind.PAYMENT_FAILED, EntryKind.PAYMENT_SUCCEEDED)
_LOST = (EntryKind.INVOICE_VOIDED, EntryKind.INVOICE_WRITTEN_OFF)
_DUNNING_KINDS = frozenset({*_PAYMENTS, *_LOST, EntryKind.INVOICE_PAID})


@dataclass(frozen=True)
class DunningBucket:
    bucket: Bucket
    currency: str
    first_attempts: int = 0
    first_attempt_failures: int = 0
    recovered: int = 0
    lost: int = 0
    recovered_amount: int = 0
    lost_amount: int = 0
    recovered_by_step: dict[str, int] = field(default_factory=dict, hash=False)
    recovered_by_decline_code: dict[str, int] = field(default_factory=dict, hash=False)
    time_to_recover_median: timedelta | None = None
    time_to_recover_mean: timedelta | None = None

    @property
    def first_attempt_failure_rate(self) -> Decimal | None:
        return ratio(self.first_attempt_failures, self.first_attempts)

    @property
    def recovery_rate(self) -> Decimal | None:
        return ratio(self.recovered, self.recovered + self.lost)


@dataclass
class _Episode:
    started_at: datetime
    decline_code: str
    amount: int
    last_step: str = ""


@dataclass
class Tally:
    """One bucket's figures as they add up: ``counts`` holds the ``DunningBucket``
    counts and amounts by field name (``recovered``, ``lost_amount``...). The fast read
    (kakin.services.analytics_sweeps) adds up into the same and ends with dunning_bucket."""

    counts: Counter[str] = field(default_factory=Counter)
    by_step: Counter[str] = field(default_factory=Counter)
    by_code: Counter[str] = field(default_factory=Counter)
    durations: list[timedelta] = field(default_factory=list)


def dunning(
    entries: Iterable[LedgerEntry],
    *,
    buckets: Sequence[Bucket],
    known_at: datetime | None = None,
    currency: str | None = None,
) -> tuple[DunningBucket, ...]:
    """Dunning figures per currency and bucket (every bucket, zeros included)."""
    locate = bucket_locator(buckets)
    wanted = None if currency is None else normalize_currency(currency)
    tallies: dict[tuple[str, int], Tally] = {}
    seen: set[str] = set() if wanted is None else {wanted}
    episodes: dict[str, _Episode] = {}
    for item in book(entries, known_at=known_at):
        entry = item.entry
        index = locate(item.booked_at)
        tally = Tally()  # outside the buckets: follow the episodes, count nothing
        if index is not None and wanted in (None, entry.currency):
            tally = tallies.setdefault((entry.currency, index), Tally())
            if entry.kind in _DUNNING_KINDS:
                seen.add(entry.currency)
        _follow(item, episodes, tally)
    rows = []
    for code in sorted(seen):
        for index, bucket in enumerate(buckets):
            rows.append(dunning_bucket(bucket, code, tallies.get((code, index), Tally())))
    return tuple(rows)


def _follow(item: Booked, episodes: dict[str, _Episode], tally: Tally) -> None:
    entry = item.entry
    if entry.kind in _PAYMENTS and entry.attempt == 1:
        tally.counts["first_attempts"] += 1
        tally.counts["first_attempt_failures"] += entry.kind is EntryKind.PAYMENT_FAILED
    if entry.kind is EntryKind.PAYMENT_FAILED and entry.invoice_id:
        started = episodes.setdefault(
            entry.invoice_id,
            _Episode(
                started_at=entry.occurred_at, decline_code=entry.decline_code, amount=entry.amount
            ),
        )
        started.last_step = entry.dunning_step or started.last_step
        return
    episode = episodes.get(entry.invoice_id) if entry.invoice_id else None
    if episode is None:
        return
    if entry.kind is EntryKind.INVOICE_PAID:
        del episodes[entry.invoice_id]
        tally.counts["recovered"] += 1
        tally.counts["recovered_amount"] += entry.amount
        tally.by_step[entry.dunning_step or episode.last_step] += entry.amount
        tally.by_code[episode.decline_code] += entry.amount
        tally.durations.append(entry.occurred_at - episode.started_at)
    elif entry.kind in _LOST:
        del episodes[entry.invoice_id]
        tally.counts["lost"] += 1
        tally.counts["lost_amount"] += episode.amount


def dunning_bucket(bucket: Bucket, code: str, tally: Tally) -> DunningBucket:
    durations = sorted(tally.durations)
    median = mean = None
    if durations:
        middle = len(durations) // 2
        # The median of an even count is the mean of the two middle values.
        median = (
            durations[middle]
            if len(durations) % 2
            else (durations[middle - 1] + durations[middle]) / 2
        )
        mean = sum(durations, timedelta(0)) // len(durations)
    return DunningBucket(
        bucket=bucket,
        currency=code,
        **tally.counts,
        recovered_by_step=dict(sorted(tally.by_step.items())),
        recovered_by_decline_code=dict(sorted(tally.by_code.items())),
        time_to_recover_median=median,
        time_to_recover_mean=mean,
    )


def observed_recovery_rate(rows: Iterable[DunningBucket]) -> Decimal | None:
    """Episodes recovered / episodes ended over all the rows (one currency's history)."""
    recovered = lost = 0
    for row in rows:
        recovered += row.recovered
        lost += row.lost
    return ratio(recovered, recovered + lost)
