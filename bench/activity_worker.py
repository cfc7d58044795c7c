"""An activity-only worker process for ``bench cycles --activity-workers K``.

``python -m bench.activity_worker --address A --task-queue Q --kind kakin|bare ...``
polls Q for activities only, as ``python worker.py --role activities`` does in a
deployment: for ``kakin`` the production activities (``kakin.runtime.build_worker`` with role
``activities``) on bench.stack's Kakin (the run's PostgreSQL database, localstripe and
outbox); for ``bare`` the no-op activity. The bench process keeps the workflows.

It prints ``ready`` once polling, then, for ``bare``, ``done <unix time>`` per no-op
activity (the bench times the baseline by those lines); it stops when stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

from bench.common import quiet_core_logs


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.activity_worker")
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--kind", choices=["kakin", "bare"], required=True)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--database-url", help="kakin: the run's database")
    parser.add_argument("--stripe-url", help="kakin: the run's localstripe")
    parser.add_argument("--outbox", type=Path, help="kakin: the run's outbox")
    parser.add_argument(
        "--stripe-request-rate", type=float, help="kakin: this process's Stripe requests/s"
    )
    args = parser.parse_args(argv)
    quiet_core_logs()
    client = await Client.connect(args.address)
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(args.threads, thread_name_prefix="kakin-activity") as executor:
        if args.kind == "kakin":
            from bench.stack import make_kakin
            from kakin.adapters.pdf import warm_up
            from kakin.runtime import build_worker

            kakin = make_kakin(
                args.database_url, args.stripe_url, args.outbox,
                stripe_request_rate=args.stripe_request_rate,
            )  # fmt: skip
            warm_up()  # as kakin.runtime.run_worker does before polling
            worker = build_worker(
                client,
                task_queue=args.task_queue,
                activities=kakin.activities(),
                executor=executor,
                role="activities",
            )
        else:
            from bench import bare

            def report(at: float) -> None:
                print(f"done {at}", flush=True)

            bare.ON_DONE = report
            worker = Worker(
                client,
                task_queue=args.task_queue,
                activities=[bare.noop],
                activity_executor=executor,
                max_concurrent_activities=args.threads,
            )
        async with worker:
            print("ready", flush=True)
            # Until the bench closes our stdin (or dies, which closes it too).
            await loop.run_in_executor(None, sys.stdin.read)
        if args.kind == "kakin":
            kakin.close()


if __name__ == "__main__":
    asyncio.run(main())
