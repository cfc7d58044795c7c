"""The kakin worker: runs SubscriptionWorkflow and the billing activities.

``python worker.py`` (or ``kakin worker``) connects to KAKIN_TEMPORAL_ADDRESS and polls
the task queue KAKIN_TASK_QUEUE (default ``billing``) until Ctrl-C or SIGTERM.

One process runs the workflows and the activities by default. ``--role workflows`` or
``--role activities`` (KAKIN_WORKER_ROLE) runs only one kind, so the activities' CPU
(invoice PDFs, Stripe calls, email) can be spread over more processes polling the same
queues: e.g. ``python worker.py --role workflows`` once and ``python worker.py --role
activities`` two or three times. Each queue needs a worker of each kind running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.worker import Worker

import starter
from activities.billing import BillingActivities
from kakin import wiring
from kakin.adapters import pdf
from kakin.platform.codec import EncryptionKeyError
from kakin.platform.settings import ConfigurationError, Settings, get_settings
from workflows.subscription import SubscriptionWorkflow

WORKFLOWS = [SubscriptionWorkflow]
ROLES = ("all", "workflows", "activities")
# create + confirm for a first try (charge_invoice); a retry adds a retrieve.
STRIPE_REQUESTS_PER_CHARGE = 2
log = logging.getLogger("kakin.worker")


def build_worker(
    client: Client,
    *,
    task_queue: str,
    activities: BillingActivities,
    executor: ThreadPoolExecutor | None,
    role: str = "all",
) -> Worker:
    """A worker for the billing task queue; activities run in ``executor`` threads.

    ``role`` (KAKIN_WORKER_ROLE): ``all`` runs the workflows and the activities,
    ``workflows`` only the workflows (no executor needed), ``activities`` only the
    activities. Workers of different roles polling one task queue share its work.
    """
    if role not in ROLES:
        raise ValueError(f"unknown worker role {role!r}; known roles: {', '.join(ROLES)}")
    run_activities = role != "workflows"
    if run_activities and executor is None:
        raise ValueError(f"a worker with role {role!r} needs an activity executor")
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS if role != "activities" else [],
        activities=activities.activities() if run_activities else [],
        activity_executor=executor if run_activities else None,
        max_concurrent_activities=executor._max_workers if run_activities and executor else None,
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
    A charge makes STRIPE_REQUESTS_PER_CHARGE requests (retries aside), so the queue
    runs that many times fewer charges per second than Stripe takes requests.
    """
    return Worker(
        client,
        task_queue=task_queue,
        activities=[activities.payments.charge_invoice],
        activity_executor=executor,
        max_concurrent_activities=executor._max_workers,
        max_task_queue_activities_per_second=0.8 * stripe_rate_limit / STRIPE_REQUESTS_PER_CHARGE,
    )


async def run_worker(
    settings: Settings, *, client: Client | None = None, stop: asyncio.Event | None = None
) -> None:
    """Run until ``stop`` is set (or, without one, until SIGINT/SIGTERM)."""
    # The activities first: a refused setting (ConfigurationError) is reported before
    # anything connects, not after the worker has reached Temporal.
    activities = wiring.billing_activities(settings)
    client = client or await wiring.temporal_client(settings)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    if settings.worker_role != "workflows" and settings.attach_invoice_pdf:
        await asyncio.to_thread(pdf.warm_up)  # before polling: no first receipt waits for it
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="kakin-activity") as executor:
        workers = [
            build_worker(
                client,
                task_queue=settings.task_queue,
                activities=activities,
                executor=executor,
                role=settings.worker_role,
            )
        ]
        # The charge queue has activities only: a workflow-only process leaves it alone.
        if settings.stripe_task_queue and settings.worker_role != "workflows":
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
                "worker (%s) polling task queue(s) %s at %s",
                settings.worker_role,
                ", ".join(repr(w.task_queue) for w in workers),
                settings.temporal_address,
            )
            await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Run a worker; ``argv`` is ``python worker.py``'s arguments (``kakin worker`` passes
    none: it takes the role from KAKIN_WORKER_ROLE).

    Returns the exit code: 0 when stopped, 2 when the configuration is refused (one
    line naming the setting on stderr, no traceback).
    """
    parser = argparse.ArgumentParser(prog="python worker.py", description=__doc__)
    parser.add_argument(
        "--role", choices=ROLES, help="what to run (default KAKIN_WORKER_ROLE, else all)"
    )
    starter.add_connection_options(parser)
    args = parser.parse_args(argv or [])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = starter.settings_from(args, get_settings())  # KAKIN_* and the options
        if args.role:
            settings = settings.model_copy(update={"worker_role": args.role})
        asyncio.run(run_worker(settings))
    except (ConfigurationError, EncryptionKeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
