"""The kakin worker: runs SubscriptionWorkflow and the billing activities.

``python worker.py`` (or ``kakin worker``) connects to KAKIN_TEMPORAL_ADDRESS and polls
the task queue KAKIN_TASK_QUEUE (default ``billing``) until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.worker import Worker

from activities.billing import BillingActivities
from kakin import wiring
from kakin.settings import Settings, get_settings
from workflows.subscription import SubscriptionWorkflow

WORKFLOWS = [SubscriptionWorkflow]
# create + confirm for a first try (charge_invoice); a retry adds a retrieve.
STRIPE_REQUESTS_PER_CHARGE = 2
log = logging.getLogger("kakin.worker")


def build_worker(
    client: Client,
    *,
    task_queue: str,
    activities: BillingActivities,
    executor: ThreadPoolExecutor,
) -> Worker:
    """A worker for the billing task queue; activities run in ``executor`` threads."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=activities.activities(),
        activity_executor=executor,
        max_concurrent_activities=executor._max_workers,
    )


def build_stripe_worker(
    client: Client,
    *,
    task_queue: str,
    activities: BillingActivities,
    executor: ThreadPoolExecutor,
    stripe_rate_limit: float,
) -> Worker:
    """A worker for the charge task queue, held to 80% of Stripe's rate limit.

    The limit is the task queue's, enforced by the Temporal server across every worker
    polling it: a month-start spike of renewals queues charges instead of earning 429s.
    A charge makes up to STRIPE_REQUESTS_PER_CHARGE requests, so the queue runs that
    many times fewer charges per second than Stripe takes requests.
    """
    return Worker(
        client,
        task_queue=task_queue,
        activities=[activities.charge_invoice],
        activity_executor=executor,
        max_concurrent_activities=executor._max_workers,
        max_task_queue_activities_per_second=0.8 * stripe_rate_limit / STRIPE_REQUESTS_PER_CHARGE,
    )


async def run_worker(
    settings: Settings, *, client: Client | None = None, stop: asyncio.Event | None = None
) -> None:
    """Run until ``stop`` is set (or, without one, until SIGINT/SIGTERM)."""
    client = client or await wiring.temporal_client(settings)
    activities = wiring.billing_activities(settings)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="kakin-activity") as executor:
        workers = [
            build_worker(
                client, task_queue=settings.task_queue, activities=activities, executor=executor
            )
        ]
        if settings.stripe_task_queue:
            workers.append(
                build_stripe_worker(
                    client,
                    task_queue=settings.stripe_task_queue,
                    activities=activities,
                    executor=executor,
                    stripe_rate_limit=settings.stripe_rate_limit,
                )
            )
        async with contextlib.AsyncExitStack() as running:
            for worker in workers:
                await running.enter_async_context(worker)
            log.info(
                "worker polling task queue(s) %s at %s",
                ", ".join(repr(w.task_queue) for w in workers),
                settings.temporal_address,
            )
            await stop.wait()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run_worker(get_settings()))


if __name__ == "__main__":
    main()
