"""Figure 3: the month-start spike. M subscriptions due at the same instant.

Stripe is localstripe behind a rate-limiting proxy (bench.stripe_limiter) that
answers 429 above the configured limit (default 25 requests/s, Stripe's test mode;
live is 100), with ``Retry-After: 1``. kakin is measured as it runs: every Stripe
request of a process waits on its token bucket (kakin.adapters.stripe_pacing) at
KAKIN_STRIPE_LIMITER_SHARE (0.9) of the limit, divided among the processes that
charge; a 429 that still comes back is retried after Retry-After, then by Temporal
(CHARGE_RETRY). Lag is the payment attempt's settle time in the database
(``payment_attempts.updated_at``) minus the due time.

Two variants, each with a fresh limiter and database: the charges on the main task
queue (kakin's default; they run in the ACTIVITY_WORKERS activity processes, each
bucket at 0.9 ÷ ACTIVITY_WORKERS of the limit, as the settings advise), and on a task
queue of their own served by kakin.runtime.build_stripe_worker in the workflow process,
held by the server to the same share in charges/s (÷ requests per charge), with that
process's bucket at 0.9 of the limit (what KAKIN_STRIPE_TASK_QUEUE turns on).

The bare baseline: M bare workflows (timer → no-op activity) due at one instant on
the same server, lag measured to the activity's completion.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench import stack
from bench.common import (
    CpuMeter,
    DevServer,
    Emulator,
    Figure,
    Report,
    dev_server,
    free_ports,
    localstripe,
    percentile,
    postgres_database,
    progress,
    temp_dir,
)
from bench.cycles import DEFAULT_ACTIVITY_WORKERS
from bench.stripe_limiter import STATS_PATH
from kakin.dev.embedded import ManagedProcess, wait_for_port
from kakin.runtime import STRIPE_LIMITER_SHARE, STRIPE_REQUESTS_PER_CHARGE
from models.tables import PaymentAttempt

SIZES = {"tiny": 20, "small": 200, "full": 10_000}
# The share of Stripe's limit kakin uses: the token bucket's and the charge queue's.
TARGET_SHARE = STRIPE_LIMITER_SHARE
# The goal: the charge rate sustained at this share of the configured limit for
# the whole spike. Read as kakin's configured rate (TARGET_SHARE of Stripe's limit): of
# Stripe's limit itself it could at best just touch it, the bucket being at 0.9.
SUSTAINED_GOAL = 0.9
LAG_SLACK = 1.2
# kakin's activities run in this many activity-only worker processes beside the
# workflow worker (the charge queue's worker stays in the workflow process), the
# layout `bench cycles` found fastest on 2 cores.
ACTIVITY_WORKERS = DEFAULT_ACTIVITY_WORKERS


@contextlib.asynccontextmanager
async def limiter(work: Path, target: str, limit: float) -> AsyncIterator[tuple[str, int]]:
    port = free_ports(1)[0]
    process = ManagedProcess(
        "stripe-limiter",
        [sys.executable, "-m", "bench.stripe_limiter", "--target", target,
         "--limit", str(limit), "--port", str(port), "--retry-after", "1"],
        log_dir=work / "logs",
        env={"PYTHONUNBUFFERED": "1", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )  # fmt: skip
    try:
        await wait_for_port("127.0.0.1", port, timeout=30)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.stop()


def limiter_stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + STATS_PATH, timeout=10) as response:
        return dict(json.load(response))


def charge_rate(limit: float) -> float:
    """Charges per second the charge queue runs at (the server-side rate)."""
    return TARGET_SHARE * limit / STRIPE_REQUESTS_PER_CHARGE


def sustained(by_second: dict[str, int]) -> tuple[float, int, int]:
    """(mean, lowest, seconds) of the requests per second between the first and the last
    second that saw any, those two left out (partial seconds at the spike's edges)."""
    if not by_second:
        return 0.0, 0, 0
    seconds = sorted(int(k) for k in by_second)
    inner = range(seconds[0] + 1, seconds[-1])
    counts = [int(by_second.get(str(second), 0)) for second in inner]
    if not counts:
        counts = [int(v) for v in by_second.values()]
    return sum(counts) / len(counts), min(counts), len(counts)


def _lags(due: datetime, times: list[float]) -> tuple[float | None, float | None, int]:
    """(p50, p99, peak per second) of completion wall times relative to ``due``."""
    lags = [t - due.timestamp() for t in times]
    per_second = Counter(int(t) for t in times)
    return percentile(lags, 50), percentile(lags, 99), max(per_second.values(), default=0)


@dataclass
class Variant:
    """One way of running the charges: its name, suffix for figure names, queue."""

    key: str
    label: str  # appended to figure names ("" for kakin as it runs by default)
    stripe_queue: bool


VARIANTS = (
    Variant("main_queue", "", stripe_queue=False),
    Variant("stripe_queue", " [Stripe queue]", stripe_queue=True),
)


async def _kakin(
    server: DevServer, stripe: Emulator, work: Path, m: int, limit: float, variant: Variant
) -> dict[str, Any]:
    """M subscriptions due at once, charges through a fresh limiter and database."""
    client = server.client
    tag = secrets.token_hex(3)
    lead = 5.0 + m / 20.0  # starts run at ~40/s on a busy 2-core machine
    # The processes that charge share the limit: one (the workflow process's charge
    # worker) on the Stripe queue, the activity processes on the main queue.
    charging = 1 if variant.stripe_queue else max(1, ACTIVITY_WORKERS)
    per_process = TARGET_SHARE * limit / charging
    async with limiter(work, stripe.url, limit) as (limited_url, limiter_pid):
        with postgres_database("spike") as database:
            kakin = stack.make_kakin(
                database.url, stripe.url, work / f"outbox-{variant.key}",
                charge_url=limited_url, stripe_request_rate=per_process,
            )  # fmt: skip
            database.before_drop.append(kakin.close)
            pool = min(m, 100)
            progress(f"kakin{variant.label}: creating {pool} customers (not through the limiter)")
            customer_ids, price_id = await stack.make_customers(kakin, pool)
            queue = f"bench-spike-{tag}"
            stripe_queue = f"bench-spike-stripe-{tag}" if variant.stripe_queue else None

            def charged() -> int:
                with kakin.sessions() as session:
                    return int(
                        session.scalar(
                            select(func.count())
                            .select_from(PaymentAttempt)
                            .where(PaymentAttempt.status == "succeeded")
                        )
                        or 0
                    )

            pids: dict[str, int] = {}
            async with stack.kakin_worker(
                client, kakin, queue, stripe_task_queue=stripe_queue, stripe_rate_limit=limit,
                activity_workers=ACTIVITY_WORKERS, pids=pids,
            ):  # fmt: skip
                due = stack.due_after(lead)
                where = (
                    f"charges on {stripe_queue} at {charge_rate(limit):g} activities/s"
                    if stripe_queue
                    else "charges on the main task queue, no server-side rate"
                ) + f"; {charging} process(es) at {per_process:g} Stripe requests/s each"
                progress(f"kakin{variant.label}: {m} subscriptions due at {due:%X}; {where}")
                await stack.start_subscriptions(
                    client, kakin, task_queue=queue, customers=customer_ids,
                    price_id=price_id, count=m, due=due, stripe_task_queue=stripe_queue,
                )  # fmt: skip
                await asyncio.sleep(max(0.0, due.timestamp() - time.time()))
                meter = CpuMeter(
                    {"temporal": server.process.pid, "localstripe": stripe.pid,
                     "limiter": limiter_pid, "bench_worker": os.getpid(), **pids}
                )  # fmt: skip
                # Generous: 429s are retried with exponential backoff (2 s … 10 min).
                timeout = 300 + 20 * m * 3 / limit
                await stack.wait_until(
                    charged, m, what="kakin charges settled", timeout=timeout, poll=1.0
                )
                stats = await asyncio.to_thread(limiter_stats, limited_url)
                cpu = meter.stop()
            with kakin.sessions() as session:
                settled = [
                    row.timestamp()
                    for row in session.scalars(
                        select(PaymentAttempt.updated_at).where(
                            PaymentAttempt.status == "succeeded"
                        )
                    )
                ]
    p50, p99, peak = _lags(due, settled)
    rejected = int(stats["rejected_429"])
    attempted: Counter[str] = Counter(stats["forwarded_by_second"])
    attempted.update(stats["rejected_by_second"])
    mean_rps, lowest_rps, spike_seconds = sustained(stats["forwarded_by_second"])
    result = {
        "sustained_requests_per_s": mean_rps,
        "lowest_requests_per_s": lowest_rps,
        "spike_seconds": spike_seconds,
        "bucket_requests_per_s_per_process": per_process,
        "p50": p50,
        "p99": p99,
        "peak_charges": peak,
        "rejected": rejected,
        "peak_requests": max(attempted.values(), default=0),
        "requests_per_charge": stats["forwarded"] / max(m, 1),
        "limiter": {k: v for k, v in stats.items() if not k.endswith("_by_second")},
        "forwarded_by_second": stats["forwarded_by_second"],
        "rejected_by_second": stats["rejected_by_second"],
        "cpu": cpu,
        "charge_task_queue": where,
    }
    progress(
        f"kakin{variant.label}: p50 {p50:.1f} s, p99 {p99:.1f} s, peak {peak} charges/s, "
        f"{rejected} × 429, {result['requests_per_charge']:.2f} Stripe requests per charge, "
        f"{mean_rps:.1f} requests/s sustained ({mean_rps / limit:.0%} of {limit:g}; "
        f"lowest second {lowest_rps})"
    )
    return result


def _figures(
    r: dict[str, Any], bare: dict[str, Any], v: Variant, m: int, limit: float
) -> list[Figure]:
    queue_rate = charge_rate(limit)
    configured = TARGET_SHARE * limit  # kakin's Stripe requests/s (the bucket's rate)
    ideal_p99 = m / queue_rate
    return [
        Figure(
            f"p50 lag due → charge{v.label}",
            r["p50"],
            "s",
            baseline=bare["p50"],
            baseline_what="bare: due → no-op activity",
        ),
        Figure(
            f"p99 lag due → charge{v.label}",
            r["p99"],
            "s",
            baseline=bare["p99"],
            baseline_what="bare: due → no-op activity",
            goal=f"≤ {LAG_SLACK} × N ÷ rate = {LAG_SLACK * ideal_p99:.1f}",
            met=r["p99"] is not None and r["p99"] <= LAG_SLACK * ideal_p99,
            notes=(
                f"rate = {TARGET_SHARE:.0%} of {limit:g} requests/s ÷ "
                f"{STRIPE_REQUESTS_PER_CHARGE} per charge = {queue_rate:g} charges/s"
            ),
        ),
        Figure(
            f"peak charges per second{v.label}",
            float(r["peak_charges"]),
            "charges/s",
            baseline=float(bare["peak_per_s"]),
            baseline_what="bare: no-op activities/s",
            notes="settle times in the database, which bunch behind commits: Stripe's "
            "own count is the limiter's, below",
        ),
        Figure(
            f"peak Stripe requests per second{v.label}",
            float(r["peak_requests"]),
            "requests/s",
            goal=f"≤ {limit:g} (Stripe's limit)",
            met=r["peak_requests"] <= limit and r["rejected"] == 0,
            notes="forwarded + answered 429, per wall-clock second, at the limiter",
        ),
        Figure(
            f"Stripe requests per second sustained{v.label}",
            r["sustained_requests_per_s"],
            "requests/s",
            goal=f"≥ {SUSTAINED_GOAL:.0%} of the configured {configured:g}",
            met=r["sustained_requests_per_s"] >= SUSTAINED_GOAL * configured,
            notes=(
                f"{r['sustained_requests_per_s'] / configured:.0%} of kakin's configured "
                f"rate, {r['sustained_requests_per_s'] / limit:.0%} of Stripe's {limit:g}; "
                f"mean of the spike's {r['spike_seconds']} whole seconds "
                f"(lowest {r['lowest_requests_per_s']})"
            ),
        ),
        Figure(
            f"429s seen{v.label}",
            float(r["rejected"]),
            "responses",
            goal="0",
            met=r["rejected"] == 0,
        ),
        Figure(
            f"Stripe requests per charge{v.label}",
            r["requests_per_charge"],
            "requests",
            notes="forwarded requests ÷ charges (create, retrieve, confirm, and retries)",
        ),
    ]


async def run(m: int, *, limit: float = 25.0, variants: Sequence[Variant] = VARIANTS) -> Report:
    started = time.monotonic()
    params = {
        "subscriptions": m,
        "stripe_limit_rps": limit,
        "limiter_share": TARGET_SHARE,
        "target_charges_per_s": charge_rate(limit),
        "variants": [v.key for v in variants],
        "kakin_activity_worker_processes": ACTIVITY_WORKERS,
    }
    results: dict[str, dict[str, Any]] = {}
    with temp_dir("spike") as work:
        async with dev_server(work) as server, localstripe(work) as stripe:
            client = server.client
            tag = secrets.token_hex(3)
            lead = 5.0 + m / 20.0

            # -- bare baseline ------------------------------------------------------------
            bare_queue = f"bench-spike-bare-{tag}"
            due = stack.due_after(lead)
            progress(f"bare: {m} workflows due at once at {due:%X}")
            async with stack.bare_worker(client, bare_queue):
                await stack.start_bare(
                    client, task_queue=bare_queue, count=m, due=due, prefix=f"spike-bare-{tag}"
                )
                done: list[float] = []

                def bare_count() -> int:
                    done.extend(stack.take_done())
                    return len(done)

                await stack.wait_until(bare_count, m, what="bare activities", timeout=60 + m)
            bare_p50, bare_p99, bare_peak = _lags(due, done)
            bare = {"p50": bare_p50, "p99": bare_p99, "peak_per_s": bare_peak}
            progress(f"bare: p50 {bare_p50:.1f} s, p99 {bare_p99:.1f} s, peak {bare_peak}/s")

            # -- kakin behind the limiter, each variant -----------------------------------------
            for variant in variants:
                results[variant.key] = await _kakin(server, stripe, work, m, limit, variant)
    figures = [f for v in variants for f in _figures(results[v.key], bare, v, m, limit)]
    return Report(
        command="spike",
        params=params,
        figures=figures,
        details={"ideal_p99_s": m / charge_rate(limit), "bare": bare, **results},
        seconds=time.monotonic() - started,
    )
