"""The HTTP API: ``create_app`` takes its dependencies, so tests pass their own.

Everything is under ``/v1``; the OpenAPI document is at ``/openapi.json``. Callers
authenticate with ``Authorization: Bearer kk_<role>_...`` (``kakin keys create``):

| role | may |
|---|---|
| service | customers and subscriptions (start, read, cancel, change plan); reads prices, invoices |
| support | read everything; cancel, pause, resume, change plan, grace; act on dunning |
| admin | everything, including the catalog (prices) |

POST endpoints accept ``Idempotency-Key`` (see ``api.idempotency``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import stripe as stripe_sdk
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.exceptions import FailureError
from temporalio.service import RPCError, RPCStatusCode

from activities.rendering import make_template_env
from activities.stripe_gateway import TEST_CARDS, StripeGateway
from api import payment_page
from api.errors import RESPONSES, ApiError, ErrorBody, install
from api.idempotency import MAX_KEY_LENGTH, once
from api.idempotency import RESPONSES as IDEMPOTENT
from api.schemas import (
    CancelAccepted,
    CancelCreate,
    CustomerCreate,
    CustomerOut,
    CustomerUpdate,
    GraceCreate,
    Health,
    InvoiceActionCreate,
    InvoiceDetail,
    InvoiceOut,
    LiveStatus,
    OutstandingInvoiceOut,
    Page,
    PauseCreate,
    PaymentOut,
    PlanChangeCreate,
    PlanChangePreview,
    PriceCreate,
    PriceOut,
    Readiness,
    ResumeCreate,
    RetryAccepted,
    SubscriptionCreate,
    SubscriptionDetail,
    SubscriptionOut,
    SubscriptionStatusOut,
)
from kakin import api_keys, service, stripe_webhooks
from kakin.api_keys import KeyInfo, Role
from kakin.settings import Settings
from models import repositories as repo
from models.payloads import InvoiceStatus, StatusView, SubscriptionStatus
from models.tables import Customer, Invoice, Price, Subscription

log = logging.getLogger("kakin.api")

R = TypeVar("R")
TemporalSource = Client | Callable[[], Awaitable[Client]]
READY_TIMEOUT = 5.0
LIVE_TIMEOUT = 5.0  # the status query; a workflow nobody can answer for gives "live": null
NAMES = {"database": "the database", "temporal": "Temporal"}

Limit = Annotated[int, Query(ge=1, le=100, description="page size, at most 100")]
After = Annotated[str | None, Query(description="the last id of the previous page")]
AfterPayment = Annotated[int | None, Query(description="the last id of the previous page")]
IdemKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        description="a retry with the same key and body gets the first response back",
    ),
]

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
        description="Subscription billing: customers, the catalog, subscriptions and invoices.",
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
    support_key = Depends(require(Role.SUPPORT))
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

    @v1.post(
        "/customers",
        status_code=201,
        response_model=CustomerOut,
        tags=["customers"],
        responses=IDEMPOTENT,
    )
    async def create_customer(
        body: CustomerCreate,
        request: Request,
        idempotency_key: IdemKey = None,
        key: KeyInfo = service_key,
    ) -> JSONResponse:
        """Create a customer here and at Stripe. A card number is never stored or echoed."""
        return await once(
            request,
            sessions,
            key,
            idempotency_key,
            status=201,
            work=lambda: run_in_threadpool(do_create_customer, body),
        )

    def do_create_customer(body: CustomerCreate) -> CustomerOut:
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

    @v1.post(
        "/prices",
        status_code=201,
        response_model=PriceOut,
        tags=["catalog"],
        responses=IDEMPOTENT,
    )
    async def create_price(
        body: PriceCreate,
        request: Request,
        idempotency_key: IdemKey = None,
        key: KeyInfo = admin_key,
    ) -> JSONResponse:
        """Create a product with one flat-rate price (admin)."""
        return await once(
            request,
            sessions,
            key,
            idempotency_key,
            status=201,
            work=lambda: run_in_threadpool(do_create_price, body),
        )

    def do_create_price(body: PriceCreate) -> PriceOut:
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

    @v1.post(
        "/prices/{price_id}/archive",
        response_model=PriceOut,
        tags=["catalog"],
        responses=IDEMPOTENT,
    )
    async def archive_price(
        price_id: str,
        request: Request,
        idempotency_key: IdemKey = None,
        key: KeyInfo = admin_key,
    ) -> JSONResponse:
        """Archive a price: it takes no new subscriptions; running ones continue."""
        return await once(
            request,
            sessions,
            key,
            idempotency_key,
            status=200,
            work=lambda: run_in_threadpool(do_archive_price, price_id),
        )

    def do_archive_price(price_id: str) -> PriceOut:
        with sessions() as session:
            row = load_price(session, price_id)
            row.active = False
            session.commit()
            return PriceOut.of(row)

    # -- subscriptions -------------------------------------------------------------------

    def load_subscription(session: Session, subscription_id: str) -> Subscription:
        row = session.get(Subscription, subscription_id)
        if row is None:
            raise ApiError(404, f"Subscription {subscription_id!r} does not exist")
        return row

    def read_subscription(subscription_id: str) -> SubscriptionOut:
        with sessions() as session:
            return SubscriptionOut.of(load_subscription(session, subscription_id))

    async def connected() -> Client:
        try:
            return await asyncio.wait_for(temporal_client(), READY_TIMEOUT)
        except Exception as error:
            log.warning("temporal unavailable: %s", error)
            raise ApiError(503, "Temporal cannot be reached; try again shortly") from None

    def check_new_subscription(body: SubscriptionCreate) -> None:
        with sessions() as session:
            load_customer(session, body.customer_id)
            load_price(session, body.price_id)

    def store_metadata(subscription_id: str, metadata: dict[str, str]) -> SubscriptionOut:
        with sessions() as session:
            row = load_subscription(session, subscription_id)
            if metadata:
                row.metadata_ = dict(metadata)
                session.commit()
            return SubscriptionOut.of(row)

    async def do_start_subscription(body: SubscriptionCreate) -> SubscriptionOut:
        await run_in_threadpool(check_new_subscription, body)
        client = await connected()
        try:
            subscription_id = await service.start_subscription(
                client,
                sessions,
                task_queue=settings.task_queue,
                customer_id=body.customer_id,
                price_id=body.price_id,
                quantity=body.quantity,
                trial_days=body.trial_days,
                start_at=body.start_at,
                live_mode=settings.live_mode,
                dunning=settings.dunning_policy,
            )
        except service.InvalidRequestError as error:
            message = str(error)
            raise ApiError(422, message[:1].upper() + message[1:]) from None
        except RPCError as error:
            log.warning("Temporal did not start a subscription workflow: %s", error)
            raise ApiError(503, "Temporal did not start the subscription; try again") from None
        return await run_in_threadpool(store_metadata, subscription_id, body.metadata)

    @v1.post(
        "/subscriptions",
        status_code=201,
        response_model=SubscriptionOut,
        tags=["subscriptions"],
        responses=IDEMPOTENT,
    )
    async def create_subscription(
        body: SubscriptionCreate,
        request: Request,
        idempotency_key: IdemKey = None,
        key: KeyInfo = service_key,
    ) -> JSONResponse:
        """Start a subscription: its row, then its workflow, which bills it from now on."""
        return await once(
            request,
            sessions,
            key,
            idempotency_key,
            status=201,
            work=lambda: do_start_subscription(body),
        )

    @v1.get("/subscriptions", response_model=Page[SubscriptionOut], tags=["subscriptions"])
    def list_subscriptions(
        _: KeyInfo = any_key,
        status: SubscriptionStatus | None = None,
        customer_id: str | None = None,
        price_id: str | None = None,
        limit: Limit = 10,
        starting_after: After = None,
    ) -> Page[SubscriptionOut]:
        with sessions() as session:
            rows, more = paged(
                lambda: repo.subscriptions(
                    session,
                    limit=limit,
                    starting_after=starting_after,
                    status=status,
                    customer_id=customer_id,
                    price_id=price_id,
                )
            )
            return Page[SubscriptionOut](
                data=[SubscriptionOut.of(row) for row in rows], has_more=more
            )

    async def live_status(subscription_id: str) -> LiveStatus | None:
        try:
            client = await asyncio.wait_for(temporal_client(), LIVE_TIMEOUT)
            # A closed workflow (ended, or a run whose successor is gone) has no live status.
            described = await asyncio.wait_for(
                service.handle(client, subscription_id).describe(), LIVE_TIMEOUT
            )
            if described.status != WorkflowExecutionStatus.RUNNING:
                return None
            view = await asyncio.wait_for(
                service.subscription_status(client, subscription_id), LIVE_TIMEOUT
            )
        except Exception as error:
            log.info("no live status for %s: %s", subscription_id, error or type(error).__name__)
            return None
        outstanding = view.outstanding_invoice
        return LiveStatus(
            status=str(view.status),
            current_period_start=view.current_period_start,
            current_period_end=view.current_period_end,
            next_action=view.next_action,
            next_action_at=view.next_action_at,
            dunning_step=view.dunning_step,
            outstanding_invoice=(
                None if outstanding is None else OutstandingInvoiceOut(**vars(outstanding))
            ),
            cancel_at_period_end=view.cancel_at_period_end,
            now=view.now,
        )

    @v1.get(
        "/subscriptions/{subscription_id}",
        response_model=SubscriptionDetail,
        tags=["subscriptions"],
    )
    async def get_subscription(subscription_id: str, _: KeyInfo = any_key) -> SubscriptionDetail:
        """The stored subscription, with ``live``: its workflow's status query right now.

        While the workflow runs, its answer also sets ``status``, the current period and
        ``cancel_at_period_end`` (the workflow is ahead of the database by a moment).
        """
        row = await run_in_threadpool(read_subscription, subscription_id)
        live = await live_status(subscription_id)
        merged = row.model_dump()
        if live is not None:
            merged.update(
                status=live.status,
                current_period_start=live.current_period_start,
                current_period_end=live.current_period_end,
                cancel_at_period_end=live.cancel_at_period_end,
            )
        return SubscriptionDetail(**merged, live=live)

    def check_cancellable(subscription_id: str) -> None:
        with sessions() as session:
            row = load_subscription(session, subscription_id)
            if row.status == SubscriptionStatus.CANCELED:
                raise ApiError(409, f"Subscription {subscription_id!r} is already canceled")

    async def do_cancel(subscription_id: str, body: CancelCreate, key: KeyInfo) -> CancelAccepted:
        await run_in_threadpool(check_cancellable, subscription_id)
        requested_by = f"api-key:{key.id} ({key.name})"[:200]
        client = await connected()
        try:
            await service.cancel_subscription(
                client,
                subscription_id,
                reason=body.reason,
                at_period_end=body.at_period_end,
                requested_by=requested_by,
            )
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise ApiError(
                    409, f"Subscription {subscription_id!r} has ended; its workflow no longer runs"
                ) from None
            log.warning("Temporal did not take a cancel signal: %s", error)
            raise ApiError(503, "Temporal did not take the cancellation; try again") from None
        return CancelAccepted(
            subscription_id=subscription_id,
            reason=body.reason,
            at_period_end=body.at_period_end,
            requested_by=requested_by,
        )

    @v1.post(
        "/subscriptions/{subscription_id}/cancel",
        status_code=202,
        response_model=CancelAccepted,
        tags=["subscriptions"],
        responses={
            409: {
                "model": ErrorBody,
                "description": "already canceled, or the Idempotency-Key was used otherwise",
            }
        },
    )
    async def cancel_subscription(
        subscription_id: str,
        body: CancelCreate,
        request: Request,
        idempotency_key: IdemKey = None,
        key: KeyInfo = any_key,
    ) -> JSONResponse:
        """Send the ``cancel`` signal; ``at_period_end: false`` ends it now.

        Accepted (202): the workflow cancels, records the reason and who asked (this
        API key) in the audit log, and emails the customer.
        """
        return await once(
            request,
            sessions,
            key,
            idempotency_key,
            status=202,
            work=lambda: do_cancel(subscription_id, body, key),
        )

    def check_running(subscription_id: str) -> None:
        with sessions() as session:
            row = load_subscription(session, subscription_id)
            if row.status == SubscriptionStatus.CANCELED:
                raise ApiError(409, f"Subscription {subscription_id!r} is canceled")

    def requester(key: KeyInfo) -> str:
        return f"api-key:{key.id} ({key.name})"[:200]

    async def do_update(
        subscription_id: str, action: str, send: Callable[[Client], Awaitable[StatusView]]
    ) -> SubscriptionStatusOut:
        """Run a validated update; the validator's refusal becomes a 409 with its reason."""
        await run_in_threadpool(check_running, subscription_id)
        client = await connected()
        try:
            view = await send(client)
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            reason = cause.message if isinstance(cause, FailureError) else ""
            if not reason:
                log.warning("the %s update failed without a reason: %s", action, error)
                reason = f"the {action} was refused"
            raise ApiError(409, reason[:1].upper() + reason[1:]) from None
        except service.InvalidRequestError as error:
            message = str(error)
            status = 404 if message.endswith("does not exist") else 422
            raise ApiError(status, message[:1].upper() + message[1:]) from None
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise ApiError(
                    409, f"Subscription {subscription_id!r} has ended; its workflow no longer runs"
                ) from None
            log.warning("Temporal did not take a %s update: %s", action, error)
            raise ApiError(503, f"Temporal did not take the {action}; try again") from None
        return SubscriptionStatusOut.of(view)

    update_responses: dict[int | str, dict[str, Any]] = {
        409: {
            "model": ErrorBody,
            "description": "refused by the subscription (the message says why), the workflow "
            "has ended, or the Idempotency-Key was used otherwise",
        }
    }

    @v1.post(
        "/subscriptions/{subscription_id}/pause",
        response_model=SubscriptionStatusOut,
        tags=["subscriptions"],
        responses=update_responses,
    )
    async def pause_subscription(
        subscription_id: str,
        body: PauseCreate,
        request: Request,
        idempotency_key: IdemKey = None,
        key: KeyInfo = support_key,
    ) -> JSONResponse:
        """The ``pause`` update (support, admin): no invoices until resumed.

        Refused (409, with the reason) unless the subscription is active or trialing
        and not ending at the period end. The audit log keeps the reason and this key.
        """
        return await once(
            request,
            sessions,
            key,
            idempotency_key,
            status=200,
            work=lambda: do_update(
                subscription_id,
                "pause",
                lambda client: service.pause_subscription(
                    client, subscription_id, reason=body.reason, requested_by=requester(key)
                ),
            ),
        )

    @v1.post(
        "/subscriptions/{subscription_id}/resume",
        response_model=SubscriptionStatusOut,
        tags=["subscriptions"],
        responses=update_responses,
    )
    async def resume_subscription(
        subscription_id: str,
        request: Request,
        body: ResumeCreate | None = None,
        idempotency_key: IdemKey = None,
        key: KeyInfo = support_key,
    ) -> JSONResponse:
        """The ``resume`` update (support, admin): refused (409) unless paused.

        The paid period gets the paused time back.
        """
        return await once(
            request,
            sessions,
            key,
            idempotency_key,
            status=200,
            work=lambda: do_update(
                subscription_id,
                "resume",
                lambda client: service.resume_subscription(
                    client, subscription_id, requested_by=requester(key)
                ),
            ),
        )

    @v1.post(
        "/subscriptions/{subscription_id}/change_plan",
        response_model=SubscriptionStatusOut,
        tags=["subscriptions"],
        responses=update_responses,
    )
    async def change_plan(
        subscription_id: str,
        body: PlanChangeCreate,
        request: Request,
        idempotency_key: IdemKey = None,
        key: KeyInfo = any_key,
    ) -> JSONResponse:
        """The ``change_plan`` update: a dearer price now, a cheaper or equal one at the end
        of the paid period (``pending_price_id`` until then).

        An upgrade invoices the prorated difference and charges it at once. Same currency
        and interval only (422 otherwise); refused (409) unless active or trialing.
        """
        return await once(
            request,
            sessions,
            key,
            idempotency_key,
            status=200,
            work=lambda: do_update(
                subscription_id,
                "plan change",
                lambda client: service.change_plan(
                    client,
                    sessions,
                    subscription_id,
                    price_id=body.price_id,
                    requested_by=requester(key),
                    reason=body.reason,
                ),
            ),
        )

    def do_preview(subscription_id: str, price_id: str) -> PlanChangePreview:
        with sessions() as session:
            current = load_subscription(session, subscription_id).price
            new = load_price(session, price_id)
            if new.currency != current.currency:
                raise ApiError(
                    422,
                    f"Price is in {new.currency} but the subscription is billed in "
                    f"{current.currency}",
                )
            if (new.interval, new.interval_count) != (current.interval, current.interval_count):
                raise ApiError(
                    422,
                    "A plan change keeps the billing interval: "
                    f"{current.interval_count} {current.interval} now, "
                    f"{new.interval_count} {new.interval} asked",
                )
            currency = current.currency
        proration = service.preview_plan_change(
            sessions, subscription_id, price_id=price_id, at=datetime.now(UTC)
        )
        if proration is None:
            return PlanChangePreview(
                price_id=price_id,
                applies="at_period_end",
                credit=0,
                charge=0,
                net=0,
                currency=currency,
            )
        return PlanChangePreview(
            price_id=price_id,
            applies="now",
            credit=proration.credit,
            charge=proration.charge,
            net=proration.net,
            currency=currency,
        )

    @v1.get(
        "/subscriptions/{subscription_id}/change_plan/preview",
        response_model=PlanChangePreview,
        tags=["subscriptions"],
    )
    def preview_plan_change(
        subscription_id: str,
        price_id: Annotated[str, Query(min_length=1, max_length=40)],
        _: KeyInfo = any_key,
    ) -> PlanChangePreview:
        """What ``change_plan`` to ``price_id`` would charge if asked now (nothing changes).

        ``applies: now`` with the prorated credit, charge and net for a dearer price;
        ``at_period_end`` with zeros for a cheaper or equal one.
        """
        return do_preview(subscription_id, price_id)

    @v1.post(
        "/subscriptions/{subscription_id}/grace",
        response_model=SubscriptionStatusOut,
        tags=["subscriptions"],
        responses=update_responses,
    )
    async def grant_grace(
        subscription_id: str,
        body: GraceCreate,
        request: Request,
        idempotency_key: IdemKey = None,
        key: KeyInfo = support_key,
    ) -> JSONResponse:
        """The ``grant_grace`` update (support, admin): every remaining dunning step waits
        ``days`` (1 to 60) longer. Refused (409) unless the subscription is in dunning."""
        return await once(
            request,
            sessions,
            key,
            idempotency_key,
            status=200,
            work=lambda: do_update(
                subscription_id,
                "grace period",
                lambda client: service.grant_grace(
                    client,
                    subscription_id,
                    days=body.days,
                    reason=body.reason,
                    requested_by=requester(key),
                ),
            ),
        )

    # -- invoices ------------------------------------------------------------------------

    def load_invoice(session: Session, invoice_id: str) -> Invoice:
        row = session.get(Invoice, invoice_id)
        if row is None:
            raise ApiError(404, f"Invoice {invoice_id!r} does not exist")
        return row

    @v1.get("/invoices", response_model=Page[InvoiceOut], tags=["invoices"])
    def list_invoices(
        _: KeyInfo = any_key,
        customer_id: str | None = None,
        subscription_id: str | None = None,
        status: InvoiceStatus | None = None,
        limit: Limit = 10,
        starting_after: After = None,
    ) -> Page[InvoiceOut]:
        with sessions() as session:
            rows, more = paged(
                lambda: repo.invoices(
                    session,
                    limit=limit,
                    starting_after=starting_after,
                    status=status,
                    customer_id=customer_id,
                    subscription_id=subscription_id,
                )
            )
            return Page[InvoiceOut](data=[InvoiceOut.of(row) for row in rows], has_more=more)

    @v1.get("/invoices/{invoice_id}", response_model=InvoiceDetail, tags=["invoices"])
    def get_invoice(invoice_id: str, _: KeyInfo = any_key) -> InvoiceDetail:
        with sessions() as session:
            return InvoiceDetail.with_lines(load_invoice(session, invoice_id))

    @v1.get(
        "/invoices/{invoice_id}/html",
        response_class=HTMLResponse,
        tags=["invoices"],
        responses={200: {"content": {"text/html": {}}, "description": "the rendered invoice"}},
    )
    def invoice_html(invoice_id: str, _: KeyInfo = any_key) -> HTMLResponse:
        """The invoice as rendered for the customer (their language and time zone)."""
        with sessions() as session:
            row = load_invoice(session, invoice_id)
            if not row.html:
                raise ApiError(404, f"Invoice {invoice_id!r} has not been rendered yet")
            return HTMLResponse(row.html)

    def invoice_subscription(invoice_id: str) -> tuple[str, str, str]:
        """The invoice's subscription id, the invoice's status and the subscription's."""
        with sessions() as session:
            row = load_invoice(session, invoice_id)
            subscription = load_subscription(session, row.subscription_id)
            return row.subscription_id, row.status, subscription.status

    async def check_in_collection(invoice_id: str, done: str) -> str:
        """The invoice's subscription, if the invoice is the one in dunning; else 409."""
        subscription_id, invoice_status, subscription_status = await run_in_threadpool(
            invoice_subscription, invoice_id
        )
        not_it = ApiError(
            409,
            f"Invoice {invoice_id!r} is not the one in collection; "
            f"only an invoice in dunning can be {done}",
        )
        if (
            invoice_status != InvoiceStatus.OPEN
            or subscription_status == SubscriptionStatus.CANCELED
        ):
            raise not_it
        client = await connected()
        try:
            view = await service.subscription_status(client, subscription_id)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise ApiError(
                    409, f"Subscription {subscription_id!r} has ended; its workflow no longer runs"
                ) from None
            log.warning("Temporal did not answer the status query: %s", error)
            raise ApiError(503, "Temporal did not answer; try again") from None
        outstanding = view.outstanding_invoice
        if outstanding is None or outstanding.invoice_id != invoice_id:
            raise not_it
        return subscription_id

    def read_invoice(invoice_id: str) -> InvoiceDetail:
        with sessions() as session:
            return InvoiceDetail.with_lines(load_invoice(session, invoice_id))

    async def do_waive(
        invoice_id: str, body: InvoiceActionCreate, key: KeyInfo, mark_as: InvoiceStatus
    ) -> InvoiceDetail:
        done = "voided" if mark_as == InvoiceStatus.VOID else "marked uncollectible"
        subscription_id = await check_in_collection(invoice_id, done)
        await do_update(
            subscription_id,
            "void" if mark_as == InvoiceStatus.VOID else "write-off",
            lambda client: service.waive_invoice(
                client,
                subscription_id,
                reason=body.reason,
                requested_by=requester(key),
                mark_as=mark_as,
                invoice_id=invoice_id,  # the workflow refuses if another took its place
            ),
        )
        return await run_in_threadpool(read_invoice, invoice_id)

    invoice_action_responses: dict[int | str, dict[str, Any]] = {
        409: {
            "model": ErrorBody,
            "description": "not the invoice in dunning, refused by the subscription (the "
            "message says why), the workflow has ended, or the Idempotency-Key was used "
            "otherwise",
        }
    }

    @v1.post(
        "/invoices/{invoice_id}/void",
        response_model=InvoiceDetail,
        tags=["invoices"],
        responses=invoice_action_responses,
    )
    async def void_invoice(
        invoice_id: str,
        body: InvoiceActionCreate,
        request: Request,
        idempotency_key: IdemKey = None,
        key: KeyInfo = support_key,
    ) -> JSONResponse:
        """Void the invoice in dunning (support, admin): nothing more is charged for it and
        the subscription is active again (the ``waive_invoice`` update)."""
        return await once(
            request,
            sessions,
            key,
            idempotency_key,
            status=200,
            work=lambda: do_waive(invoice_id, body, key, InvoiceStatus.VOID),
        )

    @v1.post(
        "/invoices/{invoice_id}/mark_uncollectible",
        response_model=InvoiceDetail,
        tags=["invoices"],
        responses=invoice_action_responses,
    )
    async def mark_invoice_uncollectible(
        invoice_id: str,
        body: InvoiceActionCreate,
        request: Request,
        idempotency_key: IdemKey = None,
        key: KeyInfo = support_key,
    ) -> JSONResponse:
        """Write the invoice in dunning off as ``uncollectible`` (support, admin); the
        subscription is active again (the ``waive_invoice`` update)."""
        return await once(
            request,
            sessions,
            key,
            idempotency_key,
            status=200,
            work=lambda: do_waive(invoice_id, body, key, InvoiceStatus.UNCOLLECTIBLE),
        )

    async def do_retry(invoice_id: str, key: KeyInfo) -> RetryAccepted:
        subscription_id = await check_in_collection(invoice_id, "retried")
        client = await connected()
        try:
            await service.retry_payment_now(client, subscription_id, requested_by=requester(key))
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise ApiError(
                    409, f"Subscription {subscription_id!r} has ended; its workflow no longer runs"
                ) from None
            log.warning("Temporal did not take a retry signal: %s", error)
            raise ApiError(503, "Temporal did not take the retry; try again") from None
        return RetryAccepted(invoice_id=invoice_id, subscription_id=subscription_id)

    @v1.post(
        "/invoices/{invoice_id}/retry",
        status_code=202,
        response_model=RetryAccepted,
        tags=["invoices"],
        responses=invoice_action_responses,
    )
    async def retry_invoice(
        invoice_id: str,
        request: Request,
        idempotency_key: IdemKey = None,
        key: KeyInfo = support_key,
    ) -> JSONResponse:
        """Charge the invoice in dunning again now, with the card on file (support, admin).

        Accepted (202): the workflow charges it; a decline keeps the dunning schedule.
        """
        return await once(
            request,
            sessions,
            key,
            idempotency_key,
            status=202,
            work=lambda: do_retry(invoice_id, key),
        )

    # -- Stripe webhooks ------------------------------------------------------------------

    @public.post("/webhooks/stripe", tags=["webhooks"], responses=RESPONSES)
    async def stripe_webhook(request: Request) -> JSONResponse:
        """Stripe events, authenticated by their ``Stripe-Signature`` (no API key).

        400 for a bad signature, a stale timestamp or a body that is not an event;
        200 for a replayed event id (acknowledged, nothing changes); 503 if Temporal
        cannot be told (Stripe redelivers, and the event is processed then).
        """
        payload = await request.body()
        try:
            client = await asyncio.wait_for(temporal_client(), READY_TIMEOUT)
        except Exception as error:
            log.warning("webhook: Temporal unavailable: %s", error)
            raise ApiError(503, "Temporal cannot be reached; Stripe will redeliver") from None
        try:
            outcome = await stripe_webhooks.receive(
                client,
                sessions,
                payload,
                request.headers.get("Stripe-Signature"),
                secret=settings.stripe_webhook_secret,
                tolerance=settings.stripe_webhook_tolerance,
            )
        except stripe_webhooks.WebhookRejectedError as error:
            raise ApiError(400, str(error)) from None
        except RPCError as error:
            log.warning("webhook: signalling failed: %s", error)
            raise ApiError(503, "Temporal cannot be reached; Stripe will redeliver") from None
        return JSONResponse(
            {"received": True, "id": outcome.event_id, "duplicate": outcome.duplicate}
        )

    app.include_router(public)
    app.include_router(v1)
    # The card-update page that dunning emails link to (outside /v1: it is for people).
    app.include_router(
        payment_page.router(
            settings=settings,
            sessions=sessions,
            temporal=temporal_client,
            stripe=stripe,
            templates=make_template_env(),
        )
    )
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
