"""Figure 4: usage ingestion and aggregation.

- **Ingestion**: events per second through ``POST /v1/usage`` (the real app, served by
  uvicorn in its own process as ``kakin api`` runs it, batches of 1,000, a few clients
  at once), then the same events again (all duplicates: the de-duplication path);
  beside them, raw ``COPY`` of the same rows into a table shaped like ``usage_events``,
  in the same run, as the baseline. The server runs in processes of its own
  (``SERVER_WORKERS``, printed with the parameters), the clients in the bench's; one
  untimed batch per client warms it up first (``WARMUP``), as the baseline's clock
  starts after its connection is made.
- **Aggregation**: ``models.repositories.usage.aggregate`` (the query invoices use) for one
  subscription's period, and for every subscription's period, over M events loaded
  with ``COPY``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

import httpx
import psycopg
import uvicorn

from bench.common import Figure, Report, free_ports, postgres_database, progress
from kakin import runtime

# (events through the API, events for the aggregation, subscriptions)
SIZES = {
    "tiny": (2_000, 20_000, 20),
    "small": (20_000, 200_000, 100),
    "full": (200_000, 10_000_000, 1_000),
}
BATCH = 1_000
CLIENTS = 4
# uvicorn processes serving the API, apart from the clients' process: 1, as ``kakin api``
# runs (docker-compose's ``api`` service). KAKIN_BENCH_USAGE_WORKERS=2 runs uvicorn
# --workers 2 (one API process per core of a 2-core machine); 0 serves from a thread of
# the bench's own process, sharing one interpreter with the clients (the old setup).
SERVER_WORKERS = int(os.environ.get("KAKIN_BENCH_USAGE_WORKERS", "1"))
_ROOT = Path(__file__).resolve().parent.parent
# One untimed batch per client first (KAKIN_BENCH_USAGE_WARMUP=0: none, every batch timed).
WARMUP = os.environ.get("KAKIN_BENCH_USAGE_WARMUP", "1") != "0"
_DATABASE_ENV = "KAKIN_BENCH_USAGE_DATABASE_URL"
START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """The app on a free port (uvicorn in a thread) for as long as the block runs."""
    port = free_ports(1)[0]
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, lifespan="off",
            **runtime.uvicorn_options(log_level="warning"),
        )
    )  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def app_from_environment() -> Any:
    """The app a server process of the bench serves (``uvicorn --factory``): the one
    ``kakin api`` serves (``build_app``), on the bench's database, without a rate limit."""
    from api.app import build_app
    from kakin.platform.settings import Settings

    url = os.environ[_DATABASE_ENV]
    return build_app(Settings(stripe_api_key="sk_test_bench", database_url=url,
                              api_rate_limit="off"))  # fmt: skip


def serve_processes(port: int, workers: int) -> None:
    """What a server process of the bench runs: ``uvicorn --workers`` with the options
    ``kakin api`` serves with (``runtime.uvicorn_options``: no uvicorn access log)."""
    uvicorn.run(
        "bench.usage:app_from_environment", factory=True, host="127.0.0.1", port=port,
        workers=workers, lifespan="off", **runtime.uvicorn_options(log_level="warning"),
    )  # fmt: skip


@contextlib.contextmanager
def serving_processes(database_url: str, workers: int) -> Iterator[str]:
    """``uvicorn --workers`` serving the app on a free port, for as long as the block runs."""
    port = free_ports(1)[0]
    command = [sys.executable, "-m", "bench.usage", str(port), str(workers)]
    environment = {**os.environ, _DATABASE_ENV: database_url}
    server = subprocess.Popen(command, env=environment, cwd=_ROOT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the API server exited with {server.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the API server did not start within 60 s")
            time.sleep(0.1)
        base = f"http://127.0.0.1:{port}"
        for _ in range(workers * 4):  # every worker imported and answering
            httpx.get(f"{base}/v1/health", timeout=30).raise_for_status()
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _setup(url: str, subscriptions: int) -> tuple[Any, list[tuple[str, str]], str, str]:
    """Sessions, (customer, subscription) pairs in their Nov period, the metric, a key."""
    from kakin.services import api_keys
    from models.db import make_engine, make_session_factory
    from models.repositories.common import new_id
    from models.tables import (
        BillableMetric,
        Customer,
        Price,
        Product,
        Subscription,
        SubscriptionItem,
    )

    sessions = make_session_factory(make_engine(url))
    with sessions() as session:
        product = Product(id=new_id("prod"), name="API")
        metric = BillableMetric(id=new_id("bm"), code="calls", name="API calls",
                                aggregation="count")  # fmt: skip
        plan = Price(id=new_id("price"), product=product, currency="JPY",
                     unit_amount=1000, interval="month")  # fmt: skip
        metered = Price(id=new_id("price"), product=product, currency="JPY", unit_amount=0,
                        interval="month", pricing_model="per_unit", unit_amount_decimal="0.5",
                        metric=metric)  # fmt: skip
        session.add_all([product, metric, plan, metered])
        pairs = []
        for n in range(subscriptions):
            customer = Customer(id=new_id("cus"), email=f"c{n}@example.jp", name=f"c{n}",
                                currency="JPY")  # fmt: skip
            subscription = Subscription(
                id=new_id("sub"), customer=customer, price=plan, status="active",
                workflow_id=new_id("wf"), current_period_start=START,
                current_period_end=END,
                items=[SubscriptionItem(id=new_id("si"), price=metered)],
            )  # fmt: skip
            session.add_all([customer, subscription])
            pairs.append((customer.id, subscription.id))
        session.commit()
        metric_id = metric.id
    key = api_keys.create_key(sessions, name="bench", role="service").secret
    return sessions, pairs, metric_id, key


def _events(pairs: list[tuple[str, str]], count: int, prefix: str) -> list[dict[str, Any]]:
    step = (END - START) / (count + 1)
    return [
        {
            "event_id": f"{prefix}-{n}",
            "metric": "calls",
            "timestamp": (START + step * (n + 1)).isoformat(),
            "customer_id": pairs[n % len(pairs)][0],
        }
        for n in range(count)
    ]


async def _post_all(
    base: str, key: str, events: list[dict[str, Any]]
) -> tuple[float, dict[str, int]]:
    """Seconds to POST every batch (CLIENTS at a time) and the per-status counts.

    The bodies are encoded before the clock starts, as the clients' payloads would be
    ready: the bench's own JSON encoding shares the machine's cores with the API.
    """
    bodies = [  # the bytes httpx's json= would send
        json.dumps({"events": events[i : i + BATCH]}, ensure_ascii=False,
                   separators=(",", ":"), allow_nan=False).encode()
        for i in range(0, len(events), BATCH)
    ]  # fmt: skip
    counts = {"accepted": 0, "duplicates": 0, "rejected": 0}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            response = await http.post(
                "/v1/usage", content=body, headers={"Content-Type": "application/json"}
            )
            response.raise_for_status()
            receipt = response.json()
            for name in counts:
                counts[name] += receipt[name]

    # The clients are made before the clock starts: making one (its TLS context) takes
    # ~50 ms of the bench's CPU, which is no part of the API's time.
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120
                )
            )
            for _ in range(CLIENTS)
        ]
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for http in clients))
        return time.perf_counter() - started, counts


def _copy_rows(url: str, table: str, rows: list[tuple[Any, ...]]) -> float:
    """Seconds to COPY ``rows`` into ``table`` (event_id, customer_id, subscription_id,
    metric_id, timestamp, properties, value, group_key, received_at)."""
    columns = ("event_id, customer_id, subscription_id, metric_id, timestamp, properties, "
               "value, group_key, received_at")  # fmt: skip
    with psycopg.connect(url) as connection:
        started = time.perf_counter()
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        connection.commit()
        return time.perf_counter() - started


def _rows(
    pairs: list[tuple[str, str]], metric_id: str, count: int, prefix: str
) -> list[tuple[Any, ...]]:
    step = (END - START) / (count + 1)
    now = datetime.now(UTC)
    return [
        (f"{prefix}-{n}", pairs[n % len(pairs)][0], pairs[n % len(pairs)][1], metric_id,
         START + step * (n + 1), json.dumps({}), None, None, now)
        for n in range(count)
    ]  # fmt: skip


def _served_by() -> str:
    if SERVER_WORKERS == 0:
        return "uvicorn in a thread of the bench process"
    if SERVER_WORKERS == 1:
        return "1 API process (uvicorn, as kakin api)"
    return f"{SERVER_WORKERS} API processes (uvicorn --workers {SERVER_WORKERS})"


async def _no_temporal() -> Any:
    raise RuntimeError("the usage bench runs without Temporal")


async def run(size: str) -> Report:
    from api.app import create_app
    from kakin.adapters.stripe_gateway import StripeGateway
    from kakin.platform.settings import Settings
    from models.repositories import usage as usage_sql
    from models.tables import BillableMetric

    through_api, aggregated, subscriptions = SIZES[size]
    with postgres_database("usage") as database:
        progress(f"{subscriptions} metered subscriptions")
        sessions, pairs, metric_id, key = _setup(database.url, subscriptions)
        events = _events(pairs, through_api, "api")
        if SERVER_WORKERS == 0:
            settings = Settings(stripe_api_key="sk_test_bench", database_url=database.url,
                                api_rate_limit="off")  # fmt: skip
            app = create_app(
                settings=settings,
                sessions=sessions,
                temporal=_no_temporal,
                stripe=StripeGateway(api_key="sk_test_bench"),
            )
            server = serving(app)
        else:
            server = serving_processes(database.url, SERVER_WORKERS)
        with server as base:
            if WARMUP:
                # Untimed: each client's first batch meets a cold server (its database
                # connections, their PostgreSQL backends, first-use caches), a cost a
                # running service paid long ago. Removed again before the aggregation.
                progress(f"warm-up: {CLIENTS} batches, not timed")
                await _post_all(base, key, _events(pairs, CLIENTS * BATCH, "warm-up"))
                with psycopg.connect(database.url, autocommit=True) as connection:
                    connection.execute("DELETE FROM usage_events WHERE event_id LIKE 'warm-up-%'")
            progress(f"POST /v1/usage: {through_api:,} events, batches of {BATCH}, "
                     f"{CLIENTS} clients, {_served_by()}")  # fmt: skip
            first, counts = await _post_all(base, key, events)
            progress(f"  {through_api / first:,.0f} events/s {counts}")
            progress("the same events again (all duplicates)")
            again, repeat = await _post_all(base, key, events)
            progress(f"  {through_api / again:,.0f} events/s {repeat}")
        psql = database.url
        with psycopg.connect(psql, autocommit=True) as connection:
            connection.execute("CREATE TABLE usage_copy (LIKE usage_events INCLUDING DEFAULTS)")
        progress(f"COPY of the same {through_api:,} rows (baseline)")
        copied = _copy_rows(psql, "usage_copy", _rows(pairs, metric_id, through_api, "api"))

        progress(f"COPY {aggregated:,} events for the aggregation")
        loaded = 0
        chunk = 500_000
        while loaded < aggregated:
            count = min(chunk, aggregated - loaded)
            _copy_rows(psql, "usage_events", _rows(pairs, metric_id, count, f"agg{loaded}"))
            loaded += count
            progress(f"  {loaded:,} loaded")
        with psycopg.connect(psql, autocommit=True) as connection:
            connection.execute("ANALYZE usage_events")
        with sessions() as session:
            metric = session.get(BillableMetric, metric_id)
            assert metric is not None

            def one(subscription_id: str) -> float:
                started = time.perf_counter()
                usage_sql.aggregate(session, subscription_id=subscription_id, metric=metric,
                                    start=START, end=END)  # fmt: skip
                return time.perf_counter() - started

            one(pairs[0][1])  # warm the connection and the plan
            single = median(one(pairs[i % len(pairs)][1]) for i in range(1, 8))
            started = time.perf_counter()
            for _, subscription_id in pairs:
                one(subscription_id)
            every = time.perf_counter() - started
    per_second = through_api / first
    baseline = through_api / copied
    return Report(
        command="usage",
        params={
            "events": through_api,
            "aggregated": aggregated,
            "subscriptions": subscriptions,
            "batch": BATCH,
            "clients": CLIENTS,
            "server": _served_by(),
            "warm-up": f"{CLIENTS} batches, untimed" if WARMUP else "none",
        },
        figures=[
            Figure(
                "events per second (POST /v1/usage)",
                per_second,
                "events/s",
                baseline=baseline,
                baseline_what="COPY rows/s",
                goal="≥ 25,000",
                met=per_second >= 25_000,
            ),
            Figure(
                "duplicates per second (resent)",
                through_api / again,
                "events/s",
                baseline=baseline,
                baseline_what="COPY rows/s",
            ),
            Figure(
                "aggregate one period",
                single * 1000,
                "ms",
                goal="< 50",
                met=single < 0.05,
                notes=f"{aggregated // subscriptions:,} events in the period",
            ),
            Figure(
                f"aggregate all periods ({aggregated:,} events)",
                every,
                "s",
                goal="< 10",
                met=every < 10,
                notes=f"{subscriptions} subscriptions",
            ),
        ],
        details={"first": counts, "again": repeat, "copy_seconds": copied},
    )


if __name__ == "__main__":  # the bench's API server processes (serving_processes)
    serve_processes(int(sys.argv[1]), int(sys.argv[2]))
