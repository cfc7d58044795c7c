"""The HTTP API: ``create_app`` takes its dependencies, so tests pass their own.

Everything is under ``/v1``; the OpenAPI document is at ``/openapi.json``. Callers
authenticate with ``Authorization: Bearer kk_<role>_...`` (``kakin keys create``);
which roles may call each endpoint is the one table in ``api.access`` (in short:
``service`` runs the shop's side, creating customers, subscriptions and usage and
cancelling or changing plans on its customer's request; ``support`` reads everything
and runs the support actions; ``admin`` may do everything, the catalog included).

POST endpoints accept ``Idempotency-Key`` (see ``api.idempotency``). Every request
passes ``api.middleware``: a request id and an access-log line, a body size limit, and
the refusal of card numbers (``api.pan_guard``); keys are rate limited
(``api.rate_limit``). The endpoints live in ``api.routers``, one module per resource;
what they share is in ``api.deps`` (the app's ``Deps`` live on ``app.state``).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from api import access, billing_page, console, metrics, payment_page
from api.deps import Deps, TemporalSource, by_endpoint
from api.errors import install
from api.middleware import AccessLog, BodyGuard
from api.routers import (
    alerts,
    analytics,
    audit,
    catalog,
    customers,
    documents,
    exchange_rates,
    health,
    invoices,
    pricing,
    subscription_actions,
    subscriptions,
    usage,
    webhook_endpoints,
    webhooks,
)
from kakin import runtime
from kakin.adapters.rendering import make_template_env
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.platform import tracing
from kakin.platform.settings import Settings

__all__ = ["TemporalSource", "build_app", "create_app"]

ROUTERS = (
    health,
    webhooks,
    customers,
    catalog,
    subscriptions,
    subscription_actions,
    invoices,
    pricing,
    usage,
    alerts,
    documents,
    audit,
    analytics,
    exchange_rates,
    webhook_endpoints,
)
# Each endpoint's roles go into its description once, when the routers are first
# imported; a route that checks keys but has no row in the table stops the import.
for _module in ROUTERS:
    access.document(_module.router, by_endpoint)


def create_app(
    *,
    settings: Settings,
    sessions: sessionmaker[Session],
    temporal: TemporalSource,
    stripe: StripeGateway,
    clock: Callable[[], datetime] | None = None,
) -> FastAPI:
    """Build the API around the given database, Temporal client (or factory) and Stripe.

    ``clock`` stands in for the wall clock of the staff console's sessions (tests move it).
    Raises ``ConfigurationError`` for console settings a live key forbids.
    """
    app = FastAPI(
        title="kakin",
        version="1",
        description=(
            "Subscription billing: customers, the catalog, subscriptions and invoices, "
            "and the revenue analytics."
        ),
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    install(app)
    # Added innermost first: AccessLog wraps BodyGuard, so refusals are logged with an id.
    app.add_middleware(BodyGuard, max_body_bytes=settings.api_max_body_bytes)
    app.add_middleware(AccessLog)
    app.state.deps = Deps(settings=settings, sessions=sessions, temporal=temporal, stripe=stripe)
    app.state.templates = make_template_env()
    for module in ROUTERS:
        app.include_router(module.router)
    # The card-update page that dunning emails link to (outside /v1: it is for people).
    app.include_router(payment_page.router(settings))
    # The customer's own billing page, reached by the signed link in every email.
    billing_page.mount(app, settings)
    # The staff console (outside /v1: pages for people, signed in with a password and TOTP).
    console.mount(app, settings, clock=clock)
    # GET /metrics, and the request metrics: added last, the outermost middleware.
    metrics.mount(app)
    return app


def build_app(settings: Settings) -> FastAPI:
    """The API wired to the real dependencies from settings (``kakin api``)."""
    # One JSON line per request (api.middleware), shown even where the root is at WARNING;
    # it replaces uvicorn's access log, which would log query strings and client addresses.
    logging.getLogger("kakin.api.access").setLevel(logging.INFO)
    logging.getLogger("uvicorn.access").disabled = True
    app = create_app(
        settings=settings,
        sessions=runtime.session_factory(settings),
        temporal=lambda: runtime.temporal_client(settings),
        stripe=runtime.stripe_gateway(settings),
    )
    tracing.instrument_app(app, settings)  # KAKIN_OTLP_ENDPOINT: a span per request
    # What exists now (modules, the app, its routes and models) lives as long as the
    # process: frozen, the cyclic collector stops walking it at every full collection,
    # which a large request's garbage (a batch of 1,000 usage events) triggers often.
    gc.freeze()
    return app
