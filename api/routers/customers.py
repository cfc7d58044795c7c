"""Customers: create (here and at Stripe), read, update, list; their invoices and payments."""

from __future__ import annotations

import logging

import stripe as stripe_sdk
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import KEY, Deps, DepsDep, PageDep, PathId, PaymentPageDep
from api.errors import RESPONSES, ApiError, ErrorBody
from api.idempotency import RESPONSES as IDEMPOTENT
from api.requests.customers import CustomerCreate, CustomerUpdate
from api.writes import WriteDep
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
async def create_customer(body: CustomerCreate, write: WriteDep) -> JSONResponse:
    """Create a customer here and at Stripe. A card number is never stored or echoed."""
    return await write.run_sync(do_create_customer, write.deps, body, status=201)


def check_test_card(deps: Deps, body: CustomerCreate) -> None:
    """A card number is for test mode only, instead of a payment method, and one of Stripe's."""
    if body.card_number is None:
        return
    if deps.settings.live_mode or deps.stripe.live_mode:
        raise ApiError(422, "card_number is accepted only in test mode")
    if body.payment_method_id is not None:
        raise ApiError(422, "Give either card_number or payment_method_id, not both")
    if body.card_number.replace(" ", "").replace("-", "") not in TEST_CARDS:
        raise ApiError(422, "card_number is not a Stripe test card number")


def do_create_customer(deps: Deps, body: CustomerCreate) -> CustomerOut:
    check_test_card(deps, body)
    try:
        customer_id = customer_service.create_customer(
            deps.sessions, deps.stripe, **body.model_dump()
        )
    except service_errors.InvalidRequestError as error:
        raise ApiError(422, str(error)) from None
    except stripe_sdk.StripeError as error:
        log.warning("Stripe refused a customer: %s", error.user_message or type(error))
        raise ApiError(502, "Stripe did not accept the customer or its payment method") from None
    return customer_service.get_customer(deps.sessions, customer_id, CustomerOut.of)


@router.get("/customers", response_model=Page[CustomerOut])
def list_customers(deps: DepsDep, page: PageDep, _: KeyInfo = KEY) -> Page[CustomerOut]:
    return page.read(CustomerOut, customer_service.list_customers, deps.sessions, CustomerOut.of)


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
    deps: DepsDep, customer_id: PathId, page: PageDep, _: KeyInfo = KEY
) -> Page[InvoiceOut]:
    lister = customer_service.list_customer_invoices
    return page.read(InvoiceOut, lister, deps.sessions, customer_id, InvoiceOut.of)


@router.get("/customers/{customer_id}/payments", response_model=Page[PaymentOut])
def customer_payments(
    deps: DepsDep, customer_id: PathId, page: PaymentPageDep, _: KeyInfo = KEY
) -> Page[PaymentOut]:
    lister = customer_service.list_customer_payments
    return page.read(PaymentOut, lister, deps.sessions, customer_id, PaymentOut.of)
