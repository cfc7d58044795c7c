"""Customers: create (here and at Stripe), read, update, list; their invoices and payments."""

from __future__ import annotations

import logging

import stripe as stripe_sdk
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.deps import KEY, After, AfterPayment, Deps, DepsDep, IdemKey, Limit, PathId
from api.errors import RESPONSES, ApiError, ErrorBody
from api.idempotency import RESPONSES as IDEMPOTENT
from api.idempotency import once
from api.requests.customers import CustomerCreate, CustomerUpdate
from kakin.adapters.stripe_gateway import TEST_CARDS
from kakin.services import customers as customer_service
from kakin.services import errors as service_errors
from kakin.services.api_keys import KeyInfo
from kakin.views.common import Page
from kakin.views.customers import CustomerOut
from kakin.views.invoices import InvoiceOut, PaymentOut

log = logging.getLogger("kakin.api")


router = APIRouter(prefix="/v1", responses=RESPONSES, tags=["customers"])


@router.post(
    "/customers",
    status_code=201,
    response_model=CustomerOut,
    responses={
        **IDEMPOTENT,
        502: {"model": ErrorBody, "description": "Stripe refused the customer or its card"},
    },
)
async def create_customer(
    deps: DepsDep,
    body: CustomerCreate,
    request: Request,
    idempotency_key: IdemKey = None,
    key: KeyInfo = KEY,
) -> JSONResponse:
    """Create a customer here and at Stripe. A card number is never stored or echoed."""
    return await once(
        request,
        deps.sessions,
        key,
        idempotency_key,
        status=201,
        work=lambda: run_in_threadpool(do_create_customer, deps, body),
    )


def do_create_customer(deps: Deps, body: CustomerCreate) -> CustomerOut:
    if body.card_number is not None:
        if deps.settings.live_mode or deps.stripe.live_mode:
            raise ApiError(422, "card_number is accepted only in test mode")
        if body.payment_method_id is not None:
            raise ApiError(422, "Give either card_number or payment_method_id, not both")
        if body.card_number.replace(" ", "").replace("-", "") not in TEST_CARDS:
            raise ApiError(422, "card_number is not a Stripe test card number")
    try:
        customer_id = customer_service.create_customer(
            deps.sessions,
            deps.stripe,
            email=body.email,
            name=body.name,
            currency=body.currency,
            locale=body.locale,
            time_zone=body.time_zone,
            card_number=body.card_number,
            payment_method_id=body.payment_method_id,
        )
    except service_errors.InvalidRequestError as error:
        raise ApiError(422, str(error)) from None
    except stripe_sdk.StripeError as error:
        log.warning("Stripe refused a customer: %s", error.user_message or type(error))
        raise ApiError(502, "Stripe did not accept the customer or its payment method") from None
    return customer_service.get_customer(deps.sessions, customer_id, CustomerOut.of)


@router.get("/customers", response_model=Page[CustomerOut])
def list_customers(
    deps: DepsDep, _: KeyInfo = KEY, limit: Limit = 10, starting_after: After = None
) -> Page[CustomerOut]:
    rows, more = customer_service.list_customers(
        deps.sessions, CustomerOut.of, limit=limit, starting_after=starting_after
    )
    return Page[CustomerOut](data=rows, has_more=more)


@router.get("/customers/{customer_id}", response_model=CustomerOut)
def get_customer(deps: DepsDep, customer_id: PathId, _: KeyInfo = KEY) -> CustomerOut:
    return customer_service.get_customer(deps.sessions, customer_id, CustomerOut.of)


@router.patch("/customers/{customer_id}", response_model=CustomerOut)
def update_customer(
    deps: DepsDep, customer_id: PathId, body: CustomerUpdate, _: KeyInfo = KEY
) -> CustomerOut:
    """Change email, name, locale or time zone; fields left out stay as they are."""
    changes = body.model_dump(exclude_unset=True)
    return customer_service.update_customer(deps.sessions, customer_id, changes, CustomerOut.of)


@router.get("/customers/{customer_id}/invoices", response_model=Page[InvoiceOut])
def customer_invoices(
    deps: DepsDep,
    customer_id: PathId,
    _: KeyInfo = KEY,
    limit: Limit = 10,
    starting_after: After = None,
) -> Page[InvoiceOut]:
    rows, more = customer_service.list_customer_invoices(
        deps.sessions, customer_id, InvoiceOut.of, limit=limit, starting_after=starting_after
    )
    return Page[InvoiceOut](data=rows, has_more=more)


@router.get("/customers/{customer_id}/payments", response_model=Page[PaymentOut])
def customer_payments(
    deps: DepsDep,
    customer_id: PathId,
    _: KeyInfo = KEY,
    limit: Limit = 10,
    starting_after: AfterPayment = None,
) -> Page[PaymentOut]:
    rows, more = customer_service.list_customer_payments(
        deps.sessions, customer_id, PaymentOut.of, limit=limit, starting_after=starting_after
    )
    return Page[PaymentOut](data=rows, has_more=more)
