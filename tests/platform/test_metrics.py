"""The metrics, piece by piece: the dunning ladder, emails failing and retried, usage
events, Stripe's paths as operations, the API's routes as templates, and the settings
and servers that expose them. (The whole run, scraped from a real worker process and
the API, is tests/e2e/test_metrics.py.)

Counters belong to the process and only grow: each test compares before and after.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.bundle import build_activities
from api.app import create_app
from kakin import runtime
from kakin.adapters.mailer import SendGridMailer
from kakin.adapters.rendering import make_template_env
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.platform import metrics
from kakin.platform.settings import ConfigurationError, Settings, get_settings
from kakin.services import subscriptions
from kakin.services.usage import UsageEventIn, ingest
from tests.conftest import SELLER
from tests.helpers import (
    DECLINED_CARD,
    advance_to,
    customer_and_price,
    free_ports,
    observe,
    serving_worker,
)
from tests.support.fault_proxy import FaultProxy
from tests.support.sendgrid_loopback import SendGridLoopback
from tests.usage.test_usage_ingestion import at, metered_subscription

REPO = Path(__file__).resolve().parents[2]


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@contextlib.contextmanager
def counting(*series: tuple[str, dict[str, str]]) -> Iterator[Callable[[], list[float]]]:
    """``with counting((name, labels), ...) as added:``; ``added()`` is what each grew by."""
    before = [value(name, **labels) for name, labels in series]

    def added() -> list[float]:
        return [value(name, **labels) - b for (name, labels), b in zip(series, before, strict=True)]

    yield added


def steps(*names: str) -> list[tuple[str, dict[str, str]]]:
    return [("kakin_dunning_steps_total", {"step": name}) for name in names]


async def test_the_dunning_ladder_counts_each_step_it_reaches(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway, card=DECLINED_CARD)
    series = [
        *steps("retry", "reminder", "final_notice", "suspended", "canceled"),
        ("kakin_charges_total", {"outcome": "declined"}),
        ("kakin_renewals_finished_total", {"outcome": "failed"}),
    ]
    with counting(*series) as added:
        start = (await time_env.get_current_time()) + timedelta(hours=1)
        subscription_id = await subscriptions.start_subscription(
            time_env.client, pg_sessions, task_queue=task_queue,
            customer_id=customer_id, price_id=price_id, start_at=start,
        )  # fmt: skip
        await advance_to(time_env, start + timedelta(days=30, hours=1))
        assert await subscriptions.handle(time_env.client, subscription_id).result() == "canceled"
    # The default ladder (3:retry,7:retry,14:suspend,21:retry,30:cancel): three retries,
    # reminders after the first two, the final notice after the last, then the end.
    # Four declined charges: the renewal's and the three retries; one renewal failed.
    assert added() == [3, 2, 1, 1, 1, 4, 1]
    kinds = observe(pg_sessions, subscription_id).email_kinds
    assert kinds.count("payment_reminder") == 2 and kinds.count("final_notice") == 1


async def test_an_email_the_provider_refuses_once_is_counted_failed_then_sent(
    time_env: WorkflowEnvironment,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    with SendGridLoopback() as sendgrid:
        activities = build_activities(
            session_factory=pg_sessions, stripe=stripe_gateway,
            mailer=SendGridMailer("SG.test-key", host=sendgrid.url),
            templates=make_template_env(), seller=SELLER,
        )  # fmt: skip
        receipts = [
            ("kakin_emails_total", {"kind": "receipt", "outcome": outcome})
            for outcome in ("failed", "sent")
        ]
        async with serving_worker(time_env.client, task_queue, activities):
            customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway)
            sendgrid.fail_next(1, 503)  # overloaded: the activity is retried
            with counting(*receipts) as added:
                start = (await time_env.get_current_time()) + timedelta(hours=1)
                subscription_id = await subscriptions.start_subscription(
                    time_env.client, pg_sessions, task_queue=task_queue,
                    customer_id=customer_id, price_id=price_id, start_at=start,
                )  # fmt: skip
                await advance_to(time_env, start + timedelta(hours=2))
                emails = observe(pg_sessions, subscription_id).emails
        assert [(e.kind, e.status) for e in emails] == [("receipt", "sent")]
        assert added() == [1, 1]
        assert [r.status for r in sendgrid.requests if r.method == "POST"][:2] == [503, 202]


def test_usage_events_are_counted_by_outcome(pg_sessions: sessionmaker[Session]) -> None:
    customer_id, _, code = metered_subscription(pg_sessions)
    outcomes = [("kakin_usage_events_total", {"outcome": o}) for o in metrics.USAGE_OUTCOMES]

    def event(event_id: str, metric: str = code) -> UsageEventIn:
        return UsageEventIn(event_id, metric, at(2), properties={"gb": 1}, customer_id=customer_id)

    with counting(*outcomes) as added:
        first = ingest(pg_sessions, [event("e-1"), event("e-1"), event("e-2", "no_such_metric")])
        again = ingest(pg_sessions, [event("e-1")])
    statuses = [r.status for r in [*first, *again]]
    assert statuses == ["accepted", "duplicate", "rejected", "duplicate"]
    assert added() == [1, 2, 1]


def test_label_values_from_outside_are_closed_sets() -> None:
    with counting(
        ("kakin_charge_declines_total", {"decline_code": "insufficient_funds"}),
        ("kakin_charge_declines_total", {"decline_code": "other"}),
        ("kakin_charge_declines_total", {"decline_code": "unknown"}),
        ("kakin_invoices_finalized_total", {"currency": "JPY"}),
    ) as added:
        metrics.charge_settled(succeeded=False, decline_code="insufficient_funds")
        metrics.charge_settled(succeeded=False, decline_code="taro@example.jp 4242424242424242")
        metrics.charge_settled(succeeded=False, decline_code=None)
        metrics.invoice_finalized("jpy")
    assert added() == [1, 1, 1, 1]


@pytest.mark.parametrize(
    ("path", "operation"),
    [
        ("/v1/payment_intents", "charge"),
        ("/v1/payment_intents/pi_123/confirm", "charge"),
        ("/v1/refunds?payment_intent=pi_1", "refund"),
        ("/v1/customers/cus_9", "customer"),
        ("/v1/payment_methods/pm_1/attach", "payment_method"),
        ("/v1/test_helpers/test_clocks/clock_1/advance", "test_clock"),
        ("/v1/balance", "other"),
        ("/", "other"),
    ],
)
def test_a_stripe_path_is_named_by_its_resource_never_its_ids(path: str, operation: str) -> None:
    assert metrics.stripe_operation(path) == operation


def test_a_stripe_429_is_counted_and_every_request_timed(localstripe_url: str) -> None:
    # The real SDK and emulator, behind a proxy answering the first create with a 429:
    # the pacing client sends it again after a moment, and both requests are timed.
    with FaultProxy(localstripe_url) as proxy:
        proxy.add("POST", r"^/v1/customers$", 429)
        gateway = StripeGateway(api_key="sk_test_kakin", api_base=proxy.url)
        with counting(
            ("kakin_stripe_rate_limited_total", {}),
            ("kakin_stripe_request_seconds_count", {"operation": "customer"}),
        ) as added:
            assert gateway.create_customer(
                email="a@example.jp", name="A", kakin_customer_id="c1"
            ).startswith("cus_")
    assert added() == [1, 2]


async def test_the_api_names_requests_by_route_template_and_serves_metrics_without_a_key(
    pg_sessions: sessionmaker[Session], stripe_gateway: StripeGateway
) -> None:
    app = create_app(
        settings=Settings(_env_file=None, database_url="sqlite:///unused.db"),  # type: ignore[call-arg]
        sessions=pg_sessions,
        temporal=lambda: None,  # type: ignore[arg-type,return-value]
        stripe=stripe_gateway,
    )
    name = "kakin_http_requests_total"
    series = [
        (name, {"method": "GET", "route": "/v1/customers/{customer_id}", "status": "401"}),
        # A card number in the path is refused (api.pan_guard) and never becomes a label.
        (name, {"method": "GET", "route": "/v1/customers/{customer_id}", "status": "422"}),
        (name, {"method": "GET", "route": "unmatched", "status": "404"}),
        # Refused by the body guard before routing: still the route it was for.
        (name, {"method": "POST", "route": "/v1/customers", "status": "413"}),
        (name, {"method": "DELETE", "route": "/v1/health", "status": "405"}),
        ("kakin_http_request_seconds_count", {"method": "GET", "route": "/v1/health"}),
    ]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
        with counting(*series) as added:
            await api.get("/v1/customers/cus_abc123")
            await api.get("/v1/customers/4242424242424242")
            await api.get("/no/such/cus_1")
            await api.post("/v1/customers", content=b"{" + b" " * 2_000_000 + b"}")
            await api.delete("/v1/health")
            await api.get("/v1/health")
            scraped = await api.get("/metrics")  # no Authorization header
        schema = (await api.get("/openapi.json")).json()
    assert added() == [1, 1, 1, 1, 1, 1]
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    families = {f.name for f in text_string_to_metric_families(scraped.text)}
    assert {"kakin_http_requests", "kakin_charges", "kakin_renewal_charge_lag_seconds"} <= families
    assert "/metrics" not in schema["paths"]
    assert "cus_abc123" not in scraped.text and "4242424242424242" not in scraped.text


def test_the_worker_serves_its_metrics_on_the_port_only_while_it_runs() -> None:
    (port,) = free_ports(1)
    settings = Settings(_env_file=None, metrics_port=port)  # type: ignore[call-arg]
    url = f"http://127.0.0.1:{port}/metrics"
    with runtime.serving_metrics(settings):
        answer = httpx.get(url, timeout=5)
        assert answer.status_code == 200
        assert "kakin_charges_total" in answer.text
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=5)
    with runtime.serving_metrics(Settings(_env_file=None)):  # type: ignore[call-arg]
        pass  # port 0: nothing served, nothing to stop


def test_the_metrics_settings_are_read_checked_and_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAKIN_METRICS_HOST", "0.0.0.0")
    monkeypatch.setenv("KAKIN_METRICS_PORT", "9464")
    monkeypatch.setenv("KAKIN_TEMPORAL_METRICS_PORT", "9465")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.metrics_host, settings.metrics_port, settings.temporal_metrics_port) == (
        "0.0.0.0", 9464, 9465,
    )  # fmt: skip
    monkeypatch.setenv("KAKIN_TEMPORAL_METRICS_PORT", "9464")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigurationError, match="KAKIN_METRICS_PORT and KAKIN_TEMPORAL"):
            get_settings()
    finally:
        get_settings.cache_clear()
    shown = subprocess.run(
        [sys.executable, "worker.py", "--help"], cwd=REPO, capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    for name in ("KAKIN_METRICS_PORT", "KAKIN_TEMPORAL_METRICS_PORT", "KAKIN_METRICS_HOST"):
        assert name in shown
    readme = (REPO / "README.md").read_text()
    for name in ("KAKIN_METRICS_PORT", "KAKIN_TEMPORAL_METRICS_PORT", "KAKIN_METRICS_HOST"):
        assert name in readme
