"""The metrics operations watch, after a short real run: one paid and one declined renewal.

A real ``python worker.py`` process (its metrics on KAKIN_METRICS_PORT, the Temporal
SDK's on KAKIN_TEMPORAL_METRICS_PORT) on the dev server, localstripe and PostgreSQL; the
API app in this process, driven with httpx. Both are scraped over their /metrics before
and after the run and parsed with prometheus-client's own parser. Counters are
per process and only grow: the test asserts on what the run added.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from kakin import runtime
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.platform.settings import Settings
from kakin.services.api_keys import CreatedKey
from tests.chaos.processes import WorkerProcess
from tests.helpers import DECLINED_CARD, OK_CARD, connect_to, eventually, free_ports, observe

pytestmark = pytest.mark.devserver

Labels = frozenset[tuple[str, str]]


@dataclass
class Scrape:
    """One /metrics answer: every sample's value by name and labels."""

    text: str
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Scrape:
        scrape = cls(text)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                scrape.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return scrape

    def value(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples carrying ``labels`` (0 when there are none)."""
        wanted = set(labels.items())
        return sum(v for (n, got), v in self.samples.items() if n == name and wanted <= got)

    def label_values(self) -> set[str]:
        return {value for (_, labels) in self.samples for _, value in labels}


@dataclass
class Run:
    api: tuple[Scrape, Scrape]
    worker: tuple[Scrape, Scrape]
    temporal: Scrape
    customer_ids: list[str]
    subscription_ids: list[str]
    invoice_ids: list[str]
    names: list[str]
    emails: list[str]
    decline_code: str


def delta(pair: tuple[Scrape, Scrape], name: str, **labels: str) -> float:
    before, after = pair
    return after.value(name, **labels) - before.value(name, **labels)


@pytest.fixture(scope="module")
async def run(
    dev_env: WorkflowEnvironment,
    postgres_url: str,
    pg_sessions: sessionmaker[Session],
    localstripe_url: str,
    stripe_gateway: StripeGateway,
    made_keys: dict[str, CreatedKey],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Run]:
    work = tmp_path_factory.mktemp("metrics-run")
    task_queue = f"billing-metrics-{secrets.token_hex(4)}"
    target = dev_env.client.service_client.config.target_host
    metrics_port, temporal_port = free_ports(2)
    worker = WorkerProcess(
        {
            **os.environ,  # KAKIN_ENCRYPTION_KEYS: the tests' payload keys
            "KAKIN_DATABASE_URL": postgres_url,
            "KAKIN_TEMPORAL_ADDRESS": target,
            "KAKIN_TASK_QUEUE": task_queue,
            "KAKIN_STRIPE_API_KEY": "sk_test_kakin",
            "KAKIN_STRIPE_API_BASE": localstripe_url,
            "KAKIN_STRIPE_CONFIRM_OFF_SESSION": "false",
            "KAKIN_EMAIL_BACKEND": "outbox",
            "KAKIN_OUTBOX_DIR": str(work / "outbox"),
            "KAKIN_ATTACH_INVOICE_PDF": "false",
            "KAKIN_METRICS_HOST": "127.0.0.1",
            "KAKIN_METRICS_PORT": str(metrics_port),
            "KAKIN_TEMPORAL_METRICS_PORT": str(temporal_port),
        },
        cwd=work,
        log=work / "worker.log",
    )
    app = create_app(
        settings=Settings(
            _env_file=None,  # type: ignore[call-arg]
            stripe_api_key="sk_test_kakin",
            database_url="sqlite:///unused.db",
            task_queue=task_queue,
        ),
        sessions=pg_sessions,
        temporal=connect_to(target),
        stripe=stripe_gateway,
    )
    headers = {"Authorization": f"Bearer {made_keys['admin'].secret}"}
    worker_url = f"http://127.0.0.1:{metrics_port}/metrics"
    tag = secrets.token_hex(3)
    people = [
        (f"Hanako Metrics{tag}", f"hanako.{tag}@example.jp", OK_CARD),
        (f"山田 計測{tag}", f"yamada.{tag}@example.jp", DECLINED_CARD),
    ]
    worker.start()
    try:
        worker.wait_polling()
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://api", timeout=60) as api,
            httpx.AsyncClient(timeout=10) as http,
        ):

            async def scrape_api() -> Scrape:
                answer = await api.get("/metrics")  # no API key: Prometheus has none
                assert answer.status_code == 200, answer.text
                assert answer.headers["content-type"].startswith("text/plain")
                return Scrape.parse(answer.text)

            async def scrape(url: str) -> Scrape:
                answer = await http.get(url)
                assert answer.status_code == 200, answer.text
                return Scrape.parse(answer.text)

            api_before, worker_before = await scrape_api(), await scrape(worker_url)
            price = await api.post(
                "/v1/prices",
                headers=headers,
                json={"product_name": "Metrics plan", "currency": "JPY", "unit_amount": 3000},
            )
            assert price.status_code == 201, price.text
            customer_ids, subscription_ids = [], []
            for name, email, card in people:
                customer = await api.post(
                    "/v1/customers",
                    headers=headers,
                    json={
                        "email": email, "name": name, "currency": "JPY", "locale": "ja",
                        "time_zone": "Asia/Tokyo", "card_number": card,
                    },
                )  # fmt: skip
                assert customer.status_code == 201, customer.text
                customer_ids.append(customer.json()["id"])
                # Billing starts now: the first period's invoice, charge and email.
                subscription = await api.post(
                    "/v1/subscriptions",
                    headers=headers,
                    json={"customer_id": customer_ids[-1], "price_id": price.json()["id"]},
                )
                assert subscription.status_code == 201, subscription.text
                subscription_ids.append(subscription.json()["id"])
            for customer_id in customer_ids:
                seen = await api.get(f"/v1/customers/{customer_id}", headers=headers)
                assert seen.status_code == 200
            assert (await api.get("/v1/no-such-page", headers=headers)).status_code == 404

            paid, declined = subscription_ids

            def emailed(subscription_id: str, kind: str) -> bool:
                emails = observe(pg_sessions, subscription_id).emails
                return any(e.kind == kind and e.status == "sent" for e in emails)

            # The email follows the charge's activity: once it is sent, so is every count.
            await eventually(lambda: emailed(paid, "receipt"), timeout=60, what="the receipt")
            await eventually(
                lambda: emailed(declined, "payment_failed"), timeout=60, what="the decline email"
            )
            api_after = await scrape_api()
            worker_after = await scrape(worker_url)
            temporal = await scrape(f"http://127.0.0.1:{temporal_port}/metrics")
    finally:
        worker.stop()
    (attempt,) = observe(pg_sessions, declined).attempts
    yield Run(
        api=(api_before, api_after),
        worker=(worker_before, worker_after),
        temporal=temporal,
        customer_ids=customer_ids,
        subscription_ids=subscription_ids,
        invoice_ids=[i.id for s in subscription_ids for i in observe(pg_sessions, s).invoices],
        names=[name for name, _, _ in people],
        emails=[email for _, email, _ in people],
        decline_code=attempt.decline_code or "",
    )


def test_the_worker_counts_one_paid_and_one_declined_renewal(run: Run) -> None:
    worker = run.worker
    assert run.decline_code  # localstripe's answer for the declined test card
    assert delta(worker, "kakin_charges_total", outcome="succeeded") == 1
    assert delta(worker, "kakin_charges_total", outcome="declined") == 1
    assert delta(worker, "kakin_charges_total", outcome="error") == 0
    assert delta(worker, "kakin_charge_declines_total", decline_code=run.decline_code) == 1
    assert delta(worker, "kakin_charge_declines_total") == 1
    assert delta(worker, "kakin_renewals_started_total") == 2
    assert delta(worker, "kakin_renewals_finished_total", outcome="paid") == 1
    assert delta(worker, "kakin_renewals_finished_total", outcome="failed") == 1
    assert delta(worker, "kakin_renewals_finished_total", outcome="skipped") == 0
    assert delta(worker, "kakin_invoices_finalized_total", currency="JPY") == 2
    assert delta(worker, "kakin_emails_total", kind="receipt", outcome="sent") == 1
    assert delta(worker, "kakin_emails_total", kind="payment_failed", outcome="sent") == 1
    assert delta(worker, "kakin_emails_total", outcome="failed") == 0
    # The first failure opens dunning; no step of the ladder is reached yet.
    assert delta(worker, "kakin_dunning_steps_total") == 0
    # Each charge is a create and a confirm at Stripe; none was rate limited.
    requests = 2 * runtime.STRIPE_REQUESTS_PER_CHARGE
    assert delta(worker, "kakin_stripe_request_seconds_count", operation="charge") == requests
    assert delta(worker, "kakin_stripe_rate_limited_total") == 0
    # Both renewals were due when they started and charged within the run.
    assert delta(worker, "kakin_renewal_charge_lag_seconds_count") == 2
    lag = delta(worker, "kakin_renewal_charge_lag_seconds_sum")
    assert 0 <= lag < 2 * 60


def test_the_worker_serves_the_temporal_sdk_metrics(run: Run) -> None:
    names = {name for name, _ in run.temporal.samples}
    assert any(name.startswith("temporal_") for name in names), sorted(names)[:20]
    # Its workers polled: task slots of the run's task queue are reported.
    assert run.temporal.value("temporal_worker_task_slots_available") > 0


def test_the_api_counts_requests_by_route_template_and_status(run: Run) -> None:
    api = run.api
    name = "kakin_http_requests_total"
    assert delta(api, name, method="POST", route="/v1/customers", status="201") == 2
    assert delta(api, name, method="POST", route="/v1/subscriptions", status="201") == 2
    assert delta(api, name, method="POST", route="/v1/prices", status="201") == 1
    assert delta(api, name, method="GET", route="/v1/customers/{customer_id}", status="200") == 2
    assert delta(api, name, method="GET", route="unmatched", status="404") == 1
    assert delta(api, name, method="GET", route="/metrics", status="200") >= 1
    seconds = "kakin_http_request_seconds_count"
    assert delta(api, seconds, method="POST", route="/v1/customers") == 2
    # Creating a customer asks Stripe for the customer and its card, from the API process.
    assert delta(api, "kakin_stripe_request_seconds_count", operation="customer") >= 2
    assert delta(api, "kakin_stripe_request_seconds_count", operation="payment_method") >= 2


CARD_LIKE = re.compile(r"\d{12,}")


def test_no_label_holds_an_email_a_name_a_card_or_an_id(run: Run) -> None:
    scrapes = [*run.api, *run.worker, run.temporal]
    values = set().union(*(scrape.label_values() for scrape in scrapes))
    assert values  # the scrapes have labels to look at
    for value in values:
        assert "@" not in value, value
        assert not CARD_LIKE.search(value.replace(" ", "").replace("-", "")), value
    identifying = [
        *run.names, *(n.split()[0] for n in run.names), *run.emails,
        *run.customer_ids, *run.subscription_ids, *run.invoice_ids,
    ]  # fmt: skip
    assert len(run.invoice_ids) == 2
    for scrape in scrapes:
        for secret in identifying:
            # Not in a label, nor anywhere else in what Prometheus reads.
            assert secret not in scrape.text, secret
