"""A fault-injecting HTTP proxy that sits in front of the real Stripe emulator.

Tests need faults the emulator can't make: a charge Stripe *accepted* whose answer
never reached us, 500s, 429s. The proxy forwards every request to the real
emulator and, for requests matching a rule, answers with a fault instead (or drops
the connection after forwarding). Nothing is mocked behind it.

Besides one-off rules (``add``), ``chaos`` injects faults at random into a share of
the matching requests, for long fault-injection runs (tests/chaos); ``counts`` says
how many faults of each kind went out.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# The kinds of fault, besides an int (answer with that HTTP status without forwarding):
DROP_AFTER_FORWARD = "drop_after_forward"  # the emulator handles it, the client sees a drop
ERROR_AFTER_FORWARD = "500_after_forward"  # the emulator handles it, the client sees a 500
DROP = "drop"  # the connection is closed before anything reaches the emulator
STALL = "stall"  # nothing answers until the client times out (then the connection drops)


@dataclass
class Rule:
    method: str
    path: re.Pattern[str]
    times: int
    # "drop_after_forward": the emulator handles it, the client sees a dropped connection.
    # an int: answer with this HTTP status without forwarding.
    fault: str | int
    # Headers of an int fault's answer (e.g. a 429's Retry-After).
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Chaos:
    """Random faults: ``rate`` of the requests matching ``path`` (and ``methods``)."""

    rate: float
    path: re.Pattern[str]
    methods: frozenset[str]
    weights: dict[str | int, float]
    rng: random.Random
    # Caps per kind (stalls are slow: a run wants a few, not hundreds).
    limits: dict[str | int, int] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    # A stalled handler must not keep shutdown waiting for it.
    daemon_threads = True


class FaultProxy:
    def __init__(self, target: str, *, stall_seconds: float = 25.0) -> None:
        parts = urlsplit(target)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rules: list[Rule] = []
        self.faults_injected: list[str] = []
        self.counts: Counter[str] = Counter()  # fault kind -> how many were injected
        self.requests = 0
        self.stall_seconds = stall_seconds
        self._chaos: Chaos | None = None
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(
        self,
        method: str,
        path_regex: str,
        fault: str | int,
        times: int = 1,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        with self._lock:
            self.rules.append(
                Rule(method, re.compile(path_regex), times, fault, dict(headers or {}))
            )

    def chaos(
        self,
        rate: float,
        weights: Mapping[str | int, float],
        *,
        path_regex: str = r".",
        methods: tuple[str, ...] = ("GET", "POST", "DELETE"),
        seed: int | None = None,
        limits: Mapping[str | int, int] | None = None,
    ) -> None:
        """From now on, a ``rate`` share of matching requests gets a fault drawn by weight."""
        with self._lock:
            self._chaos = Chaos(
                rate=rate,
                path=re.compile(path_regex),
                methods=frozenset(methods),
                weights=dict(weights),
                rng=random.Random(seed),
                limits=dict(limits or {}),
            )

    def calm(self) -> None:
        """Stop the random faults (one-off rules still apply)."""
        with self._lock:
            self._chaos = None

    def _take(self, method: str, path: str) -> tuple[str | int | None, dict[str, str]]:
        with self._lock:
            self.requests += 1
            for rule in self.rules:
                if rule.times > 0 and rule.method == method and rule.path.search(path):
                    rule.times -= 1
                    return self._injected(method, path, rule.fault), rule.headers
            return self._chaos_fault(method, path), {}

    def _chaos_fault(self, method: str, path: str) -> str | int | None:
        """A random fault for this request, if chaos is on (the lock is held)."""
        chaos = self._chaos
        if chaos is None or method not in chaos.methods or not chaos.path.search(path):
            return None
        if chaos.rng.random() >= chaos.rate:
            return None
        kinds = [
            kind
            for kind in chaos.weights
            if kind not in chaos.limits or self.counts[str(kind)] < chaos.limits[kind]
        ]
        if not kinds:
            return None
        fault = chaos.rng.choices(kinds, weights=[chaos.weights[k] for k in kinds])[0]
        return self._injected(method, path, fault)

    def _injected(self, method: str, path: str, fault: str | int) -> str | int:
        self.faults_injected.append(f"{method} {path} -> {fault}")
        self.counts[str(fault)] += 1
        return fault

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _hang_up(self) -> None:
                self.close_connection = True
                with contextlib.suppress(OSError):  # the client hung up first
                    self.connection.shutdown(2)

            def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                fault, extra = proxy._take(self.command, self.path)
                if isinstance(fault, int):
                    payload = b'{"error": {"type": "api_error", "message": "injected fault"}}'
                    headers = [("Content-Type", "application/json"), *extra.items()]
                    self._answer(fault, headers, payload)
                    return
                if fault == DROP:
                    self._hang_up()
                    return
                if fault == STALL:
                    time.sleep(proxy.stall_seconds)
                    self._hang_up()
                    return
                upstream = http.client.HTTPConnection(*proxy._target, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                upstream.close()
                if fault == DROP_AFTER_FORWARD:
                    # The emulator did the work; the client never hears about it.
                    self._hang_up()
                    return
                if fault == ERROR_AFTER_FORWARD:
                    # The emulator did the work; the client hears it failed.
                    payload = b'{"error": {"type": "api_error", "message": "injected fault"}}'
                    self._answer(500, [("Content-Type", "application/json")], payload)
                    return
                self._answer(response.status, response.getheaders(), data)

            do_GET = do_POST = do_DELETE = _forward

        return Handler
