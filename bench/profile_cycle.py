"""Where a renewal's CPU goes in the worker: its activities under cProfile.

``python -m bench.profile_cycle [-n 30] [--threads 16] [--top 25] [--sort cumulative]``

Runs the activities of ``n`` renewals directly, one after the other, on the objects
``kakin.runtime.build_worker`` gets (``bench.stack.make_kakin(...).activities()``): a private
PostgreSQL database, a private localstripe, an outbox in a temp dir; no Temporal. Each
renewal is a fresh subscription's first invoice, through the two activities a renewal
runs since ``run-of-renewals``: ``issue_and_charge_invoice`` (create + number, then the
stripe SDK → localstripe; its two halves are timed apart as ``· issue`` and
``· charge``) and ``render_and_email`` (HTML, PDF, receipt).

It prints the CPU milliseconds (``time.thread_time``: this thread's CPU, not time spent
waiting on PostgreSQL or localstripe) per activity per cycle, then cProfile's top
functions, timed in CPU seconds too. The first cycle is a warm-up (imports, PyMuPDF,
template compilation) and is left out of both. With ``--threads T`` it also runs ``n``
more cycles on T threads at
once, as the worker's activity pool does, and prints the process CPU per cycle there:
what the threads add (GIL hand-offs) on top of the one-thread figure.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import stack
from bench.common import localstripe, postgres_database, progress, temp_dir
from kakin.services.subscriptions import workflow_id
from models.payloads import (
    ChargeOutcome,
    EmailRequest,
    IssueAndChargeRequest,
    SubscriptionStatus,
)
from models.repositories.common import new_id
from models.tables import Subscription

ACTIVITIES = ("issue_and_charge_invoice", "· issue", "· charge", "render_and_email")
# Timed inside issue_and_charge_invoice, so not added again to the total.
PARTS = ("· issue", "· charge")


def _subscriptions(kakin: stack.Kakin, customers: list[str], price_id: str, n: int) -> list[str]:
    """``n`` active subscription rows (no workflows: the activities are called directly)."""
    ids = []
    with kakin.sessions() as session:
        for number in range(n):
            sub_id = new_id("sub")
            session.add(
                Subscription(
                    id=sub_id,
                    customer_id=customers[number % len(customers)],
                    price_id=price_id,
                    quantity=1,
                    status=SubscriptionStatus.ACTIVE,
                    billing_cycle_anchor=datetime.now(UTC),
                    workflow_id=workflow_id(sub_id),
                    test_clock=False,
                    metadata_={},
                )
            )
            ids.append(sub_id)
        session.commit()
    return ids


class _Parts:
    """The activity's two halves, timed where it calls them (``clock`` per call)."""

    def __init__(self, target: Any, clock: Callable[[str, Callable[[], Any]], Any]) -> None:
        self._target, self._clock = target, clock

    def issue_invoice(self, request: Any) -> Any:
        return self._clock("· issue", lambda: self._target.issue_invoice(request))

    def charge_invoice(self, request: Any) -> Any:
        return self._clock("· charge", lambda: self._target.charge_invoice(request))


def _cycle(activities: Any, sub_id: str, clock: Callable[[str, Callable[[], Any]], Any]) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    renewals = activities.renewals
    renewals._invoicing = _Parts(activities.invoicing, clock)
    renewals._payments = _Parts(activities.payments, clock)
    issued = clock(
        "issue_and_charge_invoice",
        lambda: renewals.issue_and_charge_invoice(
            IssueAndChargeRequest(
                subscription_id=sub_id,
                period_index=0,
                period_start=now,
                period_end=now + timedelta(days=30),
                issued_at=now,
            )
        ),
    )
    renewals._invoicing, renewals._payments = activities.invoicing, activities.payments
    assert issued.charge.outcome == ChargeOutcome.SUCCEEDED, issued
    ref = issued.invoice
    clock(
        "render_and_email",
        lambda: activities.notifications.render_and_email(
            EmailRequest(
                kind="receipt",
                business_key=f"email:receipt:{ref.invoice_id}:0",
                subscription_id=sub_id,
                invoice_id=ref.invoice_id,
                occurred_at=now,
            )
        ),
    )


async def run(n: int, top: int, sort: str, threads: int = 1) -> None:
    with temp_dir("profile") as work:
        async with localstripe(work) as stripe:
            with postgres_database("profile") as database:
                kakin = stack.make_kakin(database.url, stripe.url, work / "outbox")
                database.before_drop.append(kakin.close)
                customers, price_id = await stack.make_customers(kakin, min(n + 1, 10))
                subs = _subscriptions(kakin, customers, price_id, n + 1)
                activities = kakin.activities()
                cpu: dict[str, float] = dict.fromkeys(ACTIVITIES, 0.0)
                wall: dict[str, float] = dict.fromkeys(ACTIVITIES, 0.0)
                pooled = (0.0, 0.0)

                def untimed(name: str, call: Callable[[], Any]) -> Any:
                    return call()

                def timed(name: str, call: Callable[[], Any]) -> Any:
                    c0, w0 = time.thread_time(), time.perf_counter()
                    result = call()
                    cpu[name] += time.thread_time() - c0
                    wall[name] += time.perf_counter() - w0
                    return result

                progress("warm-up cycle")
                _cycle(activities, subs[0], untimed)
                progress(f"{n} cycles, timed")
                for sub_id in subs[1:]:
                    _cycle(activities, sub_id, timed)
                if threads > 1:
                    progress(f"{n} cycles on {threads} threads (the worker's pool)")
                    more = _subscriptions(kakin, customers, price_id, n)
                    c0, w0 = time.process_time(), time.perf_counter()
                    with ThreadPoolExecutor(threads) as pool:
                        list(pool.map(lambda sub: _cycle(activities, sub, untimed), more))
                    pooled = (time.process_time() - c0, time.perf_counter() - w0)
                progress(f"{n} cycles, under cProfile")
                cpu_timed = dict(cpu)
                wall_timed = dict(wall)
                subs_profiled = _subscriptions(kakin, customers, price_id, n)
                # CPU time, not wall: waiting on PostgreSQL or localstripe costs no CPU.
                profiler = cProfile.Profile(time.thread_time)
                profiler.enable()
                for sub_id in subs_profiled:
                    _cycle(activities, sub_id, untimed)
                profiler.disable()
                emails = stack.count_eml(kakin.outbox)
    print(f"{n} cycles (+1 warm-up), {emails} receipts in the outbox")
    print(f"{'activity':<26} {'CPU ms/cycle':>12} {'wall ms/cycle':>14}")
    for name in ACTIVITIES:
        print(f"{name:<26} {1000 * cpu_timed[name] / n:12.1f} {1000 * wall_timed[name] / n:14.1f}")
    total_cpu = sum(v for k, v in cpu_timed.items() if k not in PARTS)
    total_wall = sum(v for k, v in wall_timed.items() if k not in PARTS)
    print(f"{'total':<26} {1000 * total_cpu / n:12.1f} {1000 * total_wall / n:14.1f}")
    if threads > 1:
        print(
            f"on {threads} threads: {1000 * pooled[0] / n:.1f} ms process CPU per cycle, "
            f"{n / pooled[1]:.1f} cycles/s"
        )
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats(sort).print_stats(top)
    print(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_cycle", description=__doc__)
    parser.add_argument("-n", type=int, default=30, help="cycles to time and profile")
    parser.add_argument("--top", type=int, default=30, help="functions to list")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="also run n cycles on this many threads at once (16: the worker's pool)",
    )  # fmt: skip
    parser.add_argument("--sort", default="cumulative", help="pstats sort key (tottime...)")
    args = parser.parse_args(argv)
    asyncio.run(run(args.n, args.top, args.sort, args.threads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
