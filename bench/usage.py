"""Figure 4: usage ingestion and aggregation.

- **Ingestion**: events per second through ``POST /v1/usage`` (the real app, served by
  uvicorn, batches of 1,000, a few clients at once), then the same events again (all
  duplicates: the de-duplication path); beside them, raw ``COPY`` of the same rows
  into a table shaped like ``usage_events``, in the same run, as the baseline.
- **Aggregation**: ``models.usage.aggregate`` (the query invoices use) for one
  subscription's period, and for every subscription's period, over M events loaded
  with ``COPY``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from statistics import median
from typing import Any

import httpx
import psycopg
import uvicorn

from bench.common import Figure, Report, free_ports, postgres_database, progress

# (events through the API, events for the aggregation, subscriptions)
SIZES = {
    "tiny": (2_000, 20_000, 20),
    "small": (20_000, 200_000, 100),
    "full": (200_000, 10_000_000, 1_000),
}
BATCH = 1_000
CLIENTS = 4
START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """The app on a free port (uvicorn in a thread) for as long as the block runs."""
    port = free_ports(1)[0]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _setup(url: str, subscriptions: int) -> tuple[Any, list[tuple[str, str]], str, str]:
    """Sessions, (customer, subscription) pairs in their Nov period, the metric, a key."""
    from kakin import api_keys
    from models import repositories as repo
    from models.db import make_engine, make_session_factory
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
        product = Product(id=repo.new_id("prod"), name="API")
        metric = BillableMetric(id=repo.new_id("bm"), code="calls", name="API calls",
                                aggregation="count")  # fmt: skip
        plan = Price(id=repo.new_id("price"), product=product, currency="JPY",
                     unit_amount=1000, interval="month")  # fmt: skip
        metered = Price(id=repo.new_id("price"), product=product, currency="JPY", unit_amount=0,
                        interval="month", pricing_model="per_unit", unit_amount_decimal="0.5",
                        metric=metric)  # fmt: skip
        session.add_all([product, metric, plan, metered])
        pairs = []
        for n in range(subscriptions):
            customer = Customer(id=repo.new_id("cus"), email=f"c{n}@example.jp", name=f"c{n}",
                                currency="JPY")  # fmt: skip
            subscription = Subscription(
                id=repo.new_id("sub"), customer=customer, price=plan, status="active",
                workflow_id=repo.new_id("wf"), current_period_start=START,
                current_period_end=END,
                items=[SubscriptionItem(id=repo.new_id("si"), price=metered)],
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
    """Seconds to POST every batch (CLIENTS at a time) and the per-status counts."""
    batches = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
    counts = {"accepted": 0, "duplicates": 0, "rejected": 0}
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)

    async def client() -> None:
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120
        ) as http:
            while not queue.empty():
                batch = queue.get_nowait()
                response = await http.post("/v1/usage", json={"events": batch})
                response.raise_for_status()
                body = response.json()
                for name in counts:
                    counts[name] += body[name]

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
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


async def _no_temporal() -> Any:
    raise RuntimeError("the usage bench runs without Temporal")


async def run(size: str) -> Report:
    from activities.stripe_gateway import StripeGateway
    from api.app import create_app
    from kakin.settings import Settings
    from models import usage as usage_sql
    from models.tables import BillableMetric

    through_api, aggregated, subscriptions = SIZES[size]
    with postgres_database("usage") as database:
        progress(f"{subscriptions} metered subscriptions")
        sessions, pairs, metric_id, key = _setup(database.url, subscriptions)
        settings = Settings(stripe_api_key="sk_test_bench", database_url=database.url,
                            api_rate_limit="off")  # fmt: skip
        app = create_app(
            settings=settings,
            sessions=sessions,
            temporal=_no_temporal,
            stripe=StripeGateway(api_key="sk_test_bench"),
        )
        events = _events(pairs, through_api, "api")
        with serving(app) as base:
            progress(f"POST /v1/usage: {through_api:,} events, batches of {BATCH}, "
                     f"{CLIENTS} clients")  # fmt: skip
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
