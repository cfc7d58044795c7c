"""Figure 1: billing cycles per second, end to end, against a bare timer+activity cycle.

N subscriptions are started with their billing date ``due`` a little in the future,
so each one sleeps on a timer, wakes at ``due`` and runs the real cycle: create and
finalize the invoice (PostgreSQL), charge it (stripe SDK → localstripe), render it,
email the receipt (outbox), continue as new. Every cycle starts at ``due``; the rate
is N ÷ (last receipt written − due). The bare baseline does the same with N
workflows of one timer and one no-op activity, on the same server with the same
worker settings, right before.

Both phases use the same worker layout (``--activity-workers K``, printed in the
parameters): K = 0 is one process running workflows and activities, as one
``python worker.py`` does; K > 0 keeps the workflows in the bench process and runs the
activities in K processes (``python worker.py --role activities``), so the activities'
CPU (invoice PDFs above all) is not held to one GIL. The CPU of every worker process is
in the details, with per-cycle figures.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from datetime import datetime, timedelta

from bench import stack
from bench.common import (
    CpuMeter,
    Figure,
    Report,
    dev_server,
    localstripe,
    percentile,
    postgres_database,
    progress,
    temp_dir,
)

SIZES = {"tiny": 10, "small": 50, "full": 2000}
GOAL_RATIO = 0.5
# Activity-only worker processes beside the bench's workflow worker (--activity-workers);
# 0 runs workflows and activities in the bench process, as one `python worker.py` does.
# 2 measured best on the 2-core machine (-n 300, 2026-11-24): 0 holds every activity to
# the workflow worker's GIL, 3 adds a process more than there are cores.
DEFAULT_ACTIVITY_WORKERS = 2


def _lead(n: int) -> float:
    """Seconds between starting and ``due``: every start lands before anything is due."""
    return 5.0 + n / 20.0


async def _sleep_until(due: datetime) -> None:
    """Until ``due``: CPU is metered over the cycles' window only."""
    await asyncio.sleep(max(0.0, due.timestamp() - time.time()))


def _rate(n: int, due: datetime, done_at: list[float]) -> tuple[float, float]:
    """(cycles per second, window seconds) from completion wall times."""
    window = max(done_at) - due.timestamp()
    return n / window, window


def _layout(activity_workers: int) -> str:
    if not activity_workers:
        return "1 process: workflows + activities (16 threads)"
    return (
        f"1 workflow process (the bench) + {activity_workers} activity process(es) "
        "(worker.build_worker role=activities, 16 threads each)"
    )


def _per_cycle(cpu: dict[str, float], n: int) -> dict[str, float]:
    """CPU ms per cycle of the worker processes (bench + activity workers) and the server."""
    workers = sum(v for k, v in cpu.items() if k.startswith(("bench_worker", "activity_worker")))
    return {
        "worker_processes_cpu_ms_per_cycle": round(1000 * workers / n, 1),
        "temporal_cpu_ms_per_cycle": round(1000 * cpu.get("temporal_cpu_s", 0.0) / n, 1),
    }


async def run(
    n: int,
    *,
    customers: int | None = None,
    activity_workers: int = DEFAULT_ACTIVITY_WORKERS,
    steady: bool = False,
) -> Report:
    """With ``steady``, each subscription is on a daily price and starts a day before
    ``due``: it bills its first period as it starts (before the timed window), and at
    ``due`` it renews. The figure is then a renewal's, as on the 1st of the month (no
    start-only events: patch markers, the creation upsert), not a first cycle's."""
    started = time.monotonic()
    layout = _layout(activity_workers)
    params = {
        "subscriptions": n,
        "cycle": "renewal (second cycle)" if steady else "first cycle",
        "lead_s": _lead(n),
        "activity_workers": activity_workers,
        "kakin_worker": layout,
        "bare_worker": _layout(activity_workers).replace("role=activities", "the no-op activity"),
    }
    progress(f"worker layout (both phases): {layout}")
    with temp_dir("cycles") as work:
        async with dev_server(work) as server, localstripe(work) as stripe:
            client = server.client
            tag = secrets.token_hex(3)

            # -- bare baseline ------------------------------------------------------------
            bare_queue = f"bench-bare-{tag}"
            due = stack.due_after(_lead(n))
            progress(f"bare: starting {n} workflows (timer → no-op activity) due at {due:%X}")
            pids = {"temporal": server.process.pid, "localstripe": stripe.pid,
                    "bench_worker": os.getpid()}  # fmt: skip
            bare_pids = dict(pids)
            async with stack.bare_worker(
                client, bare_queue, activity_workers=activity_workers, pids=bare_pids
            ):
                await stack.start_bare(
                    client, task_queue=bare_queue, count=n, due=due, prefix=f"bare-{tag}"
                )
                await _sleep_until(due)
                meter = CpuMeter(bare_pids)
                bare_late = time.time() - due.timestamp()
                if bare_late > 0:
                    progress(f"  warning: starting ended {bare_late:.1f} s after due")
                done: list[float] = []

                def bare_count() -> int:
                    done.extend(stack.take_done())
                    return len(done)

                await stack.wait_until(bare_count, n, what="bare cycles", timeout=60 + n)
                bare_cpu = meter.stop()
            bare_rate, bare_window = _rate(n, due, done)
            progress(f"bare: {bare_rate:.1f} cycles/s ({n} in {bare_window:.1f} s)")
            bare_runs = await stack.sample_runs(
                client, 'WorkflowType = "BenchBareCycle" AND ExecutionStatus = "Completed"'
            )

            # -- kakin ---------------------------------------------------------------------
            with postgres_database("cycles") as database:
                kakin = stack.make_kakin(database.url, stripe.url, work / "outbox")
                database.before_drop.append(kakin.close)
                pool = customers or min(n, 100)
                progress(f"kakin: creating {pool} customers (Stripe + database) and a price")
                customer_ids, price_id = await stack.make_customers(
                    kakin, pool, interval="day" if steady else "month"
                )
                queue = f"bench-billing-{tag}"
                kakin_pids = dict(pids)
                async with stack.kakin_worker(
                    client, kakin, queue, activity_workers=activity_workers, pids=kakin_pids
                ):
                    # Steady: time for every first cycle to run before due, too.
                    due = stack.due_after(_lead(n) + (n / 4 if steady else 0))
                    progress(f"kakin: starting {n} subscriptions due at {due:%X}")
                    await stack.start_subscriptions(
                        client, kakin, task_queue=queue, customers=customer_ids,
                        price_id=price_id, count=n, due=due,
                        start_at=due - timedelta(days=1) if steady else None,
                    )  # fmt: skip
                    first = 0
                    if steady:
                        await stack.wait_until(
                            lambda: stack.count_eml(kakin.outbox), n,
                            what="first cycles, before the timed renewals", timeout=120 + 2 * n,
                        )  # fmt: skip
                        first = n
                        if time.time() > due.timestamp():
                            progress("  warning: first cycles ended after due (raise the lead)")
                    late = time.time() - due.timestamp()
                    if late > 0:
                        progress(f"  warning: starting ended {late:.1f} s after due")
                    await _sleep_until(due)
                    meter = CpuMeter(kakin_pids)
                    await stack.wait_until(
                        lambda: stack.count_eml(kakin.outbox), first + n,
                        what="kakin cycles (receipts in the outbox)", timeout=120 + 2 * n,
                    )  # fmt: skip
                    sent = sorted(stack.outbox_times(kakin.outbox))[first:]
                    kakin_cpu = meter.stop()
                    # The last step of a cycle is the NextRenewalAt upsert and the next
                    # timer (continue-as-new before run-of-renewals): let it land.
                    await asyncio.sleep(1.0)
                kakin_rate, kakin_window = _rate(n, due, sent)
                latencies = [t - due.timestamp() for t in sent]
                progress(f"kakin: {kakin_rate:.1f} cycles/s ({n} in {kakin_window:.1f} s)")
                # A run that billed its first cycle: open, waiting for the next renewal
                # (run-of-renewals), or closed by continue-as-new (the .v3 workflow).
                kakin_runs = await stack.sample_runs(
                    client,
                    'WorkflowType = "SubscriptionWorkflow" AND '
                    '(ExecutionStatus = "ContinuedAsNew" OR ExecutionStatus = "Running")',
                )
    ratio = kakin_rate / bare_rate
    figures = [
        Figure(
            "cycles per second",
            kakin_rate,
            "cycles/s",
            baseline=bare_rate,
            baseline_what="timer + no-op activity",
            goal=f"ratio ≥ {GOAL_RATIO}",
            met=ratio >= GOAL_RATIO,
        ),
        Figure(
            "p50 due → receipt",
            percentile(latencies, 50),
            "s",
            notes="all cycles due at once: queueing, not a single cycle's latency",
        ),
    ]
    if steady:
        # A sampled run holds the first cycle too (run-of-renewals): bench cost counts
        # a renewal's transitions-free figures (actions, events, bytes) per renewal.
        kakin_runs = None
    if kakin_runs and bare_runs:
        figures.append(
            Figure(
                "state transitions per cycle",
                kakin_runs["state_transitions"],
                "transitions",
                baseline=bare_runs["state_transitions"],
                baseline_what="timer + no-op activity",
                notes="DescribeWorkflowExecution of runs that billed one cycle (a first one)",
            )
        )
        figures.append(
            Figure(
                "history bytes per cycle (live)",
                kakin_runs["history_bytes"],
                "bytes",
                baseline=bare_runs["history_bytes"],
                baseline_what="timer + no-op activity",
                goal="< 4096",
                met=kakin_runs["history_bytes"] < 4096,
            )
        )
    return Report(
        command="cycles",
        params=params,
        figures=figures,
        details={
            "bare": {
                "rate": bare_rate,
                "window_s": bare_window,
                "runs": bare_runs,
                "cpu": bare_cpu,
                "cpu_per_cycle": _per_cycle(bare_cpu, n),
            },
            "kakin": {
                "rate": kakin_rate,
                "window_s": kakin_window,
                "runs": kakin_runs,
                "cpu": kakin_cpu,
                "cpu_per_cycle": _per_cycle(kakin_cpu, n),
                "starts_ended_after_due_s": max(0.0, late),
                "customers": customers or min(n, 100),
                "p99_due_to_receipt_s": percentile(latencies, 99),
            },
            "stripe": "localstripe (no added latency)",
            "email": "outbox",
            "database": "PostgreSQL (private database, dropped after the run)",
        },
        seconds=time.monotonic() - started,
    )
