"""Figure 5: worker memory per idle cached subscription workflow, against a bare one.

For each kind, a fresh worker process (bench.memory_worker) with room for every
workflow in its cache; a few warm-up workflows load the modules and the sandbox;
then K workflows that sleep in a long timer (a subscription whose first bill is a
month away; the bare ``IdleWorkflow``). Per workflow = (RSS after − RSS before) ÷ K,
both after a garbage collection, read from /proc.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.client import Client

from bench.bare import IdleWorkflow
from bench.common import Figure, Report, dev_server, progress, temp_dir
from billing.calendar import Interval
from models.payloads import SubscriptionInput
from workflows.subscription import SubscriptionWorkflow

SIZES = {"tiny": 50, "small": 200, "full": 1000}
WARM_UP = 10
GOAL_KIB = 100
ROOT = Path(__file__).resolve().parent.parent


class Child:
    """A memory_worker subprocess and its stdin/stdout protocol."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(
        cls, address: str, queue: str, kind: str, cache: int, passthrough: Sequence[str] = ()
    ) -> Child:
        extra = [arg for module in passthrough for arg in ("--passthrough", module)]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.memory_worker", "--address", address,
            "--task-queue", queue, "--kind", kind, "--cache", str(cache), *extra,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=str(ROOT),
        )  # fmt: skip
        child = cls(process)
        line = await child._line(timeout=60)
        if line != "ready":
            raise RuntimeError(f"memory worker did not start: {line!r}")
        return child

    async def _line(self, timeout: float) -> str:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        return raw.decode().strip()

    async def rss(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.write(b"rss\n")
        await self.process.stdin.drain()
        return int(await self._line(timeout=60))

    async def stop(self) -> None:
        if self.process.returncode is not None:
            return
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(b"quit\n")
            await self.process.stdin.drain()
            await asyncio.wait_for(self.process.wait(), 20)
        except (TimeoutError, OSError):
            self.process.kill()
            await self.process.wait()


async def _start(client: Client, kind: str, queue: str, ids: list[str]) -> None:
    semaphore = asyncio.Semaphore(16)
    month_away = datetime.now(UTC) + timedelta(days=30)

    async def one(workflow_id: str) -> None:
        async with semaphore:
            if kind == "bare":
                await client.start_workflow(IdleWorkflow.run, 30, id=workflow_id, task_queue=queue)
            else:
                await client.start_workflow(
                    SubscriptionWorkflow.run,
                    SubscriptionInput(
                        subscription_id=workflow_id.removeprefix("subscription-"),
                        customer_id="cus_bench_memory",
                        price_id="price_bench_memory",
                        interval=Interval.MONTH,
                        start_at=month_away,
                    ),
                    id=workflow_id,
                    task_queue=queue,
                )

    await asyncio.gather(*(one(i) for i in ids))


async def _wait_idle(client: Client, ids: list[str], timeout: float) -> None:
    """Until every workflow has completed its first task (it now sits in its timer)."""
    pending = list(ids)
    semaphore = asyncio.Semaphore(16)
    deadline = time.monotonic() + timeout

    async def busy(workflow_id: str) -> bool:
        async with semaphore:
            described = await client.get_workflow_handle(workflow_id).describe()
        raw = described.raw_description
        return raw.HasField("pending_workflow_task") or len(raw.pending_activities) > 0

    while pending:
        flags = await asyncio.gather(*(busy(i) for i in pending))
        pending = [i for i, b in zip(pending, flags, strict=True) if b]
        if pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} workflows still busy after {timeout:.0f} s")
            await asyncio.sleep(0.5)


async def _measure(
    client: Client, address: str, kind: str, k: int, passthrough: Sequence[str] = ()
) -> dict[str, float]:
    queue = f"bench-memory-{kind}-{secrets.token_hex(3)}"
    prefix = "subscription-bench-mem" if kind == "subscription" else "bare-idle"
    child = await Child.start(address, queue, kind, cache=k + WARM_UP + 50, passthrough=passthrough)
    kind = f"{kind} (passing through {', '.join(passthrough)})" if passthrough else kind
    try:
        warm = [f"{prefix}-warm-{i}-{secrets.token_hex(2)}" for i in range(WARM_UP)]
        await _start(client, kind, queue, warm)
        await _wait_idle(client, warm, 60)
        before = await child.rss()
        ids = [f"{prefix}-{i}-{secrets.token_hex(2)}" for i in range(k)]
        progress(f"{kind}: {k} idle workflows into a worker at {before / 1024:.1f} MiB RSS")
        await _start(client, kind, queue, ids)
        await _wait_idle(client, ids, 60 + k)
        await asyncio.sleep(1.0)
        after = await child.rss()
    finally:
        await child.stop()
    per = (after - before) / k
    progress(f"{kind}: RSS {before / 1024:.1f} → {after / 1024:.1f} MiB, {per:.1f} KiB each")
    return {"rss_before_kib": before, "rss_after_kib": after, "kib_per_workflow": per}


async def run(k: int) -> Report:
    started = time.monotonic()
    with temp_dir("memory") as work:
        async with dev_server(work) as server:
            bare = await _measure(server.client, server.address, "bare", k)
            sub = await _measure(server.client, server.address, "subscription", k)
    figures = [
        Figure(
            "worker RSS per idle cached subscription",
            sub["kib_per_workflow"],
            "KiB",
            baseline=bare["kib_per_workflow"],
            baseline_what="bare idle workflow (one timer)",
            goal=f"≤ {GOAL_KIB}",
            met=sub["kib_per_workflow"] <= GOAL_KIB,
        )
    ]
    return Report(
        command="memory",
        params={"workflows_per_kind": k, "warm_up": WARM_UP},
        figures=figures,
        details={
            "bare": bare,
            "subscription": sub,
        },
        seconds=time.monotonic() - started,
    )
