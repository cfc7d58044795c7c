"""A loopback stand-in for the SendGrid v3 API, hit by the real ``sendgrid`` client.

Point ``SendGridAPIClient(host=server.url)`` (or ``SendGridMailer(host=server.url)``)
at it: ``POST /v3/mail/send`` answers 202 with an ``X-Message-Id`` header, as
SendGrid does, and every request is recorded for assertions. It checks what SendGrid
itself rejects (no Bearer key: 401; no recipient, sender, subject or content: 400),
so a test cannot pass with a request the real API would refuse.

    with SendGridLoopback() as server:
        server.fail_next(1, 500)
        ...
        assert server.requests[0].body["subject"] == "..."
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_REASONS = {
    400: "Bad Request",
    401: "authorization required",
    413: "Payload Too Large",
    429: "too many requests",
    500: "internal server error",
    503: "service unavailable",
}


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it, and the status it answered."""

    method: str
    path: str
    authorization: str | None
    body: Any  # the parsed JSON body, or None when it was not JSON
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    at: float = 0.0  # time.monotonic() when it was answered


class SendGridLoopback:
    """``ThreadingHTTPServer`` on 127.0.0.1 (a free port) in a background thread."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._failures: list[int] = []
        self._stalls: list[float] = []
        self._outage_until = 0.0
        self._outage_status = 503
        self._sent = 0
        self._message_ids: dict[str, str] = {}  # kakin_key -> X-Message-Id of its send
        self._server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail_next(self, n: int, status: int) -> None:
        """Answer the next ``n`` requests with ``status`` and a SendGrid error body."""
        with self._lock:
            self._failures.extend([status] * n)

    def fail_for(self, seconds: float, status: int = 503) -> None:
        """Answer every request with ``status`` for the next ``seconds`` (an outage)."""
        with self._lock:
            self._outage_until = time.monotonic() + seconds
            self._outage_status = status

    def accepted_keys(self) -> list[str]:
        """The ``kakin_key`` custom arg of every accepted (202) send, one per send."""
        return [key for key, _ in self.accepted()]

    def accepted(self) -> list[tuple[str, float]]:
        """(``kakin_key``, when) of every accepted (202) send, in the order received."""
        with self._lock:
            sent = [r for r in self.requests if r.status == 202]
        found = []
        for request in sent:
            custom = (request.body or {}).get("custom_args") or {}
            found.append((str(custom.get("kakin_key", "")), request.at))
        return found

    def stall_next(self, n: int, seconds: float) -> None:
        """Wait ``seconds`` before answering the next ``n`` requests (client timeouts)."""
        with self._lock:
            self._stalls.extend([seconds] * n)

    def start(self) -> SendGridLoopback:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sendgrid-loopback",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> SendGridLoopback:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- called from the handler threads -----------------------------------------------

    def _answer(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple:
        """Decide the answer to one request: (status, extra headers, JSON body or None)."""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            stall = self._stalls.pop(0) if self._stalls else 0.0
            forced = self._failures.pop(0) if self._failures else None
            if forced is None and time.monotonic() < self._outage_until:
                forced = self._outage_status
        if stall:
            time.sleep(stall)

        extra: dict[str, str] = {}
        payload: Any = None
        auth = headers.get("authorization")
        if method == "GET" and path.startswith("/v3/messages") and forced is None:
            # The Email Activity API: messages found by a custom arg (kakin_key).
            query = parse_qs(urlsplit(path).query).get("query", [""])[0]
            match = re.fullmatch(r"unique_args\['kakin_key'\]=\"(.*)\"", query)
            with self._lock:
                found = self._message_ids.get(match.group(1)) if match else None
            status = 200 if match else 400
            payload = (
                {"messages": [{"msg_id": found, "status": "delivered"}] if found else []}
                if match
                else _errors("query must be unique_args['kakin_key']=\"...\"")
            )
        elif method != "POST" or path != "/v3/mail/send":
            status, payload = 404, _errors("not found")
        elif forced is not None:
            status, payload = forced, _errors(_REASONS.get(forced, "failure"))
            if forced == 429:
                extra = {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0"}
        elif not auth or not auth.startswith("Bearer ") or auth == "Bearer ":
            status, payload = 401, _errors("The provided authorization grant is invalid")
        elif problems := _validate(body):
            status, payload = 400, {"errors": problems}
        else:
            with self._lock:
                self._sent += 1
                message_id = f"loopback{self._sent:06d}.filter0001.0.0"
                key = ((body or {}).get("custom_args") or {}).get("kakin_key")
                if key:
                    self._message_ids.setdefault(str(key), message_id)
            status, extra = 202, {"X-Message-Id": message_id}

        with self._lock:
            self.requests.append(
                RecordedRequest(method, path, auth, body, status, headers, time.monotonic())
            )
        return status, extra, payload


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out hangs up before a stalled answer: expected, not news.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _errors(message: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "field": None, "help": None}]}


def _validate(body: Any) -> list[dict[str, Any]]:
    """The checks SendGrid makes that a careless client would fail."""
    if not isinstance(body, dict):
        return [{"message": "Bad Request", "field": None, "help": None}]
    problems = []
    people = body.get("personalizations") or []
    if not people or not all(p.get("to") for p in people):
        problems.append({"message": "The to array is required.", "field": "personalizations"})
    if not (body.get("from") or {}).get("email"):
        problems.append({"message": "The from email is required.", "field": "from.email"})
    if not body.get("subject") and not all(p.get("subject") for p in people):
        problems.append({"message": "The subject is required.", "field": "subject"})
    if not body.get("content") and not body.get("template_id"):
        problems.append({"message": "The content value must be set.", "field": "content"})
    return problems


def _handler_for(server: SendGridLoopback) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, payload = server._answer(self.command, self.path, headers, raw)
            data = json.dumps(payload).encode() if payload is not None else b""
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output quiet

    return Handler
