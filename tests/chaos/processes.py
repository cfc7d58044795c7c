"""The processes a chaos run owns: a private PostgreSQL cluster and the worker.

Everything is started in its own temporary directory and process group, and stopped
by its own pid; nothing here touches the shared PostgreSQL on port 5432.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[2]


def _postgres_bin() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(found)
    if not candidates:
        raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) were not found")
    return Path(candidates[-1]).parent


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on ``port``: initdb, start, stop, start, remove.

    PostgreSQL refuses to run as root, so as root the cluster belongs to the
    ``postgres`` user (``runuser``). fsync is off: a stop is a server outage here, not
    a machine crash, so the OS keeps what was written. ``synchronous_commit`` stays on:
    without it an immediate stop loses commits the clients were told about, and the
    run would (rightly) report invoices the workflows know and the database forgot.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.bin = _postgres_bin()
        self.base = Path(tempfile.mkdtemp(prefix="kakin-chaos-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self.base, user="postgres")
        self.running = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(
            command, check=check, capture_output=True, text=True, stdin=subprocess.DEVNULL
        )

    def init(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.base} "
            "-c fsync=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        self.running = True

    def stop(self, mode: str = "immediate") -> None:
        """``immediate`` is a crash as far as clients can tell: connections just break."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)
        self.running = False

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def remove(self) -> None:
        """Stop the cluster (if it runs) and delete its directory."""
        if (self.data / "postmaster.pid").exists():
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


class WorkerProcess:
    """``python worker.py`` in its own process group, its output appended to a log."""

    def __init__(self, env: Mapping[str, str], *, cwd: Path, log: Path) -> None:
        self.env = dict(env)
        self.cwd = cwd
        self.log = log
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log_offset = 0
        self.polling_since: float | None = None

    def start(self) -> None:
        self.polling_since = None
        with self.log.open("ab") as log:
            self._log_offset = log.tell()
            log.write(f"\n--- start {self.starts + 1} at {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                [sys.executable, str(REPO / "worker.py")],
                cwd=self.cwd,  # no .env from the repository leaks in
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    def wait_polling(self, timeout: float = 60) -> None:
        """Wait until this start of the worker logs that it polls its task queue."""
        deadline = time.monotonic() + timeout
        while self.polling_since is None:
            with self.log.open("rb") as log:
                log.seek(self._log_offset)
                if b" polling task queue" in log.read():  # "worker (all) polling task queue(s)"
                    self.polling_since = time.monotonic()
                    return
            if not self.alive():
                raise RuntimeError(f"the worker exited with {self.popen and self.popen.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the worker did not poll in {timeout:.0f} s; see {self.log}")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL, as an OOM killer or a lost node would: no cleanup runs."""
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM (the worker drains), then SIGKILL."""
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None
