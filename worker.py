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

import sys

from kakin.runtime import (  # noqa: F401  (the names tests and the bench import from here)
    ROLES,
    STRIPE_REQUESTS_PER_CHARGE,
    WORKFLOWS,
    build_stripe_worker,
    build_worker,
    run_worker,
)
from kakin.runtime import worker_main as main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
