"""The bare baselines: the least a workflow can do per cycle on the same server.

``BareCycleWorkflow`` sleeps until a due time, then runs one no-op activity: one timer
and one activity per cycle, the floor under a renewal. ``IdleWorkflow`` only sleeps,
the floor under an idle cached subscription. Only temporalio is imported here, so the
workflow sandbox loads nothing else.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import activity, workflow

# Wall-clock completion times of the no-op activity in this process (the bench
# reads them to time the baseline the way it reads the outbox for kakin).
_done_lock = threading.Lock()
DONE_AT: list[float] = []
# In an activity-only process (bench.activity_worker), how a completion is reported.
ON_DONE: Callable[[float], None] | None = None


@activity.defn(name="bench_noop")
def noop(due_iso: str) -> None:
    """A synchronous no-op, run in the worker's thread pool like kakin's activities."""
    now = time.time()
    with _done_lock:
        DONE_AT.append(now)
        if ON_DONE is not None:
            ON_DONE(now)


def take_done() -> list[float]:
    with _done_lock:
        done = list(DONE_AT)
        DONE_AT.clear()
    return done


@workflow.defn(name="BenchBareCycle")
class BareCycleWorkflow:
    @workflow.run
    async def run(self, due_iso: str) -> None:
        due = datetime.fromisoformat(due_iso)
        delay = due - workflow.now()
        if delay > timedelta(0):
            await workflow.sleep(delay)
        await workflow.execute_activity(noop, due_iso, start_to_close_timeout=timedelta(seconds=30))


@workflow.defn(name="BenchIdle")
class IdleWorkflow:
    @workflow.run
    async def run(self, days: int) -> None:
        await workflow.sleep(timedelta(days=days))
