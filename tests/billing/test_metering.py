"""Billable metrics: aggregation over a period, validation per event, order and dedupe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.metering import (
    Aggregation,
    BillableMetric,
    UsageEvent,
    aggregate,
    in_period,
    validate_event,
)
from billing.rating import GraduatedPrice, Tier, VolumePrice, rate

START = datetime(2027, 3, 1, tzinfo=UTC)
END = datetime(2027, 4, 1, tzinfo=UTC)

CALLS = BillableMetric(code="api_calls", aggregation=Aggregation.COUNT)
GB = BillableMetric(code="transfer_gb", aggregation=Aggregation.SUM, property="gb")
PEAK = BillableMetric(code="peak_seats", aggregation=Aggregation.MAX, property="seats")
USERS = BillableMetric(code="active_users", aggregation=Aggregation.UNIQUE_COUNT, property="user")
STORAGE = BillableMetric(code="storage_gb", aggregation=Aggregation.LATEST, property="gb")


def event(event_id: str, minutes: int, **properties: object) -> UsageEvent:
    return UsageEvent(
        event_id=event_id, timestamp=START + timedelta(minutes=minutes), properties=properties
    )


# --- the five aggregations ----------------------------------------------------------------


def test_each_aggregation_on_one_period() -> None:
    events = [
        event("e1", 1, gb="1.5", seats=3, user="u1"),
        event("e2", 2, gb=2, seats=5, user="u2"),
        event("e3", 3, gb=Decimal("0.25"), seats=4, user="u1"),
    ]
    assert aggregate(metric=CALLS, events=events).quantity == 3
    assert aggregate(metric=GB, events=events).quantity == Decimal("3.75")
    assert aggregate(metric=PEAK, events=events).quantity == 5
    assert aggregate(metric=USERS, events=events).quantity == 2
    assert aggregate(metric=STORAGE, events=events).quantity == Decimal("0.25")


def test_no_events_is_zero_for_every_aggregation() -> None:
    for metric in (CALLS, GB, PEAK, USERS, STORAGE):
        result = aggregate(metric=metric, events=[])
        assert (result.quantity, result.event_count) == (0, 0)
        assert result.metric_code == metric.code


def test_latest_breaks_timestamp_ties_by_the_greatest_event_id() -> None:
    events = [event("b", 5, gb=7), event("a", 5, gb=9), event("c", 1, gb=100)]
    assert aggregate(metric=STORAGE, events=events).quantity == 7


def test_unique_count_compares_values_as_text() -> None:
    events = [event("e1", 1, user=42), event("e2", 2, user="42"), event("e3", 3, user="43")]
    assert aggregate(metric=USERS, events=events).quantity == 2


def test_floats_from_json_are_read_as_the_digits_sent() -> None:
    events = [event("e1", 1, gb=0.1), event("e2", 2, gb=0.2)]
    assert aggregate(metric=GB, events=events).quantity == Decimal("0.3")


def test_the_period_is_half_open() -> None:
    events = [
        UsageEvent(event_id="before", timestamp=START - timedelta(microseconds=1)),
        UsageEvent(event_id="first", timestamp=START),
        UsageEvent(event_id="last", timestamp=END - timedelta(microseconds=1)),
        UsageEvent(event_id="after", timestamp=END),
    ]
    result = aggregate(metric=CALLS, events=events, start=START, end=END)
    assert result.quantity == 2
    assert in_period(START, start=START, end=END)
    assert not in_period(END, start=START, end=END)


# --- duplicates ----------------------------------------------------------------------------


def test_resending_the_same_events_changes_nothing() -> None:
    events = [event(f"e{i}", i, gb="0.5", seats=i % 9, user=f"u{i % 7}") for i in range(100)]
    for metric in (CALLS, GB, PEAK, USERS, STORAGE):
        once = aggregate(metric=metric, events=events)
        twice = aggregate(metric=metric, events=events + events)
        assert once == twice


def test_two_different_events_with_one_id_are_refused() -> None:
    with pytest.raises(ValueError, match="'e1' was reported twice with different contents"):
        aggregate(metric=GB, events=[event("e1", 1, gb=1), event("e1", 1, gb=2)])


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "properties", "reason"),
    [
        (GB, {}, "property 'gb' is missing"),
        (GB, {"gb": "lots"}, "must be a finite number"),
        (GB, {"gb": "NaN"}, "must be a finite number"),
        (GB, {"gb": float("inf")}, "must be a finite number"),
        (GB, {"gb": True}, "must be a finite number"),
        (GB, {"gb": None}, "must be a finite number"),
        (GB, {"gb": [1]}, "must be a finite number"),
        (GB, {"gb": -1}, "must not be negative"),
        (PEAK, {"seats": "-0.5"}, "must not be negative"),
        (USERS, {"user": 1.5}, "must be a string or an integer"),
        (USERS, {"user": ""}, "must not be empty"),
        (USERS, {}, "property 'user' is missing"),
    ],
)
def test_bad_properties_get_a_reason(
    metric: BillableMetric, properties: dict[str, object], reason: str
) -> None:
    message = validate_event(metric, properties)
    assert message is not None and reason in message


@pytest.mark.parametrize(
    ("metric", "properties"),
    [
        (CALLS, {}),
        (CALLS, {"anything": object()}),
        (GB, {"gb": "1.5"}),
        (GB, {"gb": " 2 "}),
        (GB, {"gb": 0}),
        (GB, {"gb": 1.25}),
        (USERS, {"user": 7}),
        (STORAGE, {"gb": Decimal("10.5"), "other": "x"}),
    ],
)
def test_good_properties_pass(metric: BillableMetric, properties: dict[str, object]) -> None:
    assert validate_event(metric, properties) is None


def test_aggregate_refuses_an_event_ingestion_should_have_rejected() -> None:
    with pytest.raises(ValueError, match="event 'bad': property 'gb' is missing"):
        aggregate(metric=GB, events=[event("ok", 1, gb=1), event("bad", 2)])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"code": "", "aggregation": "count"}, "non-empty code"),
        ({"code": "c", "aggregation": "count", "property": "x"}, "takes no property"),
        ({"code": "c", "aggregation": "sum"}, "needs the property"),
        ({"code": "c", "aggregation": "median", "property": "x"}, "median"),
    ],
)
def test_bad_metrics_are_refused(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BillableMetric(**arguments)  # type: ignore[arg-type]


def test_events_need_an_id_and_an_aware_timestamp() -> None:
    with pytest.raises(ValueError, match="event_id"):
        UsageEvent(event_id="", timestamp=START)
    with pytest.raises(ValueError, match="timezone-aware"):
        UsageEvent(event_id="e", timestamp=datetime(2027, 3, 1))  # noqa: DTZ001 -- on purpose


def test_event_properties_are_a_read_only_copy() -> None:
    properties: dict[str, object] = {"gb": 1}
    stored = UsageEvent(event_id="e", timestamp=START, properties=properties)
    properties["gb"] = 2
    assert stored.properties["gb"] == 1
    with pytest.raises(TypeError):
        stored.properties["gb"] = 3  # type: ignore[index]


# --- properties --------------------------------------------------------------------------------

values = st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False)


@st.composite
def event_lists(draw: st.DrawFn) -> list[UsageEvent]:
    count = draw(st.integers(min_value=0, max_value=30))
    ids = draw(st.lists(st.text("abcdef", min_size=1, max_size=4), min_size=count,
                        max_size=count, unique=True))  # fmt: skip
    return [
        UsageEvent(
            event_id=event_id,
            timestamp=START + timedelta(seconds=draw(st.integers(0, 50))),
            properties={
                "gb": draw(values),
                "seats": draw(values),
                "user": draw(st.sampled_from(["u1", "u2", "u3", 4, 5])),
            },
        )
        for event_id in ids
    ]


METRICS = (CALLS, GB, PEAK, USERS, STORAGE)


@given(event_lists(), st.randoms(use_true_random=False), st.data())
def test_aggregation_ignores_order_and_duplicates(
    events: list[UsageEvent], random: Random, data: st.DataObject
) -> None:
    shuffled = list(events)
    random.shuffle(shuffled)
    repeats = data.draw(st.lists(st.sampled_from(events), max_size=10)) if events else []
    for metric in METRICS:
        expected = aggregate(metric=metric, events=events)
        assert aggregate(metric=metric, events=shuffled + repeats) == expected
        assert expected.event_count == len(events)


@given(event_lists())
def test_aggregations_agree_with_their_definitions(events: list[UsageEvent]) -> None:
    gb = [Decimal(e.properties["gb"]) for e in events]  # type: ignore[arg-type]
    seats = [Decimal(e.properties["seats"]) for e in events]  # type: ignore[arg-type]
    assert aggregate(metric=CALLS, events=events).quantity == len(events)
    assert aggregate(metric=GB, events=events).quantity == sum(gb, Decimal(0))
    assert aggregate(metric=PEAK, events=events).quantity == max(seats, default=0)
    assert aggregate(metric=USERS, events=events).quantity == len(
        {str(e.properties["user"]) for e in events}
    )
    latest = max(events, key=lambda e: (e.timestamp, e.event_id), default=None)
    assert aggregate(metric=STORAGE, events=events).quantity == (
        latest.properties["gb"] if latest else 0
    )


# --- a month of usage, rated ------------------------------------------------------------------


def test_ten_thousand_events_are_billed_once_and_a_resend_changes_nothing() -> None:
    month = [
        UsageEvent(
            event_id=f"evt_{i:05d}",
            timestamp=START + timedelta(seconds=i * 267),  # spread over the month
            properties={"gb": f"{i % 10}.5", "seats": i % 37, "user": f"user_{i % 250}"},
        )
        for i in range(10_000)
    ]
    assert month[-1].timestamp < END
    tiers = (
        Tier(up_to=Decimal(1000), unit_amount=Decimal(2)),
        Tier(up_to=Decimal(10000), unit_amount=Decimal("1.5")),
        Tier(up_to=None, unit_amount=Decimal(1)),
    )
    expected = {
        # count, sum of gb (0.5 + 1.5 + ... + 9.5, 1,000 times), max seats, distinct
        # users, gb of the last event (evt_09999: 9.5)
        "api_calls": (Decimal(10000), 15500, 10000 * 3 // 2),
        "transfer_gb": (Decimal(50000), 2000 + 13500 + 40000, 50000),
        "peak_seats": (Decimal(36), 72, 72),
        "active_users": (Decimal(250), 500, 500),
        "storage_gb": (Decimal("9.5"), 19, 19),
    }
    for metric in METRICS:
        first = aggregate(metric=metric, events=month, start=START, end=END)
        again = aggregate(metric=metric, events=month + month, start=START, end=END)
        assert first == again
        quantity, graduated, volume = expected[metric.code]
        assert first.quantity == quantity, metric.code
        for price, amount in (
            (GraduatedPrice(tiers=tiers), graduated),
            (VolumePrice(tiers=tiers), volume),
        ):
            assert rate(price=price, quantity=first.quantity, currency="JPY").amount == amount
