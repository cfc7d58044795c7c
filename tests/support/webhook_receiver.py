"""A loopback receiver of kakin's outgoing webhooks, for tests and the chaos run: a small
HTTP server in a thread that answers a scripted sequence (or what ``choose`` says) and
keeps every request it got, with ``time.monotonic()`` when it arrived."""

from __future__ import annotations

import contextlib
import hmac
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook

# Standard Webhooks' receivers refuse a timestamp further than this from their clock.
SIGNATURE_TOLERANCE_SECONDS = 5 * 60


@dataclass(frozen=True)
class Answer:
    """What the receiver answers one request with; ``sleep`` first (a timeout)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = "ok"
    sleep: float = 0.0


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: str
    answered: int
    at: float
    late: bool = False  # answered after sleeping: the sender had given up
    wall: float = field(default_factory=time.time)  # when it arrived, by the wall clock

    def signature_problem(self, secret: str) -> str | None:
        """Why this request's signature would have been refused when it arrived (None:
        valid), as ``standardwebhooks.Webhook.verify`` checks it then: a run's checks
        come minutes later, past the five minutes the timestamp is good for."""
        headers = {key.lower(): value for key, value in self.headers.items()}
        stamp = headers.get("webhook-timestamp", "")
        if not stamp.isdigit():
            return f"no usable webhook-timestamp ({stamp!r})"
        if abs(self.wall - int(stamp)) > SIGNATURE_TOLERANCE_SECONDS:
            return f"timestamp {int(self.wall) - int(stamp)} s off when it arrived"
        signed = Webhook(secret).sign(
            headers.get("webhook-id", ""), datetime.fromtimestamp(int(stamp), UTC), self.body
        )
        expected = signed.partition(",")[2]
        given = [
            part.partition(",")[2]
            for part in headers.get("webhook-signature", "").split()
            if part.startswith("v1,")
        ]
        if not any(hmac.compare_digest(expected, one) for one in given):
            return "no signature matches the secret"
        return None


class Receiver:
    """Answers ``script`` in order, then what ``choose()`` says (200 without it)."""

    def __init__(self, script: list[Answer], choose: Callable[[], Answer] | None = None) -> None:
        self.script = list(script)
        self.choose = choose or Answer
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.url = ""

    def next_answer(self) -> Answer:
        with self.lock:
            return self.script.pop(0) if self.script else self.choose()

    @property
    def accepted(self) -> list[Received]:
        """The requests answered 2xx (and not left to time out)."""
        return [r for r in self.received if 200 <= r.answered < 300 and not r.late]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A sender killed mid-request (the chaos run's SIGKILL) resets its connection:
        # what a real receiver sees, not an error of the test's.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@contextlib.contextmanager
def receiving(receiver: Receiver, path: str = "/hooks/kakin") -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length).decode()
            answer = receiver.next_answer()
            with receiver.lock:  # kept as it arrives (a late answer comes after the next try)
                receiver.received.append(
                    Received(
                        dict(self.headers.items()),
                        body,
                        answer.status,
                        time.monotonic(),
                        late=answer.sleep > 0,
                    )
                )
            if answer.sleep:
                time.sleep(answer.sleep)
            try:
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                data = answer.body.encode()
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sender gave up waiting (a timeout): as a real receiver sees it

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = _QuietServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
