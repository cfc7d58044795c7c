"""A fault-injecting HTTP proxy that sits in front of the real Stripe emulator.

Tests need faults the emulator can't make: a charge Stripe *accepted* whose answer
never reached us, 500s, 429s. The proxy forwards every request to the real
emulator and, for requests matching a rule, answers with a fault instead (or drops
the connection after forwarding). Nothing is mocked behind it.
"""

from __future__ import annotations

import http.client
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Rule:
    method: str
    path: re.Pattern[str]
    times: int
    # "drop_after_forward": the emulator handles it, the client sees a dropped connection.
    # an int: answer with this HTTP status without forwarding.
    fault: str | int


class FaultProxy:
    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rules: list[Rule] = []
        self.faults_injected: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, method: str, path_regex: str, fault: str | int, times: int = 1) -> None:
        with self._lock:
            self.rules.append(Rule(method, re.compile(path_regex), times, fault))

    def _take(self, method: str, path: str) -> str | int | None:
        with self._lock:
            for rule in self.rules:
                if rule.times > 0 and rule.method == method and rule.path.search(path):
                    rule.times -= 1
                    self.faults_injected.append(f"{method} {path} -> {rule.fault}")
                    return rule.fault
        return None

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

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                fault = proxy._take(self.command, self.path)
                if isinstance(fault, int):
                    payload = b'{"error": {"type": "api_error", "message": "injected fault"}}'
                    self.send_response(fault)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                upstream = http.client.HTTPConnection(*proxy._target, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                upstream.close()
                if fault == "drop_after_forward":
                    # The emulator did the work; the client never hears about it.
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _forward

        return Handler
