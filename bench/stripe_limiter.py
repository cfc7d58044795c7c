"""A rate-limiting HTTP proxy in front of localstripe: Stripe's rate limit, locally.

Every request is forwarded to the emulator unless more than ``--limit`` requests have
already been forwarded in the current wall-clock second; those get Stripe's answer to
a client over its limit, HTTP 429 with a ``rate_limit`` error (the stripe SDK raises
``RateLimitError``) and, with ``--retry-after S``, a ``Retry-After: S`` header.
``GET /__bench__/stats`` answers what it counted.

The rate-limit test (tests/payments/test_stripe_rate_limit.py) runs it too, as the
loopback Stripe double whose per-second counts it asserts on.

Run as its own process (``python -m bench.stripe_limiter --target URL --limit 25
--port P``) so its work does not share the worker's interpreter lock. Modelled on
tests/support/fault_proxy.py, which injects one-off faults instead of a rate.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

STATS_PATH = "/__bench__/stats"
RATE_LIMITED = json.dumps(
    {
        "error": {
            "type": "invalid_request_error",
            "code": "rate_limit",
            "message": "Too many requests hit the API too quickly (bench limiter).",
        }
    }
).encode()


class Limiter:
    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.lock = threading.Lock()
        self.forwarded: Counter[int] = Counter()  # wall-clock second -> requests
        self.rejected: Counter[int] = Counter()
        self.by_route: Counter[str] = Counter()

    def admit(self, route: str) -> bool:
        second = int(time.time())
        with self.lock:
            if self.forwarded[second] >= self.limit:
                self.rejected[second] += 1
                return False
            self.forwarded[second] += 1
            self.by_route[route] += 1
            return True

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "limit": self.limit,
                "forwarded": sum(self.forwarded.values()),
                "rejected_429": sum(self.rejected.values()),
                "forwarded_by_second": {str(k): v for k, v in sorted(self.forwarded.items())},
                "rejected_by_second": {str(k): v for k, v in sorted(self.rejected.items())},
                "by_route": dict(self.by_route),
            }


def _route(method: str, path: str) -> str:
    """``POST /v1/payment_intents/pi_123/confirm`` → ``POST payment_intents/{id}/confirm``."""
    parts = [p for p in urlsplit(path).path.split("/") if p][1:]  # drop "v1"
    shape = [p if i % 2 == 0 else "{id}" for i, p in enumerate(parts)]
    return f"{method} {'/'.join(shape)}"


def serve(target: str, limit: float, port: int, retry_after: float | None = None) -> None:
    parts = urlsplit(target)
    upstream_address = (parts.hostname or "127.0.0.1", parts.port or 80)
    limiter = Limiter(limit)
    local = threading.local()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
            self.send_response(status)
            for key, value in headers:
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if self.path == STATS_PATH:
                payload = json.dumps(limiter.stats()).encode()
                self._send(200, payload, [("Content-Type", "application/json")])
                return
            if not limiter.admit(_route(self.command, self.path)):
                refusal = [("Content-Type", "application/json")]
                if retry_after is not None:
                    refusal.append(("Retry-After", f"{retry_after:g}"))
                self._send(429, RATE_LIMITED, refusal)
                return
            connection = getattr(local, "connection", None)
            if connection is None:
                connection = local.connection = http.client.HTTPConnection(
                    *upstream_address, timeout=60
                )
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
            except (OSError, http.client.HTTPException):
                connection.close()  # one reconnect: the emulator closed an idle keep-alive
                connection = local.connection = http.client.HTTPConnection(
                    *upstream_address, timeout=60
                )
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
            data = response.read()
            self._send(response.status, data, response.getheaders())

        do_GET = do_POST = do_DELETE = _forward

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"limiter on 127.0.0.1:{port} → {target} at {limit:g} requests/s", flush=True)
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True)
    parser.add_argument("--limit", type=float, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--retry-after", type=float, help="seconds, sent with each 429")
    args = parser.parse_args()
    serve(args.target, args.limit, args.port, args.retry_after)


if __name__ == "__main__":
    main()
