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
  ``max_tries``; every try is re-signed at send time, as Stripe signs each attempt;
- at most ``senders`` sends are in flight (plus their concurrent copies); the rest
  wait their turn in a queue ordered by when they fall due.

``deliveries`` records every try (event id, type, HTTP status); ``idle`` waits until
nothing is held back or in flight.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import hmac
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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
        senders: int = 32,
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
        self._due: list[tuple[float, int, bytes, int, int]] = []  # a heap, by due time
        self._sequence = 0
        self._pool = ThreadPoolExecutor(max_workers=senders, thread_name_prefix="relay-send")
        self._scheduler = threading.Thread(target=self._dispatch, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/stripe"

    def __enter__(self) -> WebhookRelay:
        self._thread.start()
        self._scheduler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)

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

    @property
    def waiting(self) -> int:
        """Sends queued or in flight (held deliveries do not count)."""
        with self._lock:
            return self._busy

    def of(self, event_id: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.event_id == event_id]

    def settle(self, quiet: float = 3.0, timeout: float = 180.0) -> bool:
        """Wait until no event has arrived for ``quiet`` seconds and none is queued or
        in flight (the emulator sends each event a second after it happened). Gives up
        after ``timeout`` seconds in which the queue did not shrink: a long backlog
        that is draining (kakin slower than the events came) is waited for."""
        best, moved = self.waiting, time.monotonic()
        while time.monotonic() - moved < timeout:
            seen = len(self.events)
            time.sleep(quiet)
            waiting = self.waiting
            if waiting == 0 and len(self.events) == seen:
                return True
            if waiting < best or waiting == 0:
                best, moved = waiting, time.monotonic()
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
        self._schedule(time.monotonic() + delay, payload, copies, 0)

    def _deliver(self, payload: bytes, copies: int | None = None) -> None:
        """Send ``copies`` tries at the same moment, now."""
        self._schedule(time.monotonic(), payload, self.copies if copies is None else copies, 0)

    def _schedule(self, due: float, payload: bytes, copies: int, tries: int) -> None:
        """Queue a send (``copies`` at once, ``tries`` made before) for ``due``; ties go
        in the order they were queued, so held events released in an order keep it."""
        with self._lock:
            self._busy += 1
            self._sequence += 1
            heapq.heappush(self._due, (due, self._sequence, payload, copies, tries))
            self._lock.notify_all()

    def _done(self) -> None:
        with self._lock:
            self._busy -= 1
            self._lock.notify_all()

    def _dispatch(self) -> None:
        """The one scheduler thread: hands each send to the pool when it falls due.

        A fixed pool, not a thread per send: when kakin answers slower than events
        arrive, the backlog waits here as data instead of as thousands of threads
        (a 10,000-renewal chaos run once ran out of threads that way)."""
        while True:
            with self._lock:
                while not self._closed and (not self._due or self._due[0][0] > time.monotonic()):
                    wait = self._due[0][0] - time.monotonic() if self._due else None
                    self._lock.wait(wait)
                if self._closed:
                    return
                _, _, payload, copies, tries = heapq.heappop(self._due)
            self._pool.submit(self._send_copies, payload, copies, tries)

    def _send_copies(self, payload: bytes, copies: int, tries: int) -> None:
        """One try of each copy, released together by a barrier (one extra thread per
        extra copy, so at most ``2 × senders`` are ever sending)."""
        try:
            if copies == 1:
                self._try(payload, tries, None)
                return
            gate = threading.Barrier(copies)
            others = [
                threading.Thread(target=self._try, args=(payload, tries, gate), daemon=True)
                for _ in range(copies - 1)
            ]
            for thread in others:
                thread.start()
            self._try(payload, tries, gate)
            for thread in others:
                thread.join()
        finally:
            self._done()

    def _try(self, payload: bytes, tries: int, gate: threading.Barrier | None) -> None:
        """Send once; not 2xx: the next try is queued ``retry_delay`` later, like
        Stripe, until ``max_tries``. Each try is signed as it is sent."""
        if gate is not None:
            with contextlib.suppress(threading.BrokenBarrierError):
                gate.wait(timeout=5)  # a copy late to the gate is still sent
        if self._closed:  # nobody is listening any more
            return
        event = json.loads(payload)
        headers = {
            "Content-Type": "application/json",
            "Stripe-Signature": sign(payload, self.secret),
        }
        try:
            # A connection per try, as Stripe makes: sending threads sharing one
            # client's pool saw reads fail ("Bad file descriptor").
            response = httpx.post(self.target, content=payload, headers=headers, timeout=60)
            status, body = response.status_code, response.text
        except httpx.HTTPError as error:
            status, body = 0, repr(error)
        with self._lock:
            self.deliveries.append(
                Delivery(event["id"], event.get("type", ""), status, body, time.monotonic())
            )
        if not 200 <= status < 300 and tries + 1 < self.max_tries:
            self._schedule(time.monotonic() + self.retry_delay, payload, 1, tries + 1)

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
