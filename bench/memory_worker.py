"""The worker process that ``bench memory`` measures (one per kind, so its RSS is clean).

``python -m bench.memory_worker --address A --task-queue Q --kind subscription|bare
--cache N`` runs a worker like kakin.runtime.build_worker's (same workflows and activities
for ``subscription``, only the idle bare workflow for ``bare``) with room for N
cached workflows. It prints ``ready``, then answers each ``rss`` line on stdin with
its resident set size in KiB after a garbage collection, until ``quit``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from bench.common import rss_kib


def _worker_kwargs(kind: str, work: Path) -> dict[str, Any]:
    if kind == "bare":
        from bench.bare import IdleWorkflow

        return {"workflows": [IdleWorkflow], "activities": []}
    # The production workflow and activity objects (never called: the workflows sit
    # in their timers), so the process holds what a real worker holds.
    from bench.stack import make_kakin
    from kakin.runtime import WORKFLOWS

    kakin = make_kakin(f"sqlite:///{work / 'unused.db'}", "http://127.0.0.1:9", work / "outbox")
    return {"workflows": WORKFLOWS, "activities": kakin.activities().all()}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--kind", choices=["subscription", "bare"], required=True)
    parser.add_argument("--cache", type=int, required=True)
    parser.add_argument(
        "--passthrough",
        action="append",
        default=[],
        help="what-if: also pass this module through the sandbox (not kakin's setting)",
    )
    args = parser.parse_args()
    extra: dict[str, Any] = {}
    if args.passthrough:
        extra["workflow_runner"] = SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(*args.passthrough)
        )
    client = await Client.connect(args.address)
    loop = asyncio.get_running_loop()
    with (
        tempfile.TemporaryDirectory(prefix="kakin-bench-memory-") as tmp,
        ThreadPoolExecutor(16, thread_name_prefix="kakin-activity") as executor,
    ):
        worker = Worker(
            client,
            task_queue=args.task_queue,
            activity_executor=executor,
            max_concurrent_activities=16,
            max_cached_workflows=args.cache,
            **_worker_kwargs(args.kind, Path(tmp)),
            **extra,
        )
        async with worker:
            print("ready", flush=True)
            while True:
                line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
                if line == "rss":
                    gc.collect()
                    print(rss_kib_self(), flush=True)
                elif line in ("quit", ""):
                    break


def rss_kib_self() -> int:
    import os

    return rss_kib(os.getpid())


if __name__ == "__main__":
    asyncio.run(main())
