"""``kakin api`` as docker-compose runs it: a real process on a free port and a SQLite file.

What an operator sees of it: its stdout and stderr (the access log must hold only the
fields of ``kakin.api.access``, never a query string, a card number or an email), and
its exit code when it is stopped (a clean SIGTERM or Ctrl-C is a success).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from kakin.services import api_keys
from models.db import make_engine, make_session_factory, migrate
from tests.helpers import free_ports

ROOT = Path(__file__).resolve().parents[2]
CARD = "4242424242424242"
SPACED_CARD = "4111+1111+1111+1111"  # as a form-encoded query carries it
EMAIL = "hanako.suzuki@example.jp"


HEALTH = {"api": "/v1/health", "codec-server": "/login"}  # a page that answers 200


@dataclass
class Api:
    process: subprocess.Popen[bytes]
    base: str
    log: Path
    key: str
    command: str

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=timeout)


@pytest.fixture
def api(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Api]:
    """``python -m kakin.cli api`` (or ``codec-server``, the parameter) with a support key;
    its stdout and stderr in one file."""
    command = getattr(request, "param", "api")
    url = f"sqlite:///{tmp_path / 'kakin.db'}"
    migrate(url)
    engine = make_engine(url)
    key = api_keys.create_key(make_session_factory(engine), name="log test", role="support")
    engine.dispose()
    port = free_ports(1)[0]
    log = tmp_path / "api.log"
    env = {**os.environ, "KAKIN_DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        argv = [
            sys.executable,
            "-m",
            "kakin.cli",
            command,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    running = Api(process, f"http://127.0.0.1:{port}", log, key.secret, command)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"kakin api exited early:\n{running.output()}"
            try:
                httpx.get(f"{running.base}{HEALTH[command]}", timeout=2).raise_for_status()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"kakin api never answered:\n{running.output()}"
                time.sleep(0.1)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_access_log_holds_no_query_string_card_number_or_email(api: Api) -> None:
    headers = {"Authorization": f"Bearer {api.key}"}
    with httpx.Client(base_url=api.base, headers=headers, timeout=10) as http:
        in_path = http.get(f"/v1/customers/{CARD}")
        in_query = http.get("/v1/subscriptions", params={"customer_id": CARD})
        spaced = http.get(f"/v1/customers?starting_after={SPACED_CARD}")
        email = http.get("/v1/subscriptions", params={"customer_id": EMAIL})
    assert [r.status_code for r in (in_path, in_query, spaced)] == [422, 422, 422]
    assert email.status_code == 200, email.text
    api.stop()
    output = api.output()

    local_part = EMAIL.split("@")[0]  # the query carries the email as hanako.suzuki%40...
    for secret in (
        CARD,
        SPACED_CARD,
        "4111 1111 1111 1111",
        local_part,
        "customer_id=",
        "HTTP/1.1",
    ):
        assert secret not in output, f"{secret!r} in the output of kakin api:\n{output}"
    # Our own access line is there for every request, with its fields and nothing else.
    lines = [
        json.loads(line.split("kakin.api.access ", 1)[1])
        for line in output.splitlines()
        if "kakin.api.access " in line
    ]
    requests = [line for line in lines if line["path"] != "/v1/health"]
    assert [(line["method"], line["status"]) for line in requests] == [
        ("GET", 422),
        ("GET", 422),
        ("GET", 422),
        ("GET", 200),
    ], output
    assert requests[1]["path"] == requests[3]["path"] == "/v1/subscriptions"
    assert CARD not in requests[0]["path"] and requests[0]["path"].startswith("/v1/customers/")
    assert {frozenset(line) for line in requests} == {
        frozenset({"event", "request_id", "method", "path", "status", "key_id", "duration_ms"})
    }


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("api", ["api", "codec-server"], indirect=True)
def test_a_clean_stop_exits_0(api: Api, signum: signal.Signals) -> None:
    answered = httpx.get(f"{api.base}{HEALTH[api.command]}", timeout=10)
    assert answered.status_code == 200
    code = api.stop(signum)
    output = api.output()
    assert code == 0, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
