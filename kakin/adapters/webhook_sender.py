"""Sending one signed webhook request (Standard Webhooks) and reading what came back.

- **Signature.** ``standardwebhooks.Webhook(secret).sign(id, timestamp, body)`` for
  each secret (two during a rotation), space-separated in ``webhook-signature``; the
  signed content is ``{webhook-id}.{webhook-timestamp}.{body}``.
- **Timestamp.** The wall clock when the request goes out (receivers compare it with
  theirs, 5 minutes either way), not the billing clock: a try on the time-skipping
  server or under a test clock is still sent now.
- **No redirects.** A 3xx is a failed try: following it could lead the request to an
  address the SSRF rule refused.
- **Only 1 KB of the answer is read** (kept as the try's excerpt); a receiver cannot
  make the worker download a large body.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
from standardwebhooks import Webhook

EXCERPT_BYTES = 1024
USER_AGENT = "kakin-webhooks/1"


@dataclass(frozen=True)
class SendResult:
    """``outcome``: delivered (2xx), gone (410), failed (another status), timeout,
    error (no answer: connection refused, DNS, TLS...)."""

    outcome: str
    attempted_at: datetime
    duration_ms: int
    status_code: int | None = None
    excerpt: str = ""
    error: str = ""
    retry_after_seconds: float | None = None


def sign(*, event_id: str, sent_at: datetime, body: str, secrets: list[str]) -> str:
    return " ".join(Webhook(s).sign(event_id, sent_at, body) for s in secrets)


def retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds from a ``Retry-After`` header (delay-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())


def send(url: str, *, event_id: str, body: str, secrets: list[str], timeout: float) -> SendResult:
    """POST ``body`` to ``url`` signed with ``secrets``; never raises for the receiver's sake."""
    sent_at = datetime.now(UTC).replace(microsecond=0)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": sign(event_id=event_id, sent_at=sent_at, body=body, secrets=secrets),
    }
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=False) as client,
            client.stream("POST", url, content=body.encode(), headers=headers) as response,
        ):
            excerpt = b""
            for chunk in response.iter_bytes():
                excerpt += chunk
                if len(excerpt) >= EXCERPT_BYTES:
                    break
            code = response.status_code
            wait = retry_after(response.headers.get("retry-after"), now=datetime.now(UTC))
    except httpx.TimeoutException as error:
        return SendResult("timeout", sent_at, took(), error=f"no answer within {timeout:g} s "
                          f"({type(error).__name__})")  # fmt: skip
    except httpx.HTTPError as error:
        return SendResult("error", sent_at, took(), error=f"{type(error).__name__}: {error}"[:500])
    text = excerpt[:EXCERPT_BYTES].decode("utf-8", errors="replace")
    outcome = "delivered" if 200 <= code < 300 else "gone" if code == 410 else "failed"
    return SendResult(outcome, sent_at, took(), code, text, retry_after_seconds=wait)
