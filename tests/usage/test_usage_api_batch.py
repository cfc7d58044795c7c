"""A full batch through ``POST /v1/usage``: per-event results in order, the receipt's
documented shape, replays by Idempotency-Key and by event id."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import api_keys
from kakin.services.usage import MAX_BATCH
from kakin.views.usage import UsageReceipt
from tests.api.test_api_limits import serve
from tests.usage.test_usage_ingestion import at, metered_subscription, total


@pytest.fixture(scope="module")
def base(pg_sessions: sessionmaker[Session], stripe_gateway: StripeGateway) -> Iterator[str]:
    yield from serve(pg_sessions, stripe_gateway)


def test_a_full_batch_is_judged_event_by_event_and_replays_safely(
    base: str, pg_sessions: sessionmaker[Session]
) -> None:
    customer_id, subscription_id, code = metered_subscription(pg_sessions)
    key = api_keys.create_key(pg_sessions, name="usage batch", role="service")
    tokyo = timezone(timedelta(hours=9))
    events: list[dict[str, Any]] = [
        {"event_id": f"e{n}", "metric": code, "timestamp": at(n / 50).isoformat(),
         "customer_id": customer_id, "properties": {"gb": "0.5"}}
        for n in range(MAX_BATCH - 4)
    ]  # fmt: skip
    events += [
        {"event_id": "e1", "metric": code, "timestamp": at(2).isoformat(),
         "customer_id": customer_id, "properties": {"gb": 9}},  # repeated in the batch
        {"event_id": "odd", "metric": "nope", "timestamp": at(2).isoformat(),
         "customer_id": customer_id},
        {"event_id": "late", "metric": code, "timestamp": at(-1).astimezone(tokyo).isoformat(),
         "customer_id": customer_id, "properties": {"gb": 1}},
        {"event_id": "by-sub", "metric": code, "timestamp": at(3).astimezone(tokyo).isoformat(),
         "subscription_id": subscription_id, "properties": {"gb": 2}},
    ]  # fmt: skip
    headers = {"Authorization": f"Bearer {key.secret}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        first = http.post("/v1/usage", json={"events": events}, headers={"Idempotency-Key": "b1"})
        assert first.status_code == 200, first.text
        receipt = UsageReceipt.model_validate(first.json())  # the documented shape
        replayed = http.post(
            "/v1/usage", json={"events": events}, headers={"Idempotency-Key": "b1"}
        )
        again = http.post("/v1/usage", json={"events": events})

    assert [r.event_id for r in receipt.results] == [e["event_id"] for e in events]
    assert (receipt.accepted, receipt.duplicates, receipt.rejected) == (MAX_BATCH - 3, 1, 2)
    by_id = {r.event_id: r for r in receipt.results[-4:]}
    assert by_id["e1"].reason == "repeated in this batch"
    assert by_id["odd"].reason == "unknown metric 'nope'"
    assert "+09:00 is outside the open period" in by_id["late"].reason
    assert (by_id["by-sub"].status, by_id["by-sub"].subscription_id) == (
        "accepted",
        subscription_id,
    )
    assert receipt.results[0].subscription_id == subscription_id

    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == first.json()
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, MAX_BATCH - 2)
    assert total(pg_sessions, subscription_id, code) == Decimal(MAX_BATCH - 4) / 2 + 2


def test_nan_or_infinity_in_properties_refuses_that_event_not_the_batch(
    base: str, pg_sessions: sessionmaker[Session]
) -> None:
    customer_id, subscription_id, code = metered_subscription(pg_sessions)
    key = api_keys.create_key(pg_sessions, name="usage nan", role="service")

    def event(event_id: str, properties: str) -> str:
        return (
            f'{{"event_id": "{event_id}", "metric": "{code}", "customer_id": "{customer_id}", '
            f'"timestamp": "{at(1).isoformat()}", "properties": {properties}}}'
        )

    # Python's JSON reader (and so the API's) accepts these tokens; jsonb does not.
    events = [
        event("fine", '{"gb": 1}'),
        event("nan", '{"gb": 1, "note": NaN}'),
        event("deep", '{"gb": 1, "tags": [{"x": -Infinity}]}'),
    ]
    body = '{"events": [' + ", ".join(events) + "]}"
    headers = {"Authorization": f"Bearer {key.secret}", "Content-Type": "application/json"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        answer = http.post("/v1/usage", content=body)
    assert answer.status_code == 200, answer.text
    results = {r["event_id"]: r for r in answer.json()["results"]}
    assert results["fine"]["status"] == "accepted"
    for refused in ("nan", "deep"):
        assert results[refused]["status"] == "rejected"
        assert results[refused]["reason"] == "properties must not hold NaN or Infinity"
    assert total(pg_sessions, subscription_id, code) == 1
