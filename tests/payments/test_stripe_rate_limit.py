"""Stripe's rate limit is never tripped by a burst of charges, and a 429 is retried.

The burst: 50 charge activities at once (the real ``charge_invoice`` on a worker's 16
activity threads, the real stripe SDK, the gateway kakin.runtime builds from the
settings) against a loopback
Stripe double in front of localstripe: ``bench.stripe_limiter`` in its own process,
which counts the requests of every wall-clock second and answers 429 above 10. No
second may see more than 10 and no 429 may be answered, and every invoice is charged
exactly once.

The retry: the fault proxy answers one 429 with ``Retry-After: 1``; the gateway waits
that long and sends the request again, so the charge succeeds once, without Temporal
having to retry the activity.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import stripe
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.bundle import Activities
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.adapters.stripe_pacing import (
    RATE_LIMITED_RETRIES,
    PacingTimeout,
    TokenBucket,
    retry_after_seconds,
)
from kakin.dev.embedded import ManagedProcess, wait_for_port
from kakin.platform.settings import Settings
from kakin.runtime import stripe_gateway as gateway_from_settings
from models.payloads import (
    ChargeOutcome,
    ChargeRequest,
    CreateInvoiceRequest,
    FinalizeInvoiceRequest,
    SubscriptionStatus,
)
from models.repositories.common import new_id
from models.tables import PaymentAttempt, Subscription
from tests.conftest import make_activities
from tests.helpers import customer_and_price, free_ports
from tests.support.fault_proxy import FaultProxy

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2027, 3, 1, tzinfo=UTC)
LIMIT = 10  # the double's requests per wall-clock second
CHARGES = 50
ACTIVITY_THREADS = 16  # kakin.runtime.run_worker's activity pool
STATS_PATH = "/__bench__/stats"  # bench.stripe_limiter's counts


@pytest.fixture
async def rate_limited_stripe(localstripe_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """bench.stripe_limiter at LIMIT requests/s in front of localstripe, in its own process
    (its counting does not share the test's interpreter lock)."""
    port = free_ports(1)[0]
    process = ManagedProcess(
        "stripe-limiter",
        [sys.executable, "-m", "bench.stripe_limiter", "--target", localstripe_url,
         "--limit", str(LIMIT), "--port", str(port), "--retry-after", "1"],
        log_dir=tmp_path / "logs",
        env={"PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        await wait_for_port("127.0.0.1", port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


@pytest.fixture
def proxy(localstripe_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(localstripe_url) as running:
        yield running


def stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + STATS_PATH, timeout=10) as response:
        return dict(json.load(response))


def open_invoices(
    sessions: sessionmaker[Session], stripe: StripeGateway, billing: Activities, count: int
) -> list[str]:
    """``count`` open (finalized, unpaid) invoices, over a few customers with a good card."""
    env = ActivityEnvironment()
    customers = [customer_and_price(sessions, stripe) for _ in range(min(count, 5))]
    invoice_ids = []
    for number in range(count):
        customer_id, price_id = customers[number % len(customers)]
        subscription_id = new_id("sub")
        with sessions() as session:
            session.add(
                Subscription(
                    id=subscription_id, customer_id=customer_id, price_id=price_id,
                    status=SubscriptionStatus.ACTIVE, workflow_id=f"subscription-{subscription_id}",
                )
            )  # fmt: skip
            session.commit()
        draft = env.run(
            billing.invoicing.create_invoice,
            CreateInvoiceRequest(
                subscription_id=subscription_id, period_index=0, period_start=START,
                period_end=START + timedelta(days=31), issued_at=START,
            ),
        )  # fmt: skip
        env.run(billing.invoicing.finalize_invoice, FinalizeInvoiceRequest(draft.invoice_id, START))
        invoice_ids.append(draft.invoice_id)
    return invoice_ids


def succeeded_intents(localstripe_url: str, invoice_ids: list[str]) -> dict[str, int]:
    """How many succeeded PaymentIntents localstripe holds for each of the invoices."""
    client = stripe.StripeClient("sk_test_kakin", base_addresses={"api": localstripe_url})
    counts = dict.fromkeys(invoice_ids, 0)
    for intent in client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter():
        invoice_id = (intent.to_dict().get("metadata") or {}).get("kakin_invoice_id")
        if invoice_id in counts and intent.status == "succeeded":
            counts[invoice_id] += 1
    return counts


def attempts(sessions: sessionmaker[Session], invoice_ids: list[str]) -> list[str]:
    with sessions() as session:
        return [
            attempt.status
            for attempt in session.query(PaymentAttempt).filter(
                PaymentAttempt.invoice_id.in_(invoice_ids)
            )
        ]


def test_a_burst_of_charges_stays_under_stripes_limit_with_no_429(
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    localstripe_url: str,
    rate_limited_stripe: str,
    tmp_path: Path,
) -> None:
    setup = make_activities(pg_sessions, stripe_gateway, tmp_path / "outbox")
    invoice_ids = open_invoices(pg_sessions, stripe_gateway, setup, CHARGES)
    assert stats(rate_limited_stripe)["forwarded"] == 0  # the set-up went around the double

    # The worker's gateway, as kakin.runtime builds it for a worker process.
    settings = Settings(
        stripe_api_key="sk_test_kakin",
        stripe_api_base=rate_limited_stripe,
        stripe_confirm_off_session=False,
        stripe_rate_limit=LIMIT,
    )
    billing = make_activities(pg_sessions, gateway_from_settings(settings), tmp_path / "outbox")

    def charge(invoice_id: str) -> ChargeOutcome:
        request = ChargeRequest(invoice_id=invoice_id, attempt=1, attempted_at=START)
        return ActivityEnvironment().run(billing.payments.charge_invoice, request).outcome

    # All 50 handed at once to a pool of the production worker's size, as Temporal
    # hands a spike's charges to a worker's free slots.
    with ThreadPoolExecutor(ACTIVITY_THREADS) as worker_pool:
        outcomes = list(worker_pool.map(charge, invoice_ids))

    seen = stats(rate_limited_stripe)
    assert outcomes == [ChargeOutcome.SUCCEEDED] * CHARGES
    assert seen["rejected_429"] == 0, f"429s by second: {seen['rejected_by_second']}"
    busiest = max(seen["forwarded_by_second"].values())
    assert busiest <= LIMIT, f"requests by second: {seen['forwarded_by_second']}"
    assert seen["forwarded"] == 2 * CHARGES  # create and confirm, nothing retried
    assert attempts(pg_sessions, invoice_ids) == ["succeeded"] * CHARGES
    assert succeeded_intents(localstripe_url, invoice_ids) == dict.fromkeys(invoice_ids, 1)

    # The double does refuse a burst that is not paced (so the figures above mean something).
    unpaced = StripeGateway(
        api_key="sk_test_kakin", api_base=rate_limited_stripe, rate_limited_retries=0
    )
    with ThreadPoolExecutor(3 * LIMIT) as flood:
        answers = list(flood.map(lambda _: _status(unpaced), range(3 * LIMIT)))
    assert "429" in answers
    assert stats(rate_limited_stripe)["rejected_429"] > 0


def _status(gateway: StripeGateway) -> str:
    try:
        gateway.default_payment_method("cus_none")
    except stripe.RateLimitError:
        return "429"
    except stripe.StripeError:
        return "other"
    return "ok"


def test_a_429_is_sent_again_after_its_retry_after_and_charges_once(
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    localstripe_url: str,
    proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    setup = make_activities(pg_sessions, stripe_gateway, tmp_path / "outbox")
    [invoice_id] = open_invoices(pg_sessions, stripe_gateway, setup, 1)
    via_proxy = StripeGateway(
        api_key="sk_test_kakin", api_base=proxy.url, confirm_off_session=False
    )
    billing = make_activities(pg_sessions, via_proxy, tmp_path / "outbox")
    for path in (r"/v1/payment_intents$", r"/v1/payment_intents/pi_\w+/confirm"):
        proxy.add("POST", path, 429, times=1, headers={"Retry-After": "1"})

    began = time.monotonic()
    result = ActivityEnvironment().run(
        billing.payments.charge_invoice, ChargeRequest(invoice_id, 1, START)
    )
    took = time.monotonic() - began

    assert result.outcome == ChargeOutcome.SUCCEEDED  # within the one activity try
    assert proxy.counts["429"] == 2 and proxy.requests == 4  # create and confirm, each twice
    assert took >= 2.0, "the retries did not wait for Retry-After"
    assert attempts(pg_sessions, [invoice_id]) == ["succeeded"]
    assert succeeded_intents(localstripe_url, [invoice_id]) == {invoice_id: 1}


def test_429s_past_the_bound_or_refused_a_retry_reach_the_caller(proxy: FaultProxy) -> None:
    gateway = StripeGateway(api_key="sk_test_kakin", api_base=proxy.url)
    retrieve = r"/v1/payment_intents/pi_\w+$"
    proxy.add("GET", retrieve, 429, times=RATE_LIMITED_RETRIES + 1, headers={"Retry-After": "0"})
    with pytest.raises(stripe.RateLimitError):
        gateway.retrieve_intent("pi_missing")
    assert proxy.requests == RATE_LIMITED_RETRIES + 1  # bounded: then Temporal's backoff

    # Stripe says a retry would not help: no retry, whatever Retry-After says.
    refused = {"Retry-After": "0", "Stripe-Should-Retry": "false"}
    proxy.add("GET", retrieve, 429, times=1, headers=refused)
    with pytest.raises(stripe.RateLimitError):
        gateway.retrieve_intent("pi_missing")
    assert proxy.requests == RATE_LIMITED_RETRIES + 2


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    now = datetime(2027, 3, 1, 9, 0, 0, tzinfo=UTC).timestamp()
    assert retry_after_seconds({"Retry-After": "2"}, now=now) == 2.0
    assert retry_after_seconds({"retry-after": "0.5"}, now=now) == 0.5
    assert retry_after_seconds({"Retry-After": "Mon, 01 Mar 2027 09:00:03 GMT"}, now=now) == 3.0
    assert retry_after_seconds({"Retry-After": "soon"}, now=now) == -1.0  # unreadable: backoff
    assert retry_after_seconds({}, now=now) == -1.0


def test_requests_queued_behind_a_stall_still_go_one_gap_apart() -> None:
    """A stall (a garbage-collection pause, a busy machine) holds every waiting thread
    past its turn; when it ends they must not all go at once, or one second carries
    several seconds' worth of requests and Stripe answers 429."""
    rate, threads = 10.0, 6
    gap = 1 / rate
    stall_ends = time.monotonic() + 0.4

    def stalled_sleep(seconds: float) -> None:  # no thread wakes before the stall ends
        time.sleep(max(seconds, stall_ends - time.monotonic()))

    bucket = TokenBucket(rate=rate, sleep=stalled_sleep)
    bucket.take()  # the token saved while idle: from now on each take waits
    went: list[float] = []

    def send(_: int) -> None:
        bucket.take()
        went.append(time.monotonic())

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, range(threads)))

    went.sort()
    assert went[0] >= stall_ends
    gaps = [later - earlier for earlier, later in pairwise(went)]
    # Half a gap of tolerance for a thread that is slow to note the time it went.
    assert min(gaps) >= gap / 2, f"gaps after the stall: {[round(g, 3) for g in gaps]}"


def test_a_request_that_would_wait_past_its_budget_is_refused_without_waiting_it() -> None:
    bucket = TokenBucket(rate=2.0)  # one token every 0.5 s
    bucket.take()
    with pytest.raises(PacingTimeout):
        bucket.take(max_wait=0.1)  # the next token is 0.5 s away

    # Queued behind a thread that holds the bucket for its own 0.5 s wait.
    with ThreadPoolExecutor(1) as other:
        holder = other.submit(bucket.take)
        time.sleep(0.05)
        began = time.monotonic()
        with pytest.raises(PacingTimeout):
            bucket.take(max_wait=0.2)
        assert time.monotonic() - began < 0.45  # gave up at its budget, not after the holder
        assert holder.result() > 0
