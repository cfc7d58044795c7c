"""The stripe SDK's HTTP client, measured: every request to Stripe timed and its 429s
counted (``kakin_stripe_request_seconds``, ``kakin_stripe_rate_limited_total``).

Measured at the HTTP layer rather than around each gateway method: a gateway call may
make several requests (a retry after Retry-After, a lookup after a lost answer) and
each one is what Stripe's rate limit and latency are about. The operation label comes
from the path's resource (``/v1/payment_intents/...`` is ``charge``), never its ids.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import stripe

from kakin.platform import metrics


class MeasuredRequestsClient(stripe.RequestsClient):
    """``stripe.RequestsClient`` whose every request is recorded in kakin's metrics."""

    # RequestsClient.request's own signature (it narrows HTTPClient's, as stripe does).
    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
    ) -> tuple[bytes, int, Mapping[str, str]]:
        operation = metrics.stripe_operation(urlsplit(url).path)
        started = time.perf_counter()
        status: int | None = None
        try:
            answer = super().request(method, url, headers, post_data)
            status = answer[1]
            return answer
        finally:
            metrics.stripe_request(operation, time.perf_counter() - started, status)
