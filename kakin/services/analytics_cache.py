"""The figures of closed buckets, kept between requests and checked against the ledger
on every use, so a report recomputes only its buckets from a recent **horizon** on.

Why it is exact. The ledger is append-only and its booking rule
(``billing.analytics.booking``) puts an entry in the bucket open when it was written,
so what the figures of a bucket before a moment H read (the entries booked before H)
changes only when an entry **booked before H** is added, or a **correction** (which
re-dates and re-values an earlier entry) is recorded. Each kept value carries the
ledger's **mark** when it was computed (``models.repositories.analytics.ledger_mark``:
its highest id, and the ids just below it not yet visible, which a transaction still
writing may commit later); before it is used, the entries that arrived since the mark
are read (``arrivals``, a few rows by the primary key): any correction, or any entry
of the currency booked before the value's horizon, and the value is dropped and
recomputed. So a report is what the uncached computation gives at that moment, and a
change still shows at once (the lag stays 0 seconds).

What is kept, per figure (``kakin.services.analytics_reads``): the rows of the closed
buckets, and what the sweeps had followed at the horizon (each subscription's MRR, the
invoices still open), so the buckets from the horizon on read only the entries booked
since it (the ``(currency, occurred_at)`` and ``(currency, recorded_at)`` indexes,
migration 0012). The horizon is the latest bucket boundary ``SETTLE`` before the
request's moment: entries are still written with times a little in the past (an
activity books at the time its attempt was scheduled), and one booked before the
horizon only costs a recomputation.

The values live in the process (an API worker keeps its own), at most ``KEPT`` of them,
the least recently used dropped first. One entry written in a transaction open while
``MARK_WINDOW`` later entries committed, and committing after a value was kept, would
not be seen: no writer of the ledger holds a transaction that long.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from models.repositories import analytics as analytics_sql

# Entries may still arrive booked this far back (see the module docstring).
SETTLE = timedelta(minutes=15)
KEPT = 64  # values kept, the least recently used dropped first
MARK_WINDOW = 1000  # ids below the highest checked for gaps
_GAPS_KEPT = 5000  # at most this many not-yet-visible ids followed per value


@dataclass(frozen=True)
class Mark:
    """The ledger when a value was computed (``ledger_mark``)."""

    last_id: int
    last_key: str
    gaps: tuple[int, ...]


@dataclass(frozen=True)
class _Kept:
    mark: Mark
    value: Any


_STORE: OrderedDict[tuple[Hashable, ...], _Kept] = OrderedDict()
_LOCK = threading.Lock()


def clear() -> None:
    """Forgets every kept value (tests, and a database restored from a backup)."""
    with _LOCK:
        _STORE.clear()


class Closed:
    """One request's view of the cache: the ledger's mark, read before any figure.

    Args:
        session: The request's session (the figures read through it too).
        as_of: The request's moment; the horizon is ``SETTLE`` before it.
    """

    def __init__(self, session: Session, as_of: datetime) -> None:
        self.session = session
        self.as_of = as_of
        last_id, last_key, gaps = analytics_sql.ledger_mark(session, MARK_WINDOW)
        self.mark = Mark(last_id=last_id, last_key=last_key, gaps=gaps)
        self.database = str(session.get_bind().engine.url)

    def horizon(self, boundaries: Sequence[datetime]) -> datetime | None:
        """The latest of ``boundaries`` (bucket ends, ascending) at least ``SETTLE``
        before the request's moment; ``None``: none is (nothing is closed)."""
        limit = self.as_of - SETTLE
        found = None
        for moment in boundaries:
            if moment > limit:
                break
            found = moment
        return found

    def get(self, key: tuple[Hashable, ...], currency: str, horizon: datetime) -> Any | None:
        """The value kept under ``key`` if the ledger has nothing new for it: no
        correction, and no entry of ``currency`` booked before ``horizon``."""
        full = (self.database, currency, horizon, *key)
        with _LOCK:
            kept = _STORE.get(full)
            if kept is not None:
                _STORE.move_to_end(full)
        if kept is None:
            return None
        if kept.mark.last_id > self.mark.last_id or (
            analytics_sql.event_key_of(self.session, kept.mark.last_id) != kept.mark.last_key
        ):
            self._drop(full)  # not this ledger's past (another database, or restored)
            return None
        earliest, corrected = analytics_sql.arrivals(self.session, kept.mark.last_id,
                                                     kept.mark.gaps)  # fmt: skip
        first = earliest.get(currency)
        if corrected or (first is not None and first < horizon):
            self._drop(full)
            return None
        # Still right as of this request's mark: check from it next time (fewer rows).
        gaps = tuple(sorted({*self.mark.gaps, *kept.mark.gaps}))[-_GAPS_KEPT:]
        renewed = _Kept(Mark(self.mark.last_id, self.mark.last_key, gaps), kept.value)
        with _LOCK:
            if full in _STORE:
                _STORE[full] = renewed
        return kept.value

    def put(self, key: tuple[Hashable, ...], currency: str, horizon: datetime,
            value: Any) -> None:  # fmt: skip
        """Keeps ``value`` (computed after this request's mark was read)."""
        if self.mark.last_id == 0:
            return
        full = (self.database, currency, horizon, *key)
        with _LOCK:
            _STORE[full] = _Kept(self.mark, value)
            _STORE.move_to_end(full)
            while len(_STORE) > KEPT:
                _STORE.popitem(last=False)

    def _drop(self, full: tuple[Hashable, ...]) -> None:
        with _LOCK:
            _STORE.pop(full, None)
