"""What every benchmark shares: sizes, progress, figures, the servers they run on.

Everything here starts real parts on free ports under a temporary directory and
stops them in ``finally`` blocks: the Temporal dev server (file-backed SQLite with
WAL), localstripe, a private PostgreSQL database.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from temporalio.client import Client

from kakin.dev.embedded import (
    LOCALHOST,
    SEARCH_ATTRIBUTES,
    ManagedProcess,
    ensure_search_attributes,
    start_localstripe,
    wait_for_temporal,
)
from kakin.platform.binaries import find_binary

PG_ADMIN_URL = os.environ.get(
    "KAKIN_BENCH_POSTGRES",
    os.environ.get("KAKIN_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test"),
)

# -- progress and figures ----------------------------------------------------------------


def quiet_core_logs() -> None:
    """Send the SDK core's own log lines (Rust, printed to stdout by default) to Python
    logging on stderr, warnings and up: stdout is for the figures."""
    import logging

    from temporalio.runtime import (
        LogForwardingConfig,
        LoggingConfig,
        Runtime,
        TelemetryConfig,
        TelemetryFilter,
    )

    runtime = Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
            )
        )
    )
    Runtime.set_default(runtime, error_if_already_set=False)


_T0 = time.monotonic()


def progress(message: str) -> None:
    """One line of progress on stderr, with the seconds since the bench started."""
    print(f"[{time.monotonic() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass
class Figure:
    """One measured figure beside its bare baseline (same run, same server) and its goal."""

    name: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_what: str = ""
    # value ÷ baseline, or None when there is no baseline.
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        if self.ratio is None and self.value is not None and self.baseline:
            self.ratio = self.value / self.baseline


@dataclass
class Report:
    """What one command measured: its figures, its parameters and any details."""

    command: str
    params: dict[str, Any]
    figures: list[Figure]
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "params": self.params,
            "seconds": round(self.seconds, 1),
            "figures": [asdict(f) for f in self.figures],
            "details": self.details,
        }


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def table(reports: Sequence[Report]) -> str:
    """The figures of ``reports`` as an aligned text table (markdown-compatible)."""
    header = ["command", "figure", "value", "unit", "bare baseline", "ratio", "goal", "met"]
    rows = [header]
    for report in reports:
        for f in report.figures:
            met = "-" if f.met is None else ("yes" if f.met else "NO")
            base = f"{_fmt(f.baseline)} ({f.baseline_what})" if f.baseline_what else "-"
            rows.append(
                [report.command, f.name, _fmt(f.value), f.unit, base, _fmt(f.ratio), f.goal, met]
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """The machine the figures were measured on."""
    mem_kib = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    try:
        temporal = subprocess.run(
            [find_binary("temporal"), "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        temporal = "unknown"
    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "temporal_cli": temporal,
        "loadavg_at_start": os.getloadavg(),
    }


def write_output(reports: Sequence[Report], json_path: Path | None) -> None:
    """The table, then the JSON (to stdout, or to ``json_path``)."""
    print(table(reports))
    document = {
        "machine": machine(),
        "reports": [r.to_json() for r in reports],
    }
    text = json.dumps(document, indent=1, ensure_ascii=False, default=str)
    if json_path is None:
        print(text)
    else:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(text + "\n")
        progress(f"JSON written to {json_path}")


# -- ports, temp dirs, RSS --------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Distinct free ports (held open together so none is handed out twice)."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((LOCALHOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"kakin-bench-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def rss_kib(pid: int) -> int:
    """Resident set size of process ``pid`` in KiB, from /proc (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100), nearest-rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


# -- servers ------------------------------------------------------------------------------


@dataclass
class DevServer:
    process: ManagedProcess
    address: str
    client: Client
    db_path: Path


@contextlib.asynccontextmanager
async def dev_server(work: Path) -> AsyncIterator[DevServer]:
    """``temporal server start-dev`` file-backed with WAL, headless, on free ports.

    kakin.dev.embedded.start_temporal_dev_server has neither ``--headless`` nor a choice
    of database file name, so the arguments are built here; readiness, search
    attributes and stopping reuse kakin.dev.embedded.
    """
    port, http_port, metrics_port = free_ports(3)
    db_path = work / "bench.db"
    args = [
        find_binary("temporal"), "server", "start-dev",
        "--ip", LOCALHOST,
        "--port", str(port),
        "--http-port", str(http_port),
        "--metrics-port", str(metrics_port),
        "--headless",
        "--db-filename", str(db_path),
        "--namespace", "default",
        "--log-level", "warn",
        "--sqlite-pragma", "journal_mode=wal",
        "--sqlite-pragma", "synchronous=normal",
    ]  # fmt: skip
    for name, kind in SEARCH_ATTRIBUTES.items():
        args += ["--search-attribute", f"{name}={kind}"]
    progress(f"starting the Temporal dev server on {LOCALHOST}:{port} (SQLite {db_path}, WAL)")
    process = ManagedProcess("temporal", args, log_dir=work / "logs")
    try:
        address = f"{LOCALHOST}:{port}"
        client = await wait_for_temporal(address, timeout=60, process=process)
        await ensure_search_attributes(client, SEARCH_ATTRIBUTES)
        yield DevServer(process=process, address=address, client=client, db_path=db_path)
    finally:
        process.stop()
        progress("Temporal dev server stopped")


@dataclass
class Emulator:
    url: str
    pid: int


@contextlib.asynccontextmanager
async def localstripe(work: Path) -> AsyncIterator[Emulator]:
    """A private localstripe (state in memory); yields its base URL and pid."""
    port = free_ports(1)[0]
    progress(f"starting localstripe on port {port}")
    process = await start_localstripe(port=port, log_dir=work / "logs")
    try:
        yield Emulator(url=f"http://{LOCALHOST}:{port}", pid=process.pid)
    finally:
        process.stop()
        progress("localstripe stopped")


@dataclass
class Database:
    url: str
    # Called before the database is dropped (e.g. an engine's dispose).
    before_drop: list[Any] = field(default_factory=list)


@contextlib.contextmanager
def postgres_database(label: str) -> Iterator[Database]:
    """A private PostgreSQL database, migrated to head; dropped afterwards."""
    from models.db import migrate

    name = f"kakin_bench_{label}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        database = Database(url=f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}")
        progress(f"PostgreSQL database {name} created; migrating")
        try:
            migrate(database.url)
            yield database
        finally:
            for close in database.before_drop:
                with contextlib.suppress(Exception):
                    close()
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            progress(f"PostgreSQL database {name} dropped")
    finally:
        admin.close()


# -- where the CPU went -------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads); with
    ``children``, also of its children that exited and were waited for."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICK


def _postgres_seconds() -> float:
    """CPU of every postgres process, plus what exited backends used (the postmaster's
    reaped children), so a connection closed in between does not count negative."""
    total = 0.0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry.name}/comm") as comm:
                if comm.read().strip() == "postgres":
                    total += cpu_seconds(int(entry.name), children=True)
    return total


def _machine_ticks() -> tuple[int, int]:
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


class CpuMeter:
    """CPU seconds each named process used between ``__init__`` and ``stop()``.

    ``postgres`` is every postgres process on the machine (the server is shared);
    ``machine_busy`` is the share of all cores busy, other tenants included.
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start = {name: cpu_seconds(pid) for name, pid in pids.items()}
        self._pg = _postgres_seconds()
        self._ticks = _machine_ticks()
        self._wall = time.monotonic()

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self._wall
        used = {
            f"{name}_cpu_s": round(cpu_seconds(pid) - self._start[name], 1)
            for name, pid in self.pids.items()
        }
        used["postgres_cpu_s"] = round(_postgres_seconds() - self._pg, 1)
        busy, total = _machine_ticks()
        used["machine_busy"] = round((busy - self._ticks[0]) / max(total - self._ticks[1], 1), 2)
        used["wall_s"] = round(wall, 1)
        progress("  CPU: " + ", ".join(f"{k} {v}" for k, v in used.items()))
        return used
