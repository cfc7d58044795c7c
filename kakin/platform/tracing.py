"""OpenTelemetry tracing, on when ``KAKIN_OTLP_ENDPOINT`` is set, exported over OTLP/HTTP.

Off (the default), nothing here imports OpenTelemetry's SDK, exporter or instrumentation:
they are the optional extra ``kakin[tracing]``, and a process without them runs as before.

On, each process has one ``TracerProvider`` (``service.name`` from
``KAKIN_OTLP_SERVICE_NAME``) exporting batches to ``<endpoint>/v1/traces``:

* Temporal: ``temporal_interceptors`` gives the Temporal client the SDK's
  ``TracingInterceptor`` (temporalio.contrib.opentelemetry); a worker built on that
  client uses it too. Starting, signalling and updating a workflow, running it and each
  activity become spans of one trace, carried in the workflow's headers (also across
  continue-as-new, so a subscription's renewals join the trace of the request that
  started it).
* The HTTP API: ``instrument_app`` adds opentelemetry-instrumentation-fastapi, one span
  per request named by its route template. Query strings (emails, card numbers typed
  into a URL) and the client's address are overwritten before export, as the access log
  leaves them out (api.middleware).

The exporter's own variables (``OTEL_EXPORTER_OTLP_HEADERS`` for a vendor's token,
``OTEL_EXPORTER_OTLP_CERTIFICATE``, ``OTEL_RESOURCE_ATTRIBUTES``) work as documented by
OpenTelemetry. Spans hold workflow and activity ids, route templates and exception
messages, never payloads (those stay encrypted): send them to a collector you run.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from kakin.platform.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span

TRACES_PATH = "/v1/traces"
# Attributes the ASGI instrumentation records that the access log deliberately leaves
# out: the query string (inside the URL, unquoted) and who sent the request.
_URL_ATTRIBUTES = ("http.url", "url.full", "http.target")
_DROPPED_ATTRIBUTES = (
    "url.query",
    "client.address",
    "client.port",
    "net.peer.ip",
    "net.peer.port",
    "net.sock.peer.addr",
    "net.sock.peer.port",
    "network.peer.address",
    "network.peer.port",
    "http.client_ip",
)
# Scraped every few seconds and probed by orchestrators: spans would be noise.
EXCLUDED_URLS = "/metrics$,/v1/health$,/v1/ready$"

_providers: dict[tuple[str, str], TracerProvider] = {}
_lock = threading.Lock()


def enabled(settings: Settings) -> bool:
    return bool(settings.otlp_endpoint.strip())


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a collector's base URL (``http://collector:4318``)."""
    endpoint = endpoint.strip().rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


def tracer_provider(settings: Settings) -> TracerProvider:
    """This process's provider for the configured endpoint and service name.

    One per (endpoint, service name), made on first use and kept: every client and app
    of the process shares its exporting thread. It is not installed as OpenTelemetry's
    global provider, so nothing else in the process starts exporting by surprise.
    """
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    key = (traces_url(settings.otlp_endpoint), settings.otlp_service_name)
    with _lock:
        provider = _providers.get(key)
        if provider is None:
            # shutdown_on_exit (the default): the last batch is sent when the process ends.
            provider = TracerProvider(resource=Resource.create({SERVICE_NAME: key[1]}))
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=key[0])))
            _providers[key] = provider
        return provider


def temporal_interceptors(settings: Settings) -> list[Any]:
    """The Temporal client's interceptors: the SDK's tracing interceptor when on."""
    if not enabled(settings):
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(tracer_provider(settings).get_tracer("kakin.temporal"))]


def instrument_app(app: Any, settings: Settings) -> None:
    """Trace every request of the FastAPI ``app`` when on; leave it untouched when off."""
    if not enabled(settings):
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=tracer_provider(settings),
        server_request_hook=_scrub_request_span,
        excluded_urls=EXCLUDED_URLS,
        # One span per request, not one per ASGI message sent or received.
        exclude_spans=["receive", "send"],
    )


def _scrub_request_span(span: Span, scope: dict[str, Any]) -> None:
    """Overwrite what the instrumentation took from the request that may be personal data.

    Attributes cannot be removed from a started span, only overwritten: URLs keep their
    path (the query string is cut), the query and the peer's address become empty.
    """
    if not span.is_recording():
        return
    recorded = getattr(span, "attributes", None) or {}
    for name in _URL_ATTRIBUTES:
        value = recorded.get(name)
        if isinstance(value, str) and "?" in value:
            span.set_attribute(name, value.split("?", 1)[0])
    for name in _DROPPED_ATTRIBUTES:
        if name in recorded:
            span.set_attribute(name, "")


def flush(settings: Settings, *, timeout_millis: int = 10_000) -> bool:
    """Export the spans waiting in this process's batch (tests, short-lived commands)."""
    if not enabled(settings):
        return True
    return tracer_provider(settings).force_flush(timeout_millis)


def flush_all(*, timeout_millis: int = 5_000) -> None:
    """Export every provider's waiting spans: for a process about to end without the
    interpreter's teardown (``runtime.exit_process``), where the exit hook never runs.
    Nothing to do, and nothing imported, when tracing was never on."""
    with _lock:
        providers = list(_providers.values())
    for provider in providers:
        provider.force_flush(timeout_millis)
