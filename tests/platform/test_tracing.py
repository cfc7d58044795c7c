"""Tracing (KAKIN_OTLP_ENDPOINT): real spans from the real SDK, exporter and wiring.

The API is ``build_app`` and the worker's client is ``runtime.temporal_client``, exactly
as ``kakin api`` and ``python worker.py`` build them; spans leave through the real OTLP/HTTP
exporter to a loopback receiver that decodes them with OpenTelemetry's own protobufs.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from sqlalchemy.orm import Session, sessionmaker
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.testing import WorkflowEnvironment

from activities.bundle import Activities
from api.app import build_app
from kakin import runtime
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.platform import temporal_connection, tracing
from kakin.platform.settings import Settings
from kakin.services import api_keys
from tests.helpers import customer_and_price, observe, serving_worker

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]


class OtlpReceiver:
    """A loopback OTLP/HTTP traces endpoint: POST /v1/traces, protobuf in, 200 out."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.paths.append(self.path)
                receiver.collect(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def collect(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        ReceivedSpan(
                            service=str(resource.get("service.name")),
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            attributes=_attributes(span.attributes),
                        )
                    )

    def named(self, name: str) -> list[ReceivedSpan]:
        return [span for span in self.spans if span.name == name]


def _attributes(pairs: Any) -> dict[str, Any]:
    values = {}
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        values[pair.key] = getattr(pair.value, kind) if kind else None
    return values


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    otlp = OtlpReceiver()
    otlp.thread.start()
    yield otlp
    otlp.server.shutdown()
    otlp.server.server_close()


def traced_settings(receiver: OtlpReceiver, service: str, **values: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        otlp_endpoint=receiver.url,
        otlp_service_name=f"{service}-{secrets.token_hex(3)}",
        **values,
    )


async def test_an_api_request_that_starts_a_subscription_is_one_trace_down_to_its_activities(
    receiver: OtlpReceiver,
    time_env: WorkflowEnvironment,
    postgres_url: str,
    pg_sessions: sessionmaker[Session],
    localstripe_url: str,
    stripe_gateway: StripeGateway,
    activities: Activities,
    task_queue: str,
) -> None:
    common = {
        "database_url": postgres_url,
        "temporal_address": time_env.client.service_client.config.target_host,
        "task_queue": task_queue,
        "stripe_api_key": "sk_test_kakin",
        "stripe_api_base": localstripe_url,
        "stripe_confirm_off_session": False,
    }
    api_settings = traced_settings(receiver, "kakin-api", **common)
    worker_settings = traced_settings(receiver, "kakin-worker", **common)
    customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway)
    key = api_keys.create_key(pg_sessions, name="tracing test", role="service")

    worker_client = await runtime.temporal_client(worker_settings)
    assert any(isinstance(i, TracingInterceptor) for i in worker_client.config()["interceptors"])
    app = build_app(api_settings)
    async with (
        serving_worker(worker_client, task_queue, activities),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://kakin.test",
            headers={"Authorization": f"Bearer {key.secret}"},
        ) as http,
    ):
        # A query string holding an email: it must not reach the exported spans.
        response = await http.post(
            "/v1/subscriptions?ref=taro@example.jp",
            json={"customer_id": customer_id, "price_id": price_id},
        )
        assert response.status_code == 201, response.text
        subscription_id = response.json()["id"]
        for _ in range(300):  # the first period is billed at once
            invoices = observe(pg_sessions, subscription_id).invoices
            if invoices and invoices[0].status == "paid":
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the first invoice was not paid")
        await http.get(f"/v1/subscriptions/{subscription_id}")

    assert tracing.flush(api_settings) and tracing.flush(worker_settings)
    assert set(receiver.paths) == {"/v1/traces"}

    (request,) = receiver.named("POST /v1/subscriptions")
    assert request.service == api_settings.otlp_service_name
    assert request.attributes.get("http.route") == "/v1/subscriptions"
    (read,) = receiver.named("GET /v1/subscriptions/{subscription_id}")  # the route template
    assert read.trace_id != request.trace_id

    (start,) = receiver.named("StartWorkflow:SubscriptionWorkflow")
    assert (start.service, start.parent_id) == (request.service, request.span_id)
    assert start.attributes["temporalWorkflowID"] == f"subscription-{subscription_id}"
    runs = receiver.named("RunWorkflow:SubscriptionWorkflow")
    assert runs and {run.service for run in runs} == {worker_settings.otlp_service_name}
    activity_runs = [span for span in receiver.spans if span.name.startswith("RunActivity:")]
    activity_names = {span.name.removeprefix("RunActivity:") for span in activity_runs}
    assert len(activity_names) >= 2, activity_names  # the invoice, the charge, the email...
    assert any("charge" in name for name in activity_names), activity_names
    # One trace: the HTTP request, the start, the workflow and each activity it ran.
    trace = {span.span_id for span in receiver.spans if span.trace_id == request.trace_id}
    assert {span.span_id for span in (*runs, *activity_runs)} <= trace

    exported = json.dumps([span.attributes for span in receiver.spans], default=str)
    assert "example.jp" not in exported and "taro" not in exported
    peer = ("client.address", "net.peer.ip", "network.peer.address", "http.client_ip")
    assert all(request.attributes.get(name, "") == "" for name in peer), request.attributes


def test_tracing_off_adds_nothing_and_imports_no_opentelemetry_sdk(tmp_path: Path) -> None:
    """Unset KAKIN_OTLP_ENDPOINT: no interceptor, no middleware, none of the extra loaded."""
    script = f"""
import sys
from kakin.platform import temporal_connection
from kakin.platform.settings import Settings
from api.app import build_app

settings = Settings(_env_file=None, database_url="sqlite:///{tmp_path}/kakin.db")
assert temporal_connection.connect_options(settings)["interceptors"] == []
app = build_app(settings)
assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
extra = ("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.instrumentation",
         "temporalio.contrib.opentelemetry")
print(sorted(name for name in sys.modules if name.startswith(extra)))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAKIN_OTLP", "OTEL_"))}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_tracing_on_gives_the_client_the_interceptor_and_the_app_its_middleware(
    receiver: OtlpReceiver, tmp_path: Path
) -> None:
    settings = traced_settings(receiver, "kakin-api", database_url=f"sqlite:///{tmp_path}/k.db")
    (interceptor,) = temporal_connection.connect_options(settings)["interceptors"]
    assert isinstance(interceptor, TracingInterceptor)
    app = build_app(settings)
    assert app._is_instrumented_by_opentelemetry  # type: ignore[attr-defined]
    # One provider per process and endpoint: the API's client and app share it.
    assert tracing.tracer_provider(settings) is tracing.tracer_provider(settings)


def test_the_traces_url_follows_the_otlp_http_convention() -> None:
    assert tracing.traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert tracing.traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert tracing.traces_url("https://x.example/v1/traces") == "https://x.example/v1/traces"


def test_a_command_ending_through_exit_process_still_sends_its_spans(
    receiver: OtlpReceiver,
) -> None:
    """`kakin cancel ...` ends with os._exit (runtime.exit_process): no exit hook runs, so
    the batch waiting in the exporter must be sent before it."""
    script = f"""
from kakin import runtime
from kakin.platform import tracing
from kakin.platform.settings import Settings

settings = Settings(_env_file=None, otlp_endpoint="{receiver.url}", otlp_service_name="kakin-cli")
with tracing.tracer_provider(settings).get_tracer("test").start_as_current_span("kakin cancel"):
    pass
runtime.exit_process(0)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (span,) = receiver.named("kakin cancel")
    assert span.service == "kakin-cli"
