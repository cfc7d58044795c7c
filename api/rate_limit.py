"""Rate limiting per API key: a token bucket per key id, in this process's memory.

Each key's bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per
second; a request takes one token, and with none left it is a 429 whose
``Retry-After`` says when the next token comes. The buckets are per process: with N
API processes behind a load balancer a key gets up to N times the rate. Only
authenticated routes are limited (the check runs once the key is known, in
``api.deps``); the webhook and health endpoints take no key and are not limited.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable

_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
          "h": 3600.0, "hour": 3600.0}  # fmt: skip
_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*")
OFF = ("off",)


def parse_rate(text: str) -> float | None:
    """Requests per second from ``"100/s"``, ``"6000/min"`` or ``"1000/h"``; None for off."""
    if text.strip().lower() in OFF:
        return None
    match = _RATE.fullmatch(text.lower())
    if match is None or match.group(2) not in _UNITS:
        raise ValueError(f"{text!r} is not a rate such as 100/s, 6000/min or 1000/h (or off)")
    per_second = float(match.group(1)) / _UNITS[match.group(2)]
    if per_second <= 0:
        raise ValueError(f"{text!r} allows no requests at all; write off to disable limiting")
    return per_second


class TokenBuckets:
    """One bucket per key; ``take`` answers 0 (go) or the seconds until a token is free."""

    def __init__(
        self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (tokens, when they were counted). Bounded by the number of valid keys:
        # only authenticated keys get a bucket.
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


def retry_after(wait: float) -> str:
    """The ``Retry-After`` value: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait)))
