"""The edge wiring: real dependencies built from settings, the worker, HTTP serving.

Only the edges call this: the worker (``python worker.py``, ``kakin worker``), the
CLI, ``kakin up``, the API process and the bench. It builds the clients (database,
Temporal, Stripe, mailer), the seller and the activity objects, and runs workers
and HTTP servers with the options every kakin process shares.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, NoReturn

import uvicorn
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from activities.bundle import Activities, build_activities
from activities.notifications import NotificationActivities
from activities.webhooks import WebhookActivities
from kakin import contracts
from kakin.adapters import pdf
from kakin.adapters.mailer import Mailer, OutboxMailer, SendGridMailer
from kakin.adapters.rendering import make_template_env
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.adapters.stripe_pacing import TokenBucket
from kakin.platform import codec, metrics, temporal_connection, tracing
from kakin.platform.codec import EncryptionKeyError, keyring_from_settings
from kakin.platform.settings import (
    EMBEDDED_CONSOLE_SECRET,
    EMBEDDED_LINK_SECRET,
    ConfigurationError,
    Settings,
    get_settings,
)
from kakin.services.invoice_documents import Seller
from kakin.services.staff_sessions import ConsolePolicy, SessionPolicy
from kakin.services.staff_throttle import ThrottlePolicy
from kakin.services.webhook_deliveries import EventShaper
from models.db import make_engine, make_session_factory, migrate
from models.payloads import EmailRequest
from models.webhook_payloads import DispatchInput
from workflows.subscription import SubscriptionWorkflow
from workflows.webhooks import WebhookDeliveryWorkflow, WebhookDispatchWorkflow

WORKER_DOC = """The kakin worker: runs SubscriptionWorkflow and the billing activities.

``python worker.py`` (or ``kakin worker``) connects to KAKIN_TEMPORAL_ADDRESS and polls
the task queue KAKIN_TASK_QUEUE (default ``billing``) until Ctrl-C or SIGTERM.

One process runs the workflows and the activities by default. ``--role workflows`` or
``--role activities`` (KAKIN_WORKER_ROLE) runs only one kind, so the activities' CPU
(invoice PDFs, Stripe calls, email) can be spread over more processes polling the same
queues: e.g. ``python worker.py --role workflows`` once and ``python worker.py --role
activities`` two or three times. Each queue needs a worker of each kind running.

To scale, run more copies with the same settings: they share the queues' work, bind
no port unless one is configured, and each is named by its identity (pid@host).

Prometheus metrics: KAKIN_METRICS_PORT serves kakin's (charges, declines, renewals,
dunning, emails, Stripe latency...) and KAKIN_TEMPORAL_METRICS_PORT the Temporal SDK's
(temporal_*), each at /metrics on KAKIN_METRICS_HOST (default 127.0.0.1); 0 or unset is off.
"""
WORKFLOWS = [SubscriptionWorkflow]
# Outgoing webhooks: run beside the billing when the worker is given the event shaper.
WEBHOOK_WORKFLOWS = [WebhookDispatchWorkflow, WebhookDeliveryWorkflow]
ROLES = ("all", "workflows", "activities")
# create + confirm for a first try (charge_invoice); a retry adds a retrieve.
STRIPE_REQUESTS_PER_CHARGE = 2
# The share of Stripe's rate limit kakin uses (KAKIN_STRIPE_LIMITER_SHARE's default).
STRIPE_LIMITER_SHARE = Settings.model_fields["stripe_limiter_share"].default
log = logging.getLogger("kakin.worker")


def migrate_database(database_url: str) -> None:
    """Bring the database to the newest schema (Alembic upgrade head)."""
    migrate(database_url)


def session_factory(settings: Settings) -> sessionmaker[Session]:
    return make_session_factory(make_engine(settings.database_url))


def stripe_request_rate(settings: Settings) -> float:
    """Stripe requests per second one kakin process sends at most (its bucket's rate)."""
    return settings.stripe_limiter_share * settings.stripe_rate_limit


@functools.cache
def stripe_bucket(rate: float) -> TokenBucket:
    """The process's one Stripe token bucket for ``rate``: every gateway built from the
    settings shares it, so all activity threads (and any other caller) draw from it."""
    return TokenBucket(rate=rate)


def stripe_gateway(settings: Settings) -> StripeGateway:
    return StripeGateway(
        api_key=settings.stripe_api_key,
        api_base=settings.stripe_api_base,
        confirm_off_session=settings.stripe_confirm_off_session,
        bucket=stripe_bucket(stripe_request_rate(settings)),
        rate_limited_retries=settings.stripe_rate_limited_retries,
    )


def mailer(settings: Settings) -> Mailer:
    if settings.email_backend == "sendgrid":
        if not settings.sendgrid_api_key:
            raise ConfigurationError(
                "KAKIN_SENDGRID_API_KEY must be set when KAKIN_EMAIL_BACKEND=sendgrid"
            )
        return SendGridMailer(api_key=settings.sendgrid_api_key, host=settings.sendgrid_host)
    return OutboxMailer(settings.outbox_dir)


def seller(settings: Settings) -> Seller:
    if settings.live_mode and settings.link_secret == EMBEDDED_LINK_SECRET:
        raise ConfigurationError(
            "KAKIN_LINK_SECRET: set it to a long random value before using a live key"
        )
    return Seller(
        name=settings.seller_name,
        address=settings.seller_address,
        registration_number=settings.seller_registration_number,
        payment_update_url=settings.payment_update_url,
        billing_page_url=settings.billing_page_url,
        email_from=settings.email_from,
        email_from_name=settings.email_from_name,
        link_secret=settings.link_secret,
        tax_rounding=settings.tax_rounding,
        attach_invoice_pdf=settings.attach_invoice_pdf,
    )


def console_policy(settings: Settings) -> ConsolePolicy:
    """The staff console's sign-in rules from the settings, refusing what a live key forbids."""
    if settings.live_mode and not settings.console_require_2fa:
        raise ConfigurationError(
            "KAKIN_CONSOLE_REQUIRE_2FA cannot be false with a live Stripe key: every staff "
            "member signs in with two-factor authentication"
        )
    if settings.live_mode and settings.console_secret == EMBEDDED_CONSOLE_SECRET:
        raise ConfigurationError(
            "KAKIN_CONSOLE_SECRET: set it to a long random value before using a live key"
        )
    lock_for = timedelta(minutes=settings.console_lockout_minutes)
    return ConsolePolicy(
        sessions=SessionPolicy(
            idle=timedelta(minutes=settings.console_idle_minutes),
            absolute=timedelta(hours=settings.console_session_hours),
            require_two_factor=settings.console_require_2fa,
        ),
        throttle=ThrottlePolicy(
            lock_after=settings.console_lockout_failures,
            address_lock_after=settings.console_address_lockout_failures,
            lock_for=lock_for,
        ),
    )


def billing_activities(
    settings: Settings,
    *,
    sessions: sessionmaker[Session] | None = None,
    stripe: StripeGateway | None = None,
    mail: Mailer | None = None,
) -> Activities:
    """The invoicing, payment and notification activities, built from the settings."""
    return build_activities(
        session_factory=sessions or session_factory(settings),
        stripe=stripe or stripe_gateway(settings),
        mailer=mail or mailer(settings),
        templates=make_template_env(),
        seller=seller(settings),
    )


# One "send me a link" email per subscription per window: asking again at once finds
# the email sent (its business key) and sends nothing more, so the button cannot be used
# to flood a customer's inbox.
BILLING_LINK_WINDOW_SECONDS = 600


def send_billing_link(
    settings: Settings,
    sessions: sessionmaker[Session],
    subscription_id: str,
    *,
    requested_at: datetime,
    mail: Mailer | None = None,
) -> None:
    """Email the customer a fresh link to their billing page (asked for on the page).

    The same mail path as every other email: the notification activity's ``send_email``
    (templates/email/billing_link.*, the email row's business key, the outbox or
    SendGrid), called here directly since no workflow is involved.
    """
    notifications = NotificationActivities(
        session_factory=sessions, mailer=mail or mailer(settings),
        templates=make_template_env(), seller=seller(settings),
    )  # fmt: skip
    window = int(requested_at.timestamp()) // BILLING_LINK_WINDOW_SECONDS
    notifications.send_email(
        EmailRequest(
            kind="billing_link", business_key=f"email:billing_link:{subscription_id}:{window}",
            subscription_id=subscription_id, occurred_at=requested_at,
        )
    )  # fmt: skip


def webhook_activities(
    settings: Settings, shape_event: EventShaper, *, sessions: sessionmaker[Session] | None = None
) -> WebhookActivities:
    """The outgoing webhooks' activities; ``shape_event`` is ``kakin.views.webhook_events
    .event_data``, handed in by the entry points (views are a layer above this one)."""
    return WebhookActivities(
        session_factory=sessions or session_factory(settings),
        keyring=keyring_from_settings(settings),
        shape_event=shape_event,
        live_mode=settings.live_mode,
        timeout_seconds=settings.webhook_timeout_seconds,
    )


async def ensure_webhook_dispatcher(
    client: Client, *, task_queue: str, poll_seconds: float
) -> None:
    """Start the one ``WebhookDispatchWorkflow`` of the task queue unless it runs."""
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await client.start_workflow(
            contracts.WEBHOOK_DISPATCH_WORKFLOW,
            DispatchInput(poll_seconds=poll_seconds),
            id=contracts.WEBHOOK_DISPATCH_WORKFLOW_ID,
            task_queue=task_queue,
        )


async def temporal_client(settings: Settings, *, runtime_metrics: bool = False) -> Client:
    """A client whose payloads are encrypted with the configured keys (kakin/codec.py).

    ``runtime_metrics`` (the worker's): with KAKIN_TEMPORAL_METRICS_PORT set, the client
    runs on a Temporal runtime serving the SDK's own metrics there (``temporal_runtime``).
    Raises ``EncryptionKeyError`` (a ValueError) naming what to set when no key is configured.
    TLS, an API key (a cluster, Temporal Cloud) and tracing come from the settings
    (kakin/platform/temporal_connection.py); workers built on this client trace too.
    """
    port = settings.temporal_metrics_port if runtime_metrics else 0
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=codec.data_converter_from_settings(settings),
        runtime=temporal_runtime(settings.metrics_host, port) if port else None,
        **temporal_connection.connect_options(settings),
    )


@functools.cache
def temporal_runtime(host: str, port: int) -> Runtime:
    """A Temporal runtime whose telemetry serves the SDK's Prometheus metrics (``temporal_*``:
    task slots, poll and schedule-to-start latencies, sticky cache...) on ``host:port``.

    One per address and process: the runtime binds the port when it is made.
    """
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind)))


# -- serving HTTP (kakin api, kakin codec-server, kakin up, the bench's API servers) ------


def uvicorn_options(*, log_level: str = "info") -> dict[str, Any]:
    """The uvicorn options every kakin HTTP server runs with.

    uvicorn's access log writes the client's address and the raw path with its query
    string: card numbers and emails typed into a URL. ``kakin.api.access``
    (api.middleware) writes the fields it may instead, so uvicorn's is off
    (``access_log=False``), and ``log_config=None`` leaves logging as the process set it
    up: uvicorn's default config, applied when the server starts, would switch
    ``uvicorn.access`` back on after ``build_app`` switched it off.
    """
    return {"access_log": False, "log_config": None, "log_level": log_level}


class HttpServer(uvicorn.Server):
    """uvicorn whose SIGTERM or Ctrl-C stops the server and ends the process with 0.

    uvicorn raises the signal it caught again once it has shut down, so a clean stop
    (``docker stop``, systemd, Ctrl-C) ended as "killed by SIGTERM" (-15, or 143 in a
    container) and looked like a crash. Here the signal only asks the server to stop.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach the main thread only; whoever runs us there handles them
            return
        stopping = (signal.SIGINT, signal.SIGTERM)
        previous = {signum: signal.signal(signum, self.handle_exit) for signum in stopping}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def serve_http(app: Any, *, host: str, port: int) -> None:
    """Serve ``app`` until SIGTERM or Ctrl-C (``kakin api``, ``kakin codec-server``)."""
    HttpServer(uvicorn.Config(app, host=host, port=port, **uvicorn_options())).run()


# -- connection options (python worker.py, python starter.py, kakin) ---------------------


def add_connection_options(parser: argparse.ArgumentParser, *, after_command: bool = False) -> None:
    """``--temporal-address``, ``--namespace`` and ``--task-queue`` on ``parser``.

    The program's parser takes them before the command (``kakin --namespace N status
    ...``); each command that talks to Temporal takes them after it as well
    (``after_command``: ``kakin status ... --namespace N``). There they default to
    SUPPRESS, so a command without them keeps what was given before it, and one given
    after the command wins.
    """
    default = argparse.SUPPRESS if after_command else None
    parser.add_argument(
        "--temporal-address", default=default, help="host:port (default KAKIN_TEMPORAL_ADDRESS)"
    )
    parser.add_argument(
        "--namespace", default=default, help="Temporal namespace (default KAKIN_TEMPORAL_NAMESPACE)"
    )
    parser.add_argument(
        "--task-queue", default=default, help="task queue (default KAKIN_TASK_QUEUE)"
    )


def settings_from(args: argparse.Namespace, base: Settings | None = None) -> Settings:
    """``base`` (default: the KAKIN_* settings) with the connection options given in ``args``."""
    overrides = {
        "temporal_address": getattr(args, "temporal_address", None),
        "temporal_namespace": getattr(args, "namespace", None),
        "task_queue": getattr(args, "task_queue", None),
    }
    return (base or get_settings()).model_copy(update={k: v for k, v in overrides.items() if v})


def exit_process(code: int) -> NoReturn:
    """End a short-lived Temporal client process without interpreter teardown.

    The Temporal client's Rust threads can outlive the event loop and abort CPython's
    finalization (SIGABRT, "PyGILState_Release ... finalizing"; temporalio/sdk-python
    issue 300), turning a command that succeeded into a crash. The work is done and
    the output flushed, so skip teardown (after sending the command's spans, if traced).
    """
    tracing.flush_all()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# -- the worker (python worker.py, kakin worker, kakin up) --------------------------------

# On SIGTERM a worker stops taking tasks and gives the activities it is running this long
# to finish before the SDK cancels them: a deploy then cuts no email or charge short.
# Below `docker stop`'s 10 s before its SIGKILL.
WORKER_SHUTDOWN_GRACE = timedelta(seconds=8)


def build_worker(
    client: Client,
    *,
    task_queue: str,
    activities: Activities,
    executor: ThreadPoolExecutor | None,
    role: str = "all",
    webhooks: WebhookActivities | None = None,
) -> Worker:
    """A worker for the billing task queue; activities run in ``executor`` threads.

    ``role`` (KAKIN_WORKER_ROLE): ``all`` runs the workflows and the activities,
    ``workflows`` only the workflows (no executor needed), ``activities`` only the
    activities. Workers of different roles polling one task queue share its work.
    ``webhooks``: the outgoing webhooks' activities, run with their workflows.
    """
    if role not in ROLES:
        raise ValueError(f"unknown worker role {role!r}; known roles: {', '.join(ROLES)}")
    run_activities = role != "workflows"
    if run_activities and executor is None:
        raise ValueError(f"a worker with role {role!r} needs an activity executor")
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[*WORKFLOWS, *(WEBHOOK_WORKFLOWS if webhooks else [])]
        if role != "activities"
        else [],
        activities=[*activities.all(), *(webhooks.activities() if webhooks else [])]
        if run_activities
        else [],
        activity_executor=executor if run_activities else None,
        max_concurrent_activities=executor._max_workers if run_activities and executor else None,
        graceful_shutdown_timeout=WORKER_SHUTDOWN_GRACE,
    )


def build_stripe_worker(
    client: Client,
    *,
    task_queue: str,
    activities: Activities,
    executor: ThreadPoolExecutor,
    stripe_rate_limit: float,
    share: float = STRIPE_LIMITER_SHARE,
) -> Worker:
    """A worker for the charge task queue, held to ``share`` of Stripe's rate limit.

    The limit is the task queue's, enforced by the Temporal server across every worker
    polling it: a month-start spike of renewals queues charges instead of earning 429s.
    A charge makes STRIPE_REQUESTS_PER_CHARGE requests (retries aside), so the queue
    runs that many times fewer charges per second than Stripe takes requests.

    The server's limiter lets short bursts above this mean through; the process's
    token bucket (stripe_gateway, the same share in requests/s) spreads them, so the
    queue's rate can be the bucket's: a lower one would only leave Stripe's capacity
    unused. The bucket's wait stays short since at most the pool's threads queue on it.
    """
    return Worker(
        client,
        task_queue=task_queue,
        # The renewal's issue-and-charge charges too: it runs where charges run.
        activities=[
            activities.payments.charge_invoice,
            activities.renewals.issue_and_charge_invoice,
        ],
        activity_executor=executor,
        max_concurrent_activities=executor._max_workers,
        max_task_queue_activities_per_second=share * stripe_rate_limit / STRIPE_REQUESTS_PER_CHARGE,
        graceful_shutdown_timeout=WORKER_SHUTDOWN_GRACE,
    )


async def run_worker(
    settings: Settings,
    *,
    client: Client | None = None,
    stop: asyncio.Event | None = None,
    shape_event: EventShaper | None = None,
) -> None:
    """Run until ``stop`` is set (or, without one, until SIGINT/SIGTERM).

    With ``shape_event`` the worker also delivers outgoing webhooks (and starts their
    dispatcher if it is not running).
    """
    # The activities first: a refused setting (ConfigurationError) is reported before
    # anything connects, not after the worker has reached Temporal.
    activities = billing_activities(settings)
    webhooks = webhook_activities(settings, shape_event) if shape_event else None
    client = client or await temporal_client(settings, runtime_metrics=True)
    with serving_metrics(settings):
        await _run_workers(settings, client, activities, webhooks, stop)


@contextlib.contextmanager
def serving_metrics(settings: Settings) -> Iterator[None]:
    """kakin's metrics on KAKIN_METRICS_HOST:KAKIN_METRICS_PORT while the worker runs
    (prometheus-client's HTTP server, in a daemon thread); nothing when the port is 0."""
    if not settings.metrics_port:
        yield
        return
    server, _ = metrics.serve(host=settings.metrics_host, port=settings.metrics_port)
    log.info("metrics on http://%s:%s/metrics", settings.metrics_host, settings.metrics_port)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


async def _run_workers(
    settings: Settings,
    client: Client,
    activities: Activities,
    webhooks: WebhookActivities | None,
    stop: asyncio.Event | None,
) -> None:
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
                webhooks=webhooks,
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
                    share=settings.stripe_limiter_share,
                )
            )
        async with contextlib.AsyncExitStack() as running:
            for worker in workers:
                await running.enter_async_context(worker)
            if webhooks is not None:
                await ensure_webhook_dispatcher(
                    client,
                    task_queue=settings.task_queue,
                    poll_seconds=settings.webhook_poll_seconds,
                )
            # The identity (the SDK's default, pid@host) tells copies of this process
            # apart in the Temporal UI: each event a worker ran names it.
            log.info(
                "worker (%s) polling task queue(s) %s at %s as %s",
                settings.worker_role,
                ", ".join(repr(w.task_queue) for w in workers),
                settings.temporal_address,
                client.identity,
            )
            await stop.wait()


def worker_main(argv: list[str] | None = None, *, shape_event: EventShaper | None = None) -> int:
    """Run a worker; ``argv`` is ``python worker.py``'s arguments (``kakin worker`` passes
    none: it takes the role from KAKIN_WORKER_ROLE); ``shape_event`` turns on outgoing
    webhooks (both pass ``kakin.views.webhook_events.event_data``).

    Returns the exit code: 0 when stopped, 2 when the configuration is refused (one
    line naming the setting on stderr, no traceback).
    """
    parser = argparse.ArgumentParser(prog="python worker.py", description=WORKER_DOC)
    parser.add_argument(
        "--role", choices=ROLES, help="what to run (default KAKIN_WORKER_ROLE, else all)"
    )
    add_connection_options(parser)
    args = parser.parse_args(argv or [])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = settings_from(args, get_settings())  # KAKIN_* and the options
        if args.role:
            settings = settings.model_copy(update={"worker_role": args.role})
        if shape_event is None:
            asyncio.run(run_worker(settings))
        else:
            asyncio.run(run_worker(settings, shape_event=shape_event))
    except (ConfigurationError, EncryptionKeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
