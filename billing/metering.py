"""Billable metrics: turn a period's usage events into one quantity to rate.

A metric (Lago's "billable metric") names an aggregation over the events of one
billing period:

==============  ==========================================================  ========
aggregation     quantity                                                    property
==============  ==========================================================  ========
``count``       the number of distinct events                               none
``sum``         the sum of a numeric property                               numeric
``max``         the largest value of a numeric property (0 with no events)  numeric
``unique_count``  the number of distinct values of a property               str/int
``latest``      the property of the latest event (0 with no events)         numeric
==============  ==========================================================  ========

Rules, all enforced here and documented for the ingestion endpoint:

- **Quantities are ``Decimal``** (usage can be fractional: 1.5 GB). Numeric
  properties may be an ``int``, a ``Decimal``, a numeric string (``"1.5"``) or a
  finite ``float``; a float is read through its shortest repr (``1.1`` -> ``"1.1"``),
  which is the text a JSON client sent. Values must be finite and non-negative:
  usage is never negative, corrections are made by voiding events, not by sending
  negative ones. A ``bool`` is not a number.
- **Unique-count values** are strings or integers and are compared as text, so
  ``42`` and ``"42"`` are the same value (JSON clients differ on quoting ids).
- **Malformed events are rejected at ingestion**, one reason per event:
  ``validate_event`` returns that reason (or ``None``). ``aggregate`` assumes
  validated events and raises ``ValueError`` naming the event if it meets a bad one,
  rather than guessing (skipping would under-bill, zero would hide the bug).
- **Duplicates**: an event id counts once. Ingestion stores an event id once; as a
  second line of defence ``aggregate`` also drops repeats of an identical event and
  raises ``ValueError`` for two *different* events sharing an id, so the result
  never depends on which copy came first.
- **Order does not matter**: ``latest`` takes the event with the greatest
  timestamp, and among events with the same timestamp the greatest ``event_id``
  (plain string order), so shuffling the events never changes a quantity.
- **The period** is half-open, ``start <= timestamp < end``, like the billing
  periods of ``billing.calendar``; events outside it are ignored by ``aggregate``
  (``in_period`` lets ingestion reject them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import MAX_PREC, Decimal, InvalidOperation, localcontext
from enum import StrEnum
from types import MappingProxyType


class Aggregation(StrEnum):
    """How a metric aggregates a period's events."""

    COUNT = "count"
    SUM = "sum"
    MAX = "max"
    UNIQUE_COUNT = "unique_count"
    LATEST = "latest"


_NUMERIC = frozenset({Aggregation.SUM, Aggregation.MAX, Aggregation.LATEST})


@dataclass(frozen=True)
class BillableMetric:
    """What to measure: e.g. ``BillableMetric(code="storage_gb", aggregation=MAX,
    property="gb")``.

    Attributes:
        code: The metric code events refer to (``"api_calls"``).
        aggregation: How the period's events become one quantity.
        property: The event property aggregated; required for every aggregation
            but ``count``, which must not name one.
    """

    code: str
    aggregation: Aggregation
    property: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not self.code.strip():
            raise ValueError("a metric needs a non-empty code")
        object.__setattr__(self, "aggregation", Aggregation(self.aggregation))
        if self.aggregation is Aggregation.COUNT:
            if self.property is not None:
                raise ValueError("a count metric counts events and takes no property")
        elif not isinstance(self.property, str) or not self.property:
            raise ValueError(f"a {self.aggregation} metric needs the property it aggregates")


@dataclass(frozen=True)
class UsageEvent:
    """One usage event as ingested.

    Attributes:
        event_id: The client's idempotency key: an event id is counted once.
        timestamp: When the usage happened (timezone-aware).
        properties: The event's properties (``{"gb": "1.5", "user_id": "u_1"}``);
            stored as a read-only copy.
    """

    event_id: str
    timestamp: datetime
    properties: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.event_id, str) or not self.event_id:
            raise ValueError("a usage event needs a non-empty event_id")
        if self.timestamp.tzinfo is None:
            raise ValueError(f"event {self.event_id!r}: the timestamp must be timezone-aware")
        object.__setattr__(self, "properties", MappingProxyType(dict(self.properties)))

    def __hash__(self) -> int:
        return hash((self.event_id, self.timestamp))


@dataclass(frozen=True)
class UsageAggregate:
    """A metric's quantity for one period.

    Attributes:
        metric_code: The metric's code.
        aggregation: The aggregation used.
        quantity: The quantity to rate (``Decimal``, never negative).
        event_count: How many distinct events in the period contributed.
    """

    metric_code: str
    aggregation: Aggregation
    quantity: Decimal
    event_count: int


def numeric_value(value: object) -> Decimal | None:
    """The ``Decimal`` a numeric property stands for, or ``None`` if it is not one.

    Accepts ``int``, ``Decimal``, numeric ``str`` and finite ``float`` (through its
    shortest repr); refuses ``bool``, NaN and infinities. Negative values are
    returned (callers decide); see ``validate_event``.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        value = repr(value)
    if not isinstance(value, (int, Decimal, str)):
        return None
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def validate_event(metric: BillableMetric, properties: Mapping[str, object]) -> str | None:
    """Why an event's properties cannot be billed on ``metric``, or ``None`` if they can.

    Meant for the ingestion endpoint, which rejects one event with this reason and
    keeps the rest of the batch.

    Args:
        metric: The metric the event reports.
        properties: The event's properties.

    Returns:
        A sentence naming the property and the problem, or ``None``.
    """
    if metric.aggregation is Aggregation.COUNT:
        return None
    name = metric.property
    assert name is not None  # guaranteed by BillableMetric
    if name not in properties:
        return f"property {name!r} is missing (metric {metric.code!r} aggregates it)"
    value = properties[name]
    if metric.aggregation is Aggregation.UNIQUE_COUNT:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            return f"property {name!r} must be a string or an integer, not {type(value).__name__}"
        if isinstance(value, str) and not value:
            return f"property {name!r} must not be empty"
        return None
    number = numeric_value(value)
    if number is None:
        return f"property {name!r} must be a finite number, got {value!r}"
    if number < 0:
        return f"property {name!r} must not be negative, got {value!r}"
    return None


def in_period(timestamp: datetime, *, start: datetime, end: datetime) -> bool:
    """Whether ``timestamp`` falls in the half-open period ``[start, end)``."""
    return start <= timestamp < end


def aggregate(
    *,
    metric: BillableMetric,
    events: Iterable[UsageEvent],
    start: datetime | None = None,
    end: datetime | None = None,
) -> UsageAggregate:
    """Aggregate a period's events into the quantity to rate.

    Args:
        metric: The billable metric.
        events: The events reported for the metric, in any order; repeats of an
            identical event (same id, timestamp and properties) count once.
        start: If given, events before it are ignored.
        end: If given, events at or after it are ignored.

    Returns:
        The quantity and the number of distinct events that contributed.

    Raises:
        ValueError: For two different events with the same id, or an event that
            ``validate_event`` would have rejected.
    """
    unique: dict[str, UsageEvent] = {}
    for event in events:
        if start is not None and event.timestamp < start:
            continue
        if end is not None and event.timestamp >= end:
            continue
        seen = unique.get(event.event_id)
        if seen is None:
            reason = validate_event(metric, event.properties)
            if reason is not None:
                raise ValueError(f"event {event.event_id!r}: {reason}")
            unique[event.event_id] = event
        elif seen.timestamp != event.timestamp or dict(seen.properties) != dict(event.properties):
            raise ValueError(
                f"event id {event.event_id!r} was reported twice with different contents"
            )
    chosen = list(unique.values())
    return UsageAggregate(
        metric_code=metric.code,
        aggregation=metric.aggregation,
        quantity=_quantity(metric, chosen),
        event_count=len(chosen),
    )


def _quantity(metric: BillableMetric, events: list[UsageEvent]) -> Decimal:
    name = metric.property
    if metric.aggregation is Aggregation.COUNT:
        return Decimal(len(events))
    assert name is not None
    if metric.aggregation is Aggregation.UNIQUE_COUNT:
        return Decimal(len({str(event.properties[name]) for event in events}))
    if not events:
        return Decimal(0)
    if metric.aggregation is Aggregation.LATEST:
        last = max(events, key=lambda event: (event.timestamp, event.event_id))
        return _number(last, name)
    values = [_number(event, name) for event in events]
    if metric.aggregation is Aggregation.MAX:
        return max(values)
    # SUM: with unbounded precision, Decimal addition is exact (no 28-digit cut).
    with localcontext() as context:
        context.prec = MAX_PREC
        return sum(values, Decimal(0))


def _number(event: UsageEvent, name: str) -> Decimal:
    number = numeric_value(event.properties[name])
    assert number is not None  # validated in aggregate()
    return number
