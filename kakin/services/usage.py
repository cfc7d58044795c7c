"""Usage ingestion: each event is checked on its own, stored once, and counted once.

A batch is never all-or-nothing: a bad event is refused with its reason and the good
ones beside it are kept, so a client resends only what was refused. An event id a
customer already sent is acknowledged as ``duplicate`` and not counted again, so a
client that timed out can resend the whole batch safely.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, Protocol

from sqlalchemy.orm import Session, sessionmaker

from billing import metering
from kakin.platform.metrics import usage_events as count_usage_events
from kakin.services.alert_emails import AlertMail, send_alert_emails
from kakin.services.alerts_evaluation import check_caps, evaluate
from kakin.services.errors import InvalidRequestError
from models.repositories import usage as usage_sql
from models.tables import BillableMetric

MAX_BATCH = 1000
log = logging.getLogger("kakin.usage")
_MAX_VALUE = Decimal(10) ** 12  # keeps sums of scaled values far from 64-bit overflow


class BatchTooLargeError(InvalidRequestError):
    """More events than one request may carry."""


@dataclass(frozen=True)
class UsageEventIn:
    """One usage event as a service sends it: for a customer or for a subscription."""

    event_id: str
    metric: str  # the billable metric's code
    timestamp: datetime
    properties: dict[str, Any] = field(default_factory=dict)
    customer_id: str | None = None
    subscription_id: str | None = None


class UsageEvent(Protocol):
    """What ``ingest`` reads of an event: a ``UsageEventIn``, or the API's parsed body
    (``api.requests.usage.UsageEventBody``) as it is, without a copy per event."""

    @property
    def event_id(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def timestamp(self) -> datetime: ...
    @property
    def properties(self) -> dict[str, Any]: ...
    @property
    def customer_id(self) -> str | None: ...
    @property
    def subscription_id(self) -> str | None: ...


@dataclass(frozen=True)
class EventResult:
    event_id: str
    status: Literal["accepted", "duplicate", "rejected"]
    reason: str = ""
    subscription_id: str | None = None


def measured_value(
    metric: BillableMetric, properties: dict[str, Any]
) -> tuple[int | None, str | None]:
    """(value x 10**6, group key) an event adds to its metric; ValueError says what is wrong.

    ``billing.metering`` decides what a valid event is; here are only the limits of
    storing it (six decimals, below 10^12, keys up to 255 characters).
    """
    return _Measure(metric)(properties)


class _Measure:
    """``measured_value`` for one metric, its terms built once for a whole batch."""

    def __init__(self, metric: BillableMetric) -> None:
        self.terms = metering.BillableMetric(
            code=metric.code,
            aggregation=metering.Aggregation(metric.aggregation),
            property=metric.property,
        )
        self.counts = self.terms.aggregation is metering.Aggregation.COUNT
        self.property = metric.property or ""

    def __call__(self, properties: dict[str, Any]) -> tuple[int | None, str | None]:
        if self.counts:  # validate_event accepts any properties of a count metric
            return None, None
        terms, name = self.terms, self.property
        reason = metering.validate_event(terms, properties)
        if reason is not None:
            raise ValueError(reason)
        raw = properties[name]
        if terms.aggregation is metering.Aggregation.UNIQUE_COUNT:
            if len(str(raw)) > 255:
                raise ValueError(f"property {name!r} is longer than 255 characters")
            return None, str(raw)
        value = metering.numeric_value(raw)
        assert value is not None  # validate_event checked it
        if value >= _MAX_VALUE:
            raise ValueError(f"property {name!r} must be below 10^12")
        scaled = value.scaleb(usage_sql.VALUE_DECIMALS)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"property {name!r} has more than {usage_sql.VALUE_DECIMALS} decimals")
        return int(scaled), None


@dataclass(frozen=True)
class _Held:
    """A subscription's open period, held FOR SHARE, in UTC.

    In UTC like the events' timestamps here: datetimes with the very same tzinfo
    compare without asking either for its offset.
    """

    id: str
    customer_id: str
    start: datetime | None
    end: datetime | None

    @classmethod
    def of(cls, period: usage_sql.HeldPeriod) -> _Held:
        start, end = period.start, period.end
        return cls(
            period.subscription_id,
            period.customer_id,
            None if start is None else start.astimezone(UTC),
            None if end is None else end.astimezone(UTC),
        )

    def problem(self, at: datetime, in_utc: datetime) -> str | None:
        """Why an event at ``at`` (``in_utc``) is not in the open period, or None."""
        start, end = self.start, self.end
        if start is None or end is None:
            return f"subscription {self.id} has no open billing period yet"
        if not start <= in_utc < end:
            return (
                f"timestamp {at.isoformat()} is outside the open period "
                f"{start.isoformat()} to {end.isoformat()} of subscription {self.id}"
            )
        return None


@dataclass(frozen=True)
class _Metric:
    id: str
    code: str
    measure: _Measure


def _shape_problem(event: UsageEvent) -> str | None:
    if not event.event_id or len(event.event_id) > 255:
        return "event_id must be 1 to 255 characters"
    if (event.customer_id is None) == (event.subscription_id is None):
        return "give exactly one of customer_id and subscription_id"
    if event.timestamp.tzinfo is None:
        return "timestamp needs a time zone, e.g. 2026-11-01T09:00:00+09:00"
    return None


def ingest(
    sessions: sessionmaker[Session],
    events: Sequence[UsageEvent],
    *,
    mail: AlertMail | None = None,
) -> list[EventResult]:
    """Store the valid events once each; one result per event, in the order given.

    Then the alerts watching the subscriptions the batch touched are evaluated
    (``kakin.services.alerts_evaluation``, which also holds the hard caps that refuse
    events here), and with ``mail`` their emails not sent yet go out.

    The lookups (metrics by code, the subscriptions with their open periods) are one
    query each per batch, the subscriptions locked ``FOR SHARE`` until the events are
    stored and committed (``models.repositories.usage.metered_periods``); each event is then checked
    against them in memory.
    """
    if len(events) > MAX_BATCH:
        raise BatchTooLargeError(f"a batch holds at most {MAX_BATCH} events, got {len(events)}")
    with sessions() as session:
        metrics = {
            code: _Metric(row.id, row.code, _Measure(row))
            for code, row in usage_sql.metrics_by_code(
                session, {event.metric for event in events}
            ).items()
        }
        held = usage_sql.metered_periods(
            session,
            customer_ids={e.customer_id for e in events if e.customer_id},
            subscription_ids={e.subscription_id for e in events if e.subscription_id},
        )
        by_subscription = {(period.subscription_id, period.metric_id): _Held.of(period)
                           for period in held}  # fmt: skip
        by_customer: dict[tuple[str, str], list[_Held]] = {}
        for (_, metric_id), sub in by_subscription.items():  # one per subscription and metric
            by_customer.setdefault((sub.customer_id, metric_id), []).append(sub)

        results: list[EventResult | None] = [None] * len(events)
        pending: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        for index, event in enumerate(events):
            outcome = _prepare(event, metrics, by_subscription, by_customer)
            if isinstance(outcome, str):
                results[index] = EventResult(event.event_id, "rejected", outcome)
                continue
            pair = (outcome["customer_id"], event.event_id)
            if pair in pending:  # the same event twice in one batch
                results[index] = EventResult(event.event_id, "duplicate", "repeated in this batch")
                continue
            pending[pair] = (index, outcome)
        caps = check_caps(session, list(pending.values()))
        for pair, (index, _) in list(pending.items()):
            if index in caps.refused:
                results[index] = EventResult(pair[1], "rejected", caps.refused[index])
                del pending[pair]
        inserted = usage_sql.insert_once(session, [row for _, row in pending.values()])
        session.commit()
    for pair, (index, row) in pending.items():
        if pair in inserted:
            results[index] = EventResult(pair[1], "accepted", "", row["subscription_id"])
        else:
            results[index] = EventResult(
                pair[1], "duplicate", "already received; counted once", row["subscription_id"]
            )
    # kakin_usage_events_total, by outcome
    count_usage_events(result.status for result in results if result is not None)
    # Accepted and duplicate events alike: a resend repairs an evaluation that a crash
    # after the commit above cut short (kakin.services.alerts_evaluation).
    touched = {row["subscription_id"] for _, row in pending.values()}
    try:
        evaluate(sessions, touched, capped_alerts=caps.capped_alerts)
    except Exception:
        # The events are stored: the answer must say so. The next batch for these
        # subscriptions (a resend of this one included) evaluates their totals again.
        log.exception("alerts not evaluated for %s", sorted(touched))
    else:
        if mail is not None:
            send_alert_emails(sessions, mail, touched)
    return [result for result in results if result is not None]


def _prepare(
    event: UsageEvent,
    metrics: dict[str, _Metric],
    by_subscription: dict[tuple[str, str], _Held],
    by_customer: dict[tuple[str, str], list[_Held]],
) -> dict[str, Any] | str:
    """The row to insert for an event, or why it is rejected."""
    problem = _shape_problem(event)
    if problem:
        return problem
    metric = metrics.get(event.metric)
    if metric is None:
        return f"unknown metric {event.metric!r}"
    if event.subscription_id is not None:
        subscription = by_subscription.get((event.subscription_id, metric.id))
        if subscription is None:
            return (
                f"subscription {event.subscription_id!r} does not exist, is canceled, "
                f"or has no price metered on {metric.code!r}"
            )
    else:
        candidates = by_customer.get((event.customer_id or "", metric.id), [])
        if not candidates:
            return (
                f"customer {event.customer_id!r} has no active subscription "
                f"metered on {metric.code!r}"
            )
        if len(candidates) > 1:
            return (
                f"customer {event.customer_id!r} has {len(candidates)} subscriptions metered "
                f"on {metric.code!r}; send subscription_id instead"
            )
        subscription = candidates[0]
    timestamp = event.timestamp
    in_utc = timestamp.astimezone(UTC)
    problem = subscription.problem(timestamp, in_utc)
    if problem:
        return problem
    properties = event.properties
    if not _all_finite(properties):
        # JSON from clients may carry NaN or Infinity; PostgreSQL's jsonb refuses them,
        # which would fail the whole batch instead of this one event.
        return "properties must not hold NaN or Infinity"
    try:
        value, group_key = metric.measure(properties)
    except ValueError as error:
        return str(error)
    return {
        "event_id": event.event_id,
        "customer_id": subscription.customer_id,
        "subscription_id": subscription.id,
        "metric_id": metric.id,
        "timestamp": in_utc,
        "properties": properties,
        "value": value,
        "group_key": group_key,
    }


def _all_finite(value: Any) -> bool:
    """No NaN or infinite number anywhere inside ``value`` (nested dicts and lists too)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_all_finite(item) for item in value.values())
    if isinstance(value, list):
        return all(_all_finite(item) for item in value)
    return True
