"""Every Prometheus metric kakin exports, defined once, and the helpers that record them.

Operations watch charges, declines, dunning, emails and the month-start lag here rather
than in logs: the API serves these on ``GET /metrics`` (``api.metrics``), every worker on
``KAKIN_METRICS_PORT`` (``kakin.runtime.run_worker``), both from prometheus-client's
default registry. The names are a contract with the Grafana dashboard and the alert
rules (deploy/): change one only with them.

Labels are small closed sets and never personal data: no email, name, customer or
subscription id, amount or card digits. A value from outside (a decline code, an email
kind, a currency) passes ``_token`` first, so an unexpected one becomes ``other``
instead of a new series (or a leak).

Counters count in the process that did the work, at the point where the work took
effect (an invoice committed, an email handed to the provider). Activities run at
least once: a try that did the work and then died before Temporal heard of it is
counted again by its retry in the rare case the retry cannot tell; these are operating
figures, not the ledger.

Workflow code must not import this module (the "workflows-deterministic" contract):
renewals and dunning steps are counted in the activities the workflow calls.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from wsgiref.simple_server import WSGIServer

import prometheus_client
from prometheus_client import REGISTRY, Counter, Histogram

# The ``<name>_created`` series prometheus-client adds beside each counter double the
# series for nothing Grafana or the alert rules read.
prometheus_client.disable_created_metrics()

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST

_TOKEN = re.compile(r"[a-z][a-z0-9_]{0,47}")
_CURRENCY = re.compile(r"[A-Z]{3}")
OTHER = "other"

# Seconds: Stripe calls take tens of milliseconds; a hung one ends at the 20 s timeout.
STRIPE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)
# The token bucket's wait: nothing in a quiet hour, seconds in a month-start spike.
LIMITER_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A renewal is due, then charged: seconds when idle, up to 1.2 x N / rate (600 s for
# 10,000 renewals at 20 charges a second) in a month-start spike, more when backed up.
LAG_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)
# The HTTP API: most answers in milliseconds, a large usage batch or report in seconds.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# -- renewals, charges, invoices, dunning ----------------------------------------------

RENEWALS_STARTED = Counter(
    "kakin_renewals_started",
    "Renewal cycles begun: a period's invoice created (the first period's included).",
)
RENEWALS_FINISHED = Counter(
    "kakin_renewals_finished",
    "Renewal cycles whose first charge settled: paid, failed (dunning begins) or "
    "skipped (nothing to charge).",
    ["outcome"],
)
RENEWAL_OUTCOMES = ("paid", "failed", "skipped")
CHARGES = Counter(
    "kakin_charges",
    "Charge attempts settled (dunning retries included): succeeded, declined, or error "
    "(the activity raised; Temporal retries it).",
    ["outcome"],
)
CHARGE_OUTCOMES = ("succeeded", "declined", "error")
CHARGE_DECLINES = Counter(
    "kakin_charge_declines",
    "Declined charge attempts by decline code (Stripe's, or kakin's own such as "
    "no_payment_method; unknown when none was given).",
    ["decline_code"],
)
RENEWAL_CHARGE_LAG = Histogram(
    "kakin_renewal_charge_lag_seconds",
    "From a renewal's due time (its period's start) to its first charge attempt "
    "(subscriptions on a test clock are left out).",
    buckets=LAG_BUCKETS,
)
INVOICES_FINALIZED = Counter(
    "kakin_invoices_finalized",
    "Invoices numbered and opened, by currency.",
    ["currency"],
)
DUNNING_STEPS = Counter(
    "kakin_dunning_steps",
    "Dunning ladder steps reached: reminder, retry, final_notice, suspended, canceled.",
    ["step"],
)
DUNNING_STEP_NAMES = ("reminder", "retry", "final_notice", "suspended", "canceled")
# The email each ladder step sends (billing.dunning's STEP_EMAIL and LAST_RETRY_EMAIL):
# the step is counted when its email is first written, once per business key.
DUNNING_EMAILS = {
    "payment_reminder": "reminder",
    "final_notice": "final_notice",
    "suspended": "suspended",
    "canceled_unpaid": "canceled",
}

# -- Stripe ----------------------------------------------------------------------------

STRIPE_REQUEST_SECONDS = Histogram(
    "kakin_stripe_request_seconds",
    "Each Stripe API request, by operation (charge, refund, customer, payment_method...).",
    ["operation"],
    buckets=STRIPE_BUCKETS,
)
STRIPE_OPERATIONS = {
    "payment_intents": "charge",
    "refunds": "refund",
    "customers": "customer",
    "payment_methods": "payment_method",
    "test_helpers": "test_clock",
    "events": "event",
}
STRIPE_RATE_LIMITED = Counter(
    "kakin_stripe_rate_limited", "Requests Stripe answered with 429 (rate limited)."
)
STRIPE_LIMITER_WAIT = Histogram(
    "kakin_stripe_limiter_wait_seconds",
    "Time a Stripe request waited on the worker's client-side token bucket.",
    buckets=LIMITER_BUCKETS,
)

# -- emails, usage, webhooks -------------------------------------------------------------

EMAILS = Counter(
    "kakin_emails",
    "Emails handed to the provider (sent) or refused by it (failed), by kind.",
    ["kind", "outcome"],
)
USAGE_EVENTS = Counter(
    "kakin_usage_events",
    "Usage events received: accepted, duplicate (already counted) or rejected.",
    ["outcome"],
)
USAGE_OUTCOMES = ("accepted", "duplicate", "rejected")
WEBHOOK_DELIVERIES = Counter(
    "kakin_webhook_deliveries",
    "Outgoing webhook deliveries ended: delivered, failed (every try), or disabled "
    "(the endpoint gone, disabled or deleted).",
    ["outcome"],
)
WEBHOOK_OUTCOMES = ("delivered", "failed", "disabled")

# -- the HTTP API ------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "kakin_http_requests",
    "HTTP requests answered, by method, route template (unmatched: no route) and status.",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "kakin_http_request_seconds",
    "HTTP request duration, by method and route template.",
    ["method", "route"],
    buckets=HTTP_BUCKETS,
)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"

# Series of the closed sets exist from the start at 0, so rate() and ratios work
# before the first event of each kind (a decline rate before the first decline).
for _outcome in RENEWAL_OUTCOMES:
    RENEWALS_FINISHED.labels(_outcome)
for _outcome in CHARGE_OUTCOMES:
    CHARGES.labels(_outcome)
for _step in DUNNING_STEP_NAMES:
    DUNNING_STEPS.labels(_step)
for _outcome in USAGE_OUTCOMES:
    USAGE_EVENTS.labels(_outcome)
for _outcome in WEBHOOK_OUTCOMES:
    WEBHOOK_DELIVERIES.labels(_outcome)


def _token(value: str | None, *, missing: str = "unknown") -> str:
    """A label value from outside: a lower-case identifier, else ``other``."""
    if not value:
        return missing
    return value if _TOKEN.fullmatch(value) else OTHER


def _currency(value: str) -> str:
    code = value.upper()
    return code if _CURRENCY.fullmatch(code) else OTHER


# -- recording ---------------------------------------------------------------------------


def renewal_started() -> None:
    RENEWALS_STARTED.inc()


def renewal_finished(outcome: str) -> None:
    RENEWALS_FINISHED.labels(outcome if outcome in RENEWAL_OUTCOMES else OTHER).inc()


def charge_settled(*, succeeded: bool, decline_code: str | None = None) -> None:
    """A charge attempt's answer: succeeded, or declined with its code."""
    if succeeded:
        CHARGES.labels("succeeded").inc()
        return
    CHARGES.labels("declined").inc()
    CHARGE_DECLINES.labels(_token(decline_code)).inc()


def charge_failed() -> None:
    """A charge attempt ended in an exception (network, 5xx, 429...): Temporal retries."""
    CHARGES.labels("error").inc()


def renewal_charge_lag(seconds: float) -> None:
    RENEWAL_CHARGE_LAG.observe(max(seconds, 0.0))


def invoice_finalized(currency: str) -> None:
    INVOICES_FINALIZED.labels(_currency(currency)).inc()


def dunning_step(step: str) -> None:
    DUNNING_STEPS.labels(step if step in DUNNING_STEP_NAMES else OTHER).inc()


def email_written(kind: str) -> None:
    """An email's row was first written: the dunning step it announces, if any."""
    step = DUNNING_EMAILS.get(kind)
    if step is not None:
        dunning_step(step)


@contextmanager
def sending_email(kind: str) -> Iterator[None]:
    """Around the provider's send: counted ``sent``, or ``failed`` if it raises (a failure
    that is not permanent is retried, and counted again if it fails again)."""
    try:
        yield
    except Exception:
        EMAILS.labels(_token(kind), "failed").inc()
        raise
    EMAILS.labels(_token(kind), "sent").inc()


def usage_events(outcomes: Iterable[str]) -> None:
    """One batch's results (``accepted``, ``duplicate``, ``rejected`` each)."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome] = counts.get(outcome, 0) + 1
    for outcome, count in counts.items():
        USAGE_EVENTS.labels(outcome if outcome in USAGE_OUTCOMES else OTHER).inc(count)


def webhook_delivery(outcome: str) -> None:
    WEBHOOK_DELIVERIES.labels(outcome if outcome in WEBHOOK_OUTCOMES else OTHER).inc()


def stripe_operation(path: str) -> str:
    """The operation label of a Stripe API path: ``/v1/payment_intents/pi_1/confirm``
    is ``charge``. Ids never reach the label."""
    parts = [part for part in path.split("?", 1)[0].split("/") if part]
    resource = parts[1] if len(parts) > 1 and parts[0] == "v1" else ""
    return STRIPE_OPERATIONS.get(resource, OTHER)


def stripe_request(operation: str, seconds: float, status: int | None) -> None:
    """One Stripe request answered (``status`` None: no answer, e.g. a timeout)."""
    STRIPE_REQUEST_SECONDS.labels(operation).observe(seconds)
    if status == 429:
        STRIPE_RATE_LIMITED.inc()


def stripe_limiter_wait(seconds: float) -> None:
    """Time one request waited on the client-side token bucket (0 when it did not)."""
    STRIPE_LIMITER_WAIT.observe(max(seconds, 0.0))


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    """One API request answered; ``route`` is its template, never the raw path."""
    verb = method if method in HTTP_METHODS else OTHER
    HTTP_REQUESTS.labels(verb, route, str(status)).inc()
    HTTP_REQUEST_SECONDS.labels(verb, route).observe(seconds)


# -- exposition ----------------------------------------------------------------------


def exposition() -> bytes:
    """The text exposition of every metric of this process (the default registry)."""
    return prometheus_client.generate_latest(REGISTRY)


def serve(*, host: str, port: int) -> tuple[WSGIServer, threading.Thread]:
    """prometheus-client's own HTTP server on ``host:port``, in a daemon thread (a worker's
    ``KAKIN_METRICS_PORT``). ``server.shutdown()`` stops it."""
    return prometheus_client.start_http_server(port, addr=host)
