"""Which ledger entries a figure counts, and when: corrections, late entries, "as known at".

**Booking rule.** An entry is *booked* at ``max(occurred_at, recorded_at)``, and the
state at a moment ``t`` is made of the entries booked strictly before ``t``. An entry
written while its period is still open counts at its effective time; one written
after (a late webhook, a back-dated payment) counts when it was written, in the
period that was open then. So once a period has ended, no entry appended later can
land in it, and a past figure asked again later is the same.

**Corrections.** A ``correction`` entry replaces the entry it ``corrects``: from the
moment it is in the ledger, every figure is computed as if the corrected entry had
carried the correction's values (effective time, amount, MRR, statuses, attempt,
decline code, dunning step, due date, details) all along, still at the original's
place in the recording order and booked at ``max(new occurred_at, original
recorded_at)``. That is the one way a past figure changes, and it shows: each figure
lists the ids of the corrections it reflects. A correction keeps the original's kind,
customer, subscription, invoice and currency (to move an entry to another customer,
correct it to nothing and record a new one). Of several corrections of one entry
(or corrections of a correction), the last recorded wins.

**As known at.** ``known_at`` reproduces what the figures said at that moment: only
entries recorded at or before it count, corrections included.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from billing.analytics.buckets import Bucket, bucket_locator
from billing.analytics.ledger import EntryKind, LedgerEntry
from billing.money import normalize_currency

# The fields a correction replaces; the rest identify the entry and stay.
_CORRECTED_FIELDS = (
    "occurred_at",
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
)
_IDENTITY_FIELDS = ("customer_id", "subscription_id", "invoice_id", "currency")


@dataclass(frozen=True)
class Booked:
    """An entry as the figures see it.

    Attributes:
        entry: The entry, with the values of the correction in force if any.
        booked_at: When it counts: ``max(occurred_at, recorded_at)``.
        position: Its place in the recording order (the original entry's id).
        correction: The id of the correction in force, 0 if none.
    """

    entry: LedgerEntry
    booked_at: datetime
    position: int
    correction: int = 0


def book(entries: Iterable[LedgerEntry], *, known_at: datetime | None = None) -> list[Booked]:
    """The entries the figures count, corrections applied, in booking order.

    Args:
        entries: Ledger entries in any order.
        known_at: Count only entries recorded at or before this moment (``None``: all).

    Returns:
        One ``Booked`` per non-correction entry, sorted by ``(booked_at, position)``.

    Raises:
        ValueError: For duplicate ids, or a correction of an unknown entry or one
            that changes the entry's identity.
    """
    if known_at is not None and known_at.tzinfo is None:
        raise ValueError("known_at must be timezone-aware")
    visible = sorted(
        (e for e in entries if known_at is None or e.recorded_at <= known_at),
        key=lambda e: e.id,
    )
    by_id: dict[int, LedgerEntry] = {}
    for entry in visible:
        if entry.id in by_id:
            raise ValueError(f"ledger entry id {entry.id} appears twice")
        by_id[entry.id] = entry
    in_force: dict[int, LedgerEntry] = {}
    for entry in visible:
        if entry.kind is EntryKind.CORRECTION:
            in_force[_root(entry, by_id)] = entry
    booked = []
    for entry in visible:
        if entry.kind is EntryKind.CORRECTION:
            continue
        correction = in_force.get(entry.id)
        shown = entry if correction is None else _corrected(entry, correction)
        booked.append(
            Booked(
                entry=shown,
                booked_at=max(shown.occurred_at, entry.recorded_at),
                position=entry.id,
                correction=0 if correction is None else correction.id,
            )
        )
    booked.sort(key=lambda b: (b.booked_at, b.position))
    return booked


def _root(correction: LedgerEntry, by_id: dict[int, LedgerEntry]) -> int:
    target_id = correction.corrects
    while True:
        target = by_id.get(target_id)
        if target is None or target_id >= correction.id:
            raise ValueError(
                f"correction {correction.id} corrects entry {target_id}, "
                "which is not an earlier entry of the ledger"
            )
        if target.kind is not EntryKind.CORRECTION:
            return target_id
        target_id = target.corrects


def _corrected(original: LedgerEntry, correction: LedgerEntry) -> LedgerEntry:
    for name in _IDENTITY_FIELDS:
        if getattr(original, name) != getattr(correction, name):
            raise ValueError(
                f"correction {correction.id} changes {name} of entry {original.id}: "
                "a correction keeps the entry's identity"
            )
    values = {name: getattr(correction, name) for name in _CORRECTED_FIELDS}
    return dataclasses.replace(original, **values)


def by_bucket(
    booked: Iterable[Booked],
    *,
    buckets: Sequence[Bucket],
    currency: str | None = None,
) -> tuple[list[str], dict[tuple[str, int], list[Booked]]]:
    """Group booked entries by currency and bucket index.

    Returns:
        The currencies (sorted; only ``currency`` when given) and, per
        ``(currency, bucket index)``, the entries booked in that bucket.
    """
    locate = bucket_locator(buckets)
    wanted = None if currency is None else normalize_currency(currency)
    groups: dict[tuple[str, int], list[Booked]] = {}
    seen: set[str] = set() if wanted is None else {wanted}
    for item in booked:
        index = locate(item.booked_at)
        code = item.entry.currency
        if index is None or (wanted is not None and code != wanted):
            continue
        seen.add(code)
        groups.setdefault((code, index), []).append(item)
    return sorted(seen), groups
