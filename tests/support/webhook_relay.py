"""A webhook relay between the Stripe emulator's own sender and kakin's endpoint.

localstripe sends each event once, in order, a second after it happened. Real Stripe
delivers late (it retries non-2xx answers for days), more than once (sometimes two
copies at the same moment) and in no guaranteed order. The relay receives
localstripe's signed deliveries (register its ``url`` with localstripe's
``/_config/webhooks/<name>``), answers them 200, and forwards each event to kakin the
way Stripe might:

- ``copies``: each delivery is sent this many times at once (concurrent duplicates);
- ``hold(types)``: deliveries of these types wait until ``release`` (which may send
  them in reverse or shuffled order: late and out of order);
- ``chaos``: a random delay per event (reordering), random concurrent or later
  duplicates;
- like Stripe, an answer that is not 2xx is retried (after ``retry_delay``), up to
  ``max_tries``; every try is re-signed at send time, as Stripe signs each attempt.

``deliveries`` records every try (event id, type, HTTP status); ``idle`` waits until
nothing is held back or in flight.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


@dataclass(frozen=True)
class Delivery:
    event_id: str
    type: str
    status: int  # kakin's HTTP status; 0 when the connection failed
    body: str
    at: float  # time.monotonic()


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def sign(payload: bytes, secret: str, at: int | None = None) -> str:
    """A ``Stripe-Signature`` header, as Stripe (and localstripe) make it."""
    timestamp = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


class WebhookRelay:
    def __init__(
        self,
        target: str,
        *,
        secret: str,
        copies: int = 1,
        retry_delay: float = 0.5,
        max_tries: int = 60,
    ) -> None:
        self.target = target  # kakin's full webhook URL
        self.secret = secret
        self.copies = copies
        self.retry_delay = retry_delay
        self.max_tries = max_tries
        self.events: list[dict[str, Any]] = []  # as received from the emulator, in order
        self.deliveries: list[Delivery] = []
        self._held: list[bytes] = []
        self._hold_types: set[str] = set()
        self._chaos: tuple[random.Random, float, float, float] | None = None
        self._busy = 0
        self._lock = threading.Condition()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._closed = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/stripe"

    def __enter__(self) -> WebhookRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        self._server.shutdown()
        self._server.server_close()

    # -- what the relay does to the traffic ----------------------------------------------

    def hold(self, *types: str) -> None:
        """From now on, deliveries of these event types wait for ``release``."""
        with self._lock:
            self._hold_types = set(types)

    def release(self, *, order: str = "reverse", seed: int = 0) -> int:
        """Stop holding; send what was held (``reverse``, ``shuffle`` or ``fifo``)."""
        with self._lock:
            held, self._held, self._hold_types = self._held, [], set()
        if order == "reverse":
            held.reverse()
        elif order == "shuffle":
            random.Random(seed).shuffle(held)
        for payload in held:
            self._deliver(payload)  # one after the other, as arrivals: order is kept
        return len(held)

    def chaos(
        self, rng: random.Random, *, max_delay: float, duplicate: float, concurrent: float
    ) -> None:
        """Every event: a random delay up to ``max_delay`` s (so events overtake each
        other); with probability ``duplicate`` a second copy later, ``concurrent`` a
        second copy at the same moment."""
        with self._lock:
            self._chaos = (rng, max_delay, duplicate, concurrent)

    def calm(self) -> None:
        with self._lock:
            self._chaos = None

    def idle(self, timeout: float = 60.0) -> bool:
        """Wait until nothing is in flight (held deliveries do not count)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def of(self, event_id: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.event_id == event_id]

    def settle(self, quiet: float = 3.0, timeout: float = 180.0) -> bool:
        """Wait until no event has arrived for ``quiet`` seconds and none is in flight
        (the emulator sends each event a second after it happened)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = len(self.events)
            time.sleep(quiet)
            if not self.idle(max(deadline - time.monotonic(), 0.1)):
                return False
            if len(self.events) == seen:
                return True
        return False

    def unanswered(self) -> list[str]:
        """Event ids that never got a 2xx."""
        with self._lock:
            ok = {d.event_id for d in self.deliveries if 200 <= d.status < 300}
            return sorted({e["id"] for e in self.events} - ok)

    # -- sending -----------------------------------------------------------------------------

    def _arrived(self, payload: bytes) -> None:
        event = json.loads(payload)
        with self._lock:
            self.events.append(event)
            if event.get("type") in self._hold_types:
                self._held.append(payload)
                return
            chaos = self._chaos
        if chaos is None:
            self._deliver(payload)
            return
        rng, max_delay, duplicate, concurrent = chaos
        with self._lock:
            delay = rng.uniform(0, max_delay)
            extra = rng.random()
        copies = 2 if extra < concurrent else 1
        self._later(delay, payload, copies)
        if concurrent <= extra < concurrent + duplicate:
            self._later(delay + rng.uniform(0.5, 2 * max_delay + 0.5), payload, 1)

    def _later(self, delay: float, payload: bytes, copies: int) -> None:
        with self._lock:
            self._busy += 1

        def run() -> None:
            try:
                time.sleep(delay)
                self._deliver(payload, copies)
            finally:
                self._done()

        threading.Thread(target=run, daemon=True).start()

    def _deliver(self, payload: bytes, copies: int | None = None) -> None:
        """Send ``copies`` tries at the same moment (threads started together)."""
        n = self.copies if copies is None else copies
        gate = threading.Barrier(n)
        with self._lock:
            self._busy += n
        for _ in range(n):
            threading.Thread(target=self._send, args=(payload, gate), daemon=True).start()

    def _done(self) -> None:
        with self._lock:
            self._busy -= 1
            self._lock.notify_all()

    def _send(self, payload: bytes, gate: threading.Barrier) -> None:
        event = json.loads(payload)
        try:
            gate.wait(timeout=5)
            for _ in range(self.max_tries):
                headers = {
                    "Content-Type": "application/json",
                    "Stripe-Signature": sign(payload, self.secret),
                }
                if self._closed:  # nobody is listening any more
                    return
                try:
                    # A connection per try, as Stripe makes: hundreds of sending threads
                    # sharing one client's pool saw reads fail ("Bad file descriptor")
                    # and tries wait past every deadline.
                    response = httpx.post(self.target, content=payload, headers=headers, timeout=60)
                    status, body = response.status_code, response.text
                except httpx.HTTPError as error:
                    status, body = 0, repr(error)
                with self._lock:
                    self.deliveries.append(
                        Delivery(event["id"], event.get("type", ""), status, body, time.monotonic())
                    )
                if 200 <= status < 300:
                    return
                time.sleep(self.retry_delay)
        finally:
            self._done()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = self.rfile.read(length)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                relay._arrived(payload)

        return Handler


def register(localstripe_url: str, relay: WebhookRelay, *, name: str = "kakin") -> None:
    """Point the emulator's webhook sender at the relay (signed with the relay's secret)."""
    response = httpx.post(
        f"{localstripe_url}/_config/webhooks/{name}",
        json={"url": relay.url, "secret": relay.secret},
        timeout=10,
    )
    response.raise_for_status()


def unregister(localstripe_url: str, *, name: str = "kakin") -> None:
    """localstripe cannot delete a webhook: keep the name, let it match no event type."""
    httpx.post(
        f"{localstripe_url}/_config/webhooks/{name}",
        json={"url": "http://127.0.0.1:9/", "secret": "whsec_off", "events": ["kakin.none"]},
        timeout=10,
    )
