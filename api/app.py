"""The HTTP API: ``create_app`` takes its dependencies, so tests pass their own.

Everything is under ``/v1``; the OpenAPI document is at ``/openapi.json``. Callers
authenticate with ``Authorization: Bearer kk_<role>_...`` (``kakin keys create``):

| role | may |
|---|---|
| service | customers (create, read, update, list) and read prices |
| support | read everything |
| admin | everything, including the catalog (prices) |
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import stripe as stripe_sdk
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.stripe_gateway import TEST_CARDS, StripeGateway
from api.errors import RESPONSES, ApiError, install
from api.schemas import (
    CustomerCreate,
    CustomerOut,
    CustomerUpdate,
    Health,
    InvoiceOut,
    Page,
    PaymentOut,
    PriceCreate,
    PriceOut,
    Readiness,
)
from kakin import api_keys, service
from kakin.api_keys import KeyInfo, Role
from kakin.settings import Settings
from models import repositories as repo
from models.tables import Customer, Price

log = logging.getLogger("kakin.api")

R = TypeVar("R")
TemporalSource = Client | Callable[[], Awaitable[Client]]
READY_TIMEOUT = 5.0
NAMES = {"database": "the database", "temporal": "Temporal"}

Limit = Annotated[int, Query(ge=1, le=100, description="page size, at most 100")]
After = Annotated[str | None, Query(description="the last id of the previous page")]
AfterPayment = Annotated[int | None, Query(description="the last id of the previous page")]

_bearer = HTTPBearer(auto_error=False, description="an API key: kakin keys create")


def create_app(
    *,
    settings: Settings,
    sessions: sessionmaker[Session],
    temporal: TemporalSource,
    stripe: StripeGateway,
) -> FastAPI:
    """Build the API around the given database, Temporal client (or factory) and Stripe."""
    app = FastAPI(
        title="kakin",
        version="1",
        description="Subscription billing: customers and the catalog (more to come).",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    install(app)
    clients: list[Client] = []
    client_lock = asyncio.Lock()

    async def temporal_client() -> Client:
        if isinstance(temporal, Client):
            return temporal
        async with client_lock:
            if not clients:
                made = temporal()
                clients.append(await made if inspect.isawaitable(made) else made)
            return clients[0]

    # -- authentication and roles ---------------------------------------------------

    def require(*roles: Role) -> Callable[..., KeyInfo]:
        allowed = {Role.ADMIN, *roles}

        def dependency(
            request: Request,
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        ) -> KeyInfo:
            if credentials is None:
                raise ApiError(401, "The request needs an API key in 'Authorization: Bearer'")
            with sessions() as session:
                key = api_keys.authenticate(session, credentials.credentials)
            if key is None:
                raise ApiError(401, "The API key is unknown or revoked")
            if key.role not in allowed:
                raise ApiError(
                    403,
                    f"A {key.role} key may not call {request.method} {request.url.path}; "
                    f"this needs a key with the role {' or '.join(sorted(allowed))}",
                )
            return key

        return dependency

    any_key = Depends(require(Role.SERVICE, Role.SUPPORT))
    service_key = Depends(require(Role.SERVICE))
    admin_key = Depends(require())

    # -- health ------------------------------------------------------------------------

    public = APIRouter(prefix="/v1")  # no key needed
    v1 = APIRouter(prefix="/v1", responses=RESPONSES)

    @public.get("/health", response_model=Health, tags=["health"])
    async def health() -> Health:
        """Liveness: the process answers. No key needed."""
        return Health()

    def ping_database() -> None:
        with sessions() as session:
            repo.ping(session)

    @public.get(
        "/ready",
        response_model=Readiness,
        tags=["health"],
        responses={503: {"model": Readiness, "description": "a dependency is down"}},
    )
    async def ready() -> JSONResponse:
        """Readiness: the database answers SELECT 1 and Temporal its health check."""
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(run_in_threadpool(ping_database), READY_TIMEOUT)
            checks["database"] = "ok"
        except Exception as error:
            log.warning("readiness: database unavailable: %s", error)
            checks["database"] = "unavailable"
        try:
            client = await asyncio.wait_for(temporal_client(), READY_TIMEOUT)
            ok = await asyncio.wait_for(client.service_client.check_health(), READY_TIMEOUT)
            checks["temporal"] = "ok" if ok else "unavailable"
        except Exception as error:
            log.warning("readiness: temporal unavailable: %s", error)
            checks["temporal"] = "unavailable"
        failed = [name for name, state in checks.items() if state != "ok"]
        body = Readiness(status="unavailable" if failed else "ready", checks=checks)
        content = body.model_dump()
        if failed:
            down = " and ".join(NAMES[name] for name in failed)
            content["error"] = {
                "type": "unavailable",
                "message": f"Not ready: {down} cannot be reached.",
            }
        return JSONResponse(content, status_code=503 if failed else 200)

    # -- customers ---------------------------------------------------------------------

    def load_customer(session: Session, customer_id: str) -> Customer:
        row = session.get(Customer, customer_id)
        if row is None:
            raise ApiError(404, f"Customer {customer_id!r} does not exist")
        return row

    def paged(fetch: Callable[[], tuple[list[R], bool]]) -> tuple[list[R], bool]:
        try:
            return fetch()
        except repo.InvalidCursorError as error:
            raise ApiError(422, str(error)) from None

    @v1.post("/customers", status_code=201, response_model=CustomerOut, tags=["customers"])
    def create_customer(body: CustomerCreate, _: KeyInfo = service_key) -> CustomerOut:
        """Create a customer here and at Stripe. A card number is never stored or echoed."""
        if body.card_number is not None:
            if settings.live_mode or stripe.live_mode:
                raise ApiError(422, "card_number is accepted only in test mode")
            if body.payment_method_id is not None:
                raise ApiError(422, "Give either card_number or payment_method_id, not both")
            if body.card_number.replace(" ", "").replace("-", "") not in TEST_CARDS:
                raise ApiError(422, "card_number is not a Stripe test card number")
        try:
            customer_id = service.create_customer(
                sessions,
                stripe,
                email=body.email,
                name=body.name,
                currency=body.currency,
                locale=body.locale,
                time_zone=body.time_zone,
                card_number=body.card_number,
                payment_method_id=body.payment_method_id,
            )
        except service.InvalidRequestError as error:
            raise ApiError(422, str(error)) from None
        except stripe_sdk.StripeError as error:
            log.warning("Stripe refused a customer: %s", error.user_message or type(error))
            raise ApiError(
                502, "Stripe did not accept the customer or its payment method"
            ) from None
        with sessions() as session:
            return CustomerOut.of(load_customer(session, customer_id))

    @v1.get("/customers", response_model=Page[CustomerOut], tags=["customers"])
    def list_customers(
        _: KeyInfo = any_key, limit: Limit = 10, starting_after: After = None
    ) -> Page[CustomerOut]:
        with sessions() as session:
            rows, more = paged(
                lambda: repo.page(session, Customer, limit=limit, starting_after=starting_after)
            )
            return Page[CustomerOut](
                data=[CustomerOut.of(row) for row in rows],
                has_more=more,
            )

    @v1.get("/customers/{customer_id}", response_model=CustomerOut, tags=["customers"])
    def get_customer(customer_id: str, _: KeyInfo = any_key) -> CustomerOut:
        with sessions() as session:
            return CustomerOut.of(load_customer(session, customer_id))

    @v1.patch("/customers/{customer_id}", response_model=CustomerOut, tags=["customers"])
    def update_customer(
        customer_id: str, body: CustomerUpdate, _: KeyInfo = service_key
    ) -> CustomerOut:
        """Change email, name, locale or time zone; fields left out stay as they are."""
        with sessions() as session:
            row = load_customer(session, customer_id)
            for field, value in body.model_dump(exclude_unset=True).items():
                if value is None:
                    raise ApiError(422, f"{field} cannot be null")
                setattr(row, field, value)
            session.commit()
            return CustomerOut.of(row)

    @v1.get(
        "/customers/{customer_id}/invoices", response_model=Page[InvoiceOut], tags=["customers"]
    )
    def customer_invoices(
        customer_id: str, _: KeyInfo = any_key, limit: Limit = 10, starting_after: After = None
    ) -> Page[InvoiceOut]:
        with sessions() as session:
            load_customer(session, customer_id)
            rows, more = paged(
                lambda: repo.customer_invoices(
                    session, customer_id, limit=limit, starting_after=starting_after
                )
            )
            return Page[InvoiceOut](data=[InvoiceOut.of(row) for row in rows], has_more=more)

    @v1.get(
        "/customers/{customer_id}/payments", response_model=Page[PaymentOut], tags=["customers"]
    )
    def customer_payments(
        customer_id: str,
        _: KeyInfo = any_key,
        limit: Limit = 10,
        starting_after: AfterPayment = None,
    ) -> Page[PaymentOut]:
        with sessions() as session:
            load_customer(session, customer_id)
            rows, more = paged(
                lambda: repo.customer_payments(
                    session, customer_id, limit=limit, starting_after=starting_after
                )
            )
            return Page[PaymentOut](data=[PaymentOut.of(row) for row in rows], has_more=more)

    # -- catalog -------------------------------------------------------------------------

    def load_price(session: Session, price_id: str) -> Price:
        row = session.get(Price, price_id)
        if row is None:
            raise ApiError(404, f"Price {price_id!r} does not exist")
        return row

    @v1.post("/prices", status_code=201, response_model=PriceOut, tags=["catalog"])
    def create_price(body: PriceCreate, _: KeyInfo = admin_key) -> PriceOut:
        """Create a product with one flat-rate price (admin)."""
        try:
            price_id = service.create_price(
                sessions,
                product_name=body.product_name,
                nickname=body.nickname,
                currency=body.currency,
                unit_amount=body.unit_amount,
                interval=body.interval,
                interval_count=body.interval_count,
            )
        except service.InvalidRequestError as error:
            raise ApiError(422, str(error)) from None
        with sessions() as session:
            return PriceOut.of(load_price(session, price_id))

    @v1.get("/prices", response_model=Page[PriceOut], tags=["catalog"])
    def list_prices(
        _: KeyInfo = any_key, limit: Limit = 10, starting_after: After = None
    ) -> Page[PriceOut]:
        with sessions() as session:
            rows, more = paged(
                lambda: repo.page(session, Price, limit=limit, starting_after=starting_after)
            )
            return Page[PriceOut](data=[PriceOut.of(row) for row in rows], has_more=more)

    @v1.get("/prices/{price_id}", response_model=PriceOut, tags=["catalog"])
    def get_price(price_id: str, _: KeyInfo = any_key) -> PriceOut:
        with sessions() as session:
            return PriceOut.of(load_price(session, price_id))

    @v1.post("/prices/{price_id}/archive", response_model=PriceOut, tags=["catalog"])
    def archive_price(price_id: str, _: KeyInfo = admin_key) -> PriceOut:
        """Archive a price: it takes no new subscriptions; running ones continue."""
        with sessions() as session:
            row = load_price(session, price_id)
            row.active = False
            session.commit()
            return PriceOut.of(row)

    app.include_router(public)
    app.include_router(v1)
    return app


def build_app(settings: Settings) -> FastAPI:
    """The API wired to the real dependencies from settings (``kakin api``)."""
    from kakin import wiring

    return create_app(
        settings=settings,
        sessions=wiring.session_factory(settings),
        temporal=lambda: wiring.temporal_client(settings),
        stripe=wiring.stripe_gateway(settings),
    )
