"""``kakin up`` as a person runs it: real processes, real ports, real signals.

Each test starts ``python -m kakin.cli up`` as a subprocess (which starts the Temporal
dev server and localstripe itself) and checks what the person would see: the output,
the outbox, the SQLite database, and that nothing is left running afterwards.
"""

from __future__ import annotations

import email
import email.policy
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from kakin.adapters.mailer import safe_key
from kakin.dev.demo import CANCEL_REASON, CANCELED_BY
from models.db import make_engine, make_session_factory
from models.tables import AuditLog, Customer, EmailMessage, Invoice, Subscription
from tests.helpers import free_ports

pytestmark = pytest.mark.devserver


def port_is_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Up:
    """A running ``kakin up`` and everything it printed so far."""

    process: subprocess.Popen[str]
    data_dir: Path
    ports: list[int]
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while what not in self.output:
            assert self.process.poll() is None, f"kakin up exited early:\n{self.output}"
            assert time.monotonic() < deadline, f"{what!r} not printed:\n{self.output}"
            time.sleep(0.2)

    def leftovers(self) -> list[int]:
        """Pids of processes that belong to this run: its data dir or ports in the cmdline."""
        marks = [str(self.data_dir).encode()] + [
            f"--port\0{port}\0".encode() for port in self.ports
        ]
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == self.process.pid:
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes() + b"\0"
            except OSError:
                continue
            if any(mark in cmdline for mark in marks):
                found.append(int(proc.name))
        return found


StartUp = Callable[..., "Up"]


@pytest.fixture
def up(tmp_path: Path) -> Iterator[StartUp]:
    """Start ``kakin up`` with free ports under tmp_path; never leave a process behind."""
    runs: list[Up] = []

    def start(*args: str, env: dict[str, str] | None = None, ports: list[int] | None = None) -> Up:
        ports = ports or free_ports(4)
        data_dir = tmp_path / "var"
        # A clean environment: no KAKIN_* settings from the developer's shell, and a
        # working directory without a .env, so `up` uses its embedded defaults.
        clean = {k: v for k, v in os.environ.items() if not k.startswith("KAKIN_")}
        process = subprocess.Popen(
            [sys.executable, "-m", "kakin.cli", "up", "--data-dir", str(data_dir),
             "--temporal-port", str(ports[0]), "--ui-port", str(ports[1]),
             "--stripe-port", str(ports[2]), "--api-port", str(ports[3]), *args],
            cwd=tmp_path,
            env={**clean, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
        )  # fmt: skip
        run = Up(process, data_dir, ports)
        assert process.stdout is not None
        stdout = process.stdout

        def read() -> None:
            for line in stdout:
                run.lines.append(line)

        threading.Thread(target=read, daemon=True).start()
        runs.append(run)
        return run

    yield start

    for run in runs:
        if run.process.poll() is None:
            run.process.terminate()
            try:
                run.process.wait(30)
            except subprocess.TimeoutExpired:
                run.process.kill()
                run.process.wait()
        # Only if `up` itself failed to stop them: its children, found by our ports.
        for pid in run.leftovers():
            os.kill(pid, signal.SIGKILL)


def assert_nothing_left(run: Up) -> None:
    for port in run.ports:
        assert not port_is_open(port), f"port {port} still open"
    assert run.leftovers() == [], "child processes left running"


def test_up_plays_the_demo_and_exits(up: StartUp) -> None:
    run = up("--exit-after-demo")
    try:
        run.process.wait(timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail(f"kakin up --exit-after-demo did not finish:\n{run.output}")
    time.sleep(0.5)  # let the reader thread take the last lines
    out = run.output
    assert run.process.returncode == 0, out
    temporal_port, ui_port, _, _ = run.ports
    assert f"http://localhost:{ui_port}/namespaces/default/workflows" in out
    assert "SubscriptionStatus%3D%22past_due%22" in out
    assert f"--temporal-address 127.0.0.1:{temporal_port} status" in out
    assert "demo done" in out
    assert "佐藤 花子  past_due → suspended" in out
    assert_nothing_left(run)

    sessions = make_session_factory(make_engine(f"sqlite:///{run.data_dir / 'kakin.db'}"))
    with sessions() as session:

        def subscription_of(name: str) -> Subscription:
            customer = session.scalars(select(Customer).where(Customer.name == name)).one()
            return session.scalars(
                select(Subscription).where(Subscription.customer_id == customer.id)
            ).one()

        def paid(sub: Subscription) -> list[Invoice]:
            return list(
                session.scalars(
                    select(Invoice).where(
                        Invoice.subscription_id == sub.id, Invoice.status == "paid"
                    )
                )
            )

        def email_kinds(sub: Subscription) -> set[str]:
            return set(
                session.scalars(
                    select(EmailMessage.kind).where(EmailMessage.subscription_id == sub.id)
                )
            )

        yamada, jane, sato = (subscription_of(n) for n in ("山田 太郎", "Jane Smith", "佐藤 花子"))

        # Renewals: three paid invoices each, in the customer's currency.
        assert yamada.customer.currency == "JPY" and yamada.customer.locale == "ja"
        assert len(paid(yamada)) >= 3
        assert {(i.currency, i.total) for i in paid(yamada)} == {("JPY", 3980)}
        assert jane.customer.currency == "USD"
        assert len(paid(jane)) >= 3
        assert {(i.currency, i.total) for i in paid(jane)} == {("USD", 1250)}

        # Dunning: declined, reminded, suspended on day 14 (and canceled later, on day 30).
        assert sato.status in ("suspended", "canceled")
        assert paid(sato) == []
        assert {"payment_failed", "payment_reminder", "suspended"} <= email_kinds(sato)
        sato_steps = session.scalars(
            select(AuditLog.to_status).where(AuditLog.entity_id == sato.id).order_by(AuditLog.id)
        ).all()
        assert sato_steps[:2] == ["past_due", "suspended"]

        # Support's cancel signal, with who and why in the audit log.
        assert jane.status == "canceled"
        assert jane.cancel_reason == CANCEL_REASON
        cancel = session.scalars(
            select(AuditLog).where(AuditLog.entity_id == jane.id, AuditLog.to_status == "canceled")
        ).one()
        assert (cancel.actor, cancel.reason) == (CANCELED_BY, CANCEL_REASON)

        # Japanese receipts in the outbox, one .eml per receipt email.
        receipts = session.scalars(
            select(EmailMessage).where(
                EmailMessage.subscription_id == yamada.id, EmailMessage.kind == "receipt"
            )
        ).all()
        assert len(receipts) >= 3
        for receipt in receipts:
            path = run.data_dir / "outbox" / f"{safe_key(receipt.business_key)}.eml"
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert "お支払い完了" in str(message["Subject"])
            body = message.get_body(preferencelist=("plain", "html"))
            assert body is not None and "山田" in body.get_content()
    assert len(list((run.data_dir / "outbox").glob("*.eml"))) >= 12


@pytest.mark.parametrize(
    ("signum", "moment"),
    [(signal.SIGINT, "the UI answers"), (signal.SIGTERM, "the demo has billed")],
    ids=["SIGINT-once-the-UI-answers", "SIGTERM-mid-demo"],
)
def test_up_stops_cleanly_on_a_signal(up: StartUp, signum: signal.Signals, moment: str) -> None:
    run = up()
    ui = f"http://localhost:{run.ports[1]}/"
    deadline = time.monotonic() + 90
    while True:
        assert run.process.poll() is None, f"kakin up exited early:\n{run.output}"
        try:
            with urllib.request.urlopen(ui, timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, f"the UI never answered:\n{run.output}"
        time.sleep(0.2)
    if moment == "the demo has billed":
        run.wait_for(" paid ", timeout=60)
        # The HTTP API (and the card-update page the emails link to) runs too.
        run.wait_for("HTTP API", timeout=10)
        health = f"http://localhost:{run.ports[3]}/v1/health"
        with urllib.request.urlopen(health, timeout=5) as response:
            assert response.status == 200

    run.process.send_signal(signum)
    started = time.monotonic()
    try:
        run.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"kakin up did not stop within 20 s of {signum.name}:\n{run.output}")
    time.sleep(0.5)
    assert run.process.returncode == 0, run.output
    assert time.monotonic() - started < 20
    assert "kakin up: stopped" in run.output
    assert_nothing_left(run)


def test_up_refuses_a_live_stripe_key(up: StartUp) -> None:
    run = up(env={"KAKIN_STRIPE_API_KEY": "sk_live_x"})
    assert run.process.wait(timeout=30) == 2
    time.sleep(0.3)
    assert "live" in run.output.lower()
    assert len(run.output.strip().splitlines()) == 1  # one line, no traceback
    assert not run.data_dir.exists()  # started nothing, created nothing
    assert_nothing_left(run)


def test_up_names_a_busy_port_and_cleans_up(up: StartUp) -> None:
    ports = free_ports(4)
    with socket.socket() as squatter:  # something else already listens on the Stripe port
        squatter.bind(("127.0.0.1", ports[2]))
        squatter.listen()
        run = up("--exit-after-demo", ports=ports)
        assert run.process.wait(timeout=90) == 1
    time.sleep(0.3)
    assert f"error: port {ports[2]} is already in use" in run.output
    assert "Traceback" not in run.output
    assert_nothing_left(run)
