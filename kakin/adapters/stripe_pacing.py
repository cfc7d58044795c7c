"""Stripe's rate limit, kept on our side: every request paced by one token bucket.

Stripe answers 429 to an account over its rate (25 requests/s in test mode, 100 live).
The charge task queue's server-side rate (``kakin.runtime.build_stripe_worker``) holds
the *mean* rate, but Temporal's task-queue limiter is itself a bucket that lets short
bursts through (the month-start spike saw 29 requests in one second at a limit of 25).
So every request the stripe SDK sends from a worker process also takes a token from
one :class:`TokenBucket` shared by all the process's activity threads, in the SDK's
HTTP client (:class:`PacedHttpClient`): charges, refunds, customer and card calls and
retries alike, whichever gateway method sent them.

A 429 that still comes back (another process on the same account, Stripe's own lock
timeouts) is retried here after the answer's ``Retry-After``, a few times within a
small budget; past that the SDK raises ``RateLimitError`` and Temporal retries the
activity with its backoff. Retrying a 429 never charges twice: Stripe refuses a
rate-limited request before acting on it, the retry is the same request with the
same idempotency key, and the charge activity's own resume-by-stored-id (see
stripe_gateway) does not depend on either.

Why a small class and not pyrate-limiter (4.5): its blocking acquire stamps a waiting
request with its *planned* wake-up time (``item.timestamp += sleep_ms``), so on a busy
machine a thread that oversleeps is counted earlier than it sent and a real second can
carry more than the rate; and its sliding-window log of N per second lets N go at once,
where Stripe wants them spread. The bucket below has one thread at a time wait for the
next token, under one lock, and counts from when it actually woke.

The two things operations count each happen in one place: :meth:`PacedHttpClient.waited`
(time a request waited on the bucket) and :meth:`PacedHttpClient.rate_limited` (a 429
answered by Stripe).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import stripe

from kakin.adapters.stripe_http import MeasuredRequestsClient
from kakin.platform import metrics

log = logging.getLogger("kakin.stripe")

# 429s retried in the client before the SDK raises RateLimitError (then Temporal retries).
RATE_LIMITED_RETRIES = 3
# The most one request spends waiting, on the bucket and on Retry-After together. A
# charge is two requests, each with the HTTP client's 20 s timeout: 2 × (5 + 20) s stays
# under the charge activity's 60 s, so a try ends before Temporal starts the next one.
MAX_WAIT_SECONDS = 5.0
# Without a Retry-After header (Stripe does not promise one): this, doubling per retry.
FALLBACK_RETRY_SECONDS = 0.5


class PacingTimeout(stripe.RateLimitError):
    """The bucket's next free slot is further away than a request may wait.

    A ``RateLimitError``, so every caller already handling Stripe's 429 handles it
    (an activity fails and Temporal retries it later); nothing was sent to Stripe.
    """


class TokenBucket:
    """A blocking token bucket shared by threads: ``rate`` tokens a second.

    ``capacity`` is how many tokens it saves while idle, i.e. how many requests may go
    at once after a pause. One by default: requests are spaced ``1 / rate`` apart, so
    any second carries at most ``rate + 1`` of them, and the gap between that and
    Stripe's limit absorbs the jitter between taking a token and the request reaching
    Stripe. A larger capacity buys nothing in throughput, only a burst.

    ``take`` waits for its token *holding the lock*, and counts the tokens again from
    the clock when it wakes. The other threads queue on the lock behind it. So the
    spacing is measured between the moments requests actually go, not planned ahead:
    when the whole process stalls (a garbage-collection pause, a busy machine), the
    requests queued behind the stall go one gap apart afterwards. A bucket that hands
    out future slots and lets each thread sleep to its own would send every slot that
    fell inside the stall at once. CI once saw 14 requests in one second that way,
    against a pace of 9.
    """

    def __init__(
        self,
        *,
        rate: float,
        capacity: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("a token bucket needs a positive rate")
        self.rate = rate
        self.capacity = max(1, capacity)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(self.capacity)
        self._counted_at = clock()

    def take(self, *, max_wait: float = math.inf) -> float:
        """Wait for a token and take it; returns the seconds waited (in the queue too).

        Raises :class:`PacingTimeout` (taking nothing) when the wait would exceed
        ``max_wait``.
        """
        started = self._clock()
        if not self._lock.acquire(timeout=-1 if math.isinf(max_wait) else max(0.0, max_wait)):
            raise self._timeout(max_wait)
        try:
            self._refill()
            wait = max(0.0, (1.0 - self._tokens) / self.rate)
            if self._clock() - started + wait > max_wait:
                raise self._timeout(max_wait)
            if wait > 0:
                self._sleep(wait)
                self._refill()  # a long sleep credits no more than the capacity
            self._tokens = max(0.0, self._tokens - 1.0)
        finally:
            self._lock.release()
        return self._clock() - started

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._counted_at)
        self._tokens = min(float(self.capacity), self._tokens + elapsed * self.rate)
        self._counted_at = now

    def _timeout(self, max_wait: float) -> PacingTimeout:
        return PacingTimeout(
            f"kakin's Stripe rate ({self.rate:g} requests/s) has no slot within {max_wait:g} s"
        )


def retry_after_seconds(headers: Mapping[str, str] | None, *, now: float | None = None) -> float:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date); -1 if none."""
    if not headers:
        return -1.0
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return -1.0
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return -1.0
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _should_retry_header(headers: Mapping[str, str] | None) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == "stripe-should-retry":
            return value.strip().lower()
    return None


class PacedHttpClient(MeasuredRequestsClient):
    """The stripe SDK's requests client, each request paced and its 429s retried (and,
    as ``MeasuredRequestsClient``, each one sent timed and its 429 counted).

    The SDK's own retries stay off (``max_network_retries=0`` in the gateway): they
    would re-send a confirm after a lost answer, and they do not retry a plain 429
    nor honour Retry-After. This client retries 429 only, which Stripe refuses
    before doing anything, so a retry can never do the work twice.
    """

    def __init__(
        self,
        *,
        bucket: TokenBucket | None,
        timeout: float,
        rate_limited_retries: int = RATE_LIMITED_RETRIES,
        max_wait: float = MAX_WAIT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(timeout=timeout)
        self._bucket = bucket
        self._retries = max(0, rate_limited_retries)
        self._max_wait = max_wait
        self._sleep = sleep

    def request(  # type: ignore[override]
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        budget = self._max_wait
        retries = 0
        while True:
            if self._bucket is not None:
                waited = self._bucket.take(max_wait=budget)
                budget -= waited
                self.waited(waited)
            content, status, answer_headers = super().request(method, url, headers, post_data)
            if status != 429:
                return content, status, answer_headers
            self.rate_limited(method, url)
            delay = retry_after_seconds(answer_headers)
            if delay < 0:
                delay = FALLBACK_RETRY_SECONDS * 2**retries
            if (
                retries >= self._retries
                or delay > budget
                or _should_retry_header(answer_headers) == "false"
            ):
                return content, status, answer_headers  # the SDK raises RateLimitError
            retries += 1
            log.info("Stripe answered 429 to %s; retry %d after %.1f s", method, retries, delay)
            self._sleep(delay)
            budget -= delay

    # -- the two things operations count (one place each) ----------------------------

    def waited(self, seconds: float) -> None:
        """A request waited ``seconds`` on the bucket (0 when a token was free)."""
        metrics.stripe_limiter_wait(seconds)

    def rate_limited(self, method: str, url: str) -> None:
        """Stripe answered 429 (counted whether or not it is retried)."""
        log.warning("Stripe answered 429 (rate limited) to %s %s", method, url.split("?")[0])
