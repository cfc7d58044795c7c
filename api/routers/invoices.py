"""Invoices: list, read (with lines), the rendered HTML; support acts on one in dunning.

Void, mark uncollectible and retry act only on the subscription's outstanding
invoice (the one its workflow is collecting); any other invoice is a 409.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

from api.deps import KEY, After, Deps, DepsDep, IdemKey, Limit, PathId, requester
from api.errors import RESPONSES, ApiError, ErrorBody
from api.idempotency import once
from api.requests.invoices import InvoiceActionCreate
from api.workflow_calls import TEMPORAL_DOWN, run_update
from kakin.services import invoices as invoice_service
from kakin.services import payments as payment_service
from kakin.services import subscriptions as subscription_service
from kakin.services.api_keys import KeyInfo
from kakin.views.common import Page
from kakin.views.invoices import InvoiceDetail, InvoiceOut, RetryAccepted
from models.payloads import InvoiceStatus, SubscriptionStatus

log = logging.getLogger("kakin.api")

ACTION_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorBody,
        "description": "not the invoice in dunning, refused by the subscription (the "
        "message says why), the workflow has ended, or the Idempotency-Key was used "
        "otherwise",
    },
    **TEMPORAL_DOWN,
}

# An HTML route's errors are still JSON; described as "model", FastAPI would file them
# under the route's text/html.
JSON_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {
        "description": response["description"],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    for code, response in RESPONSES.items()
}


router = APIRouter(prefix="/v1", responses=RESPONSES, tags=["invoices"])


@router.get("/invoices", response_model=Page[InvoiceOut])
def list_invoices(
    deps: DepsDep,
    _: KeyInfo = KEY,
    customer_id: str | None = None,
    subscription_id: str | None = None,
    status: InvoiceStatus | None = None,
    limit: Limit = 10,
    starting_after: After = None,
) -> Page[InvoiceOut]:
    rows, more = invoice_service.list_invoices(
        deps.sessions,
        InvoiceOut.of,
        limit=limit,
        starting_after=starting_after,
        status=status,
        customer_id=customer_id,
        subscription_id=subscription_id,
    )
    return Page[InvoiceOut](data=rows, has_more=more)


@router.get("/invoices/{invoice_id}", response_model=InvoiceDetail)
def get_invoice(deps: DepsDep, invoice_id: PathId, _: KeyInfo = KEY) -> InvoiceDetail:
    return invoice_service.get_invoice(deps.sessions, invoice_id, InvoiceDetail.with_lines)


@router.get(
    "/invoices/{invoice_id}/html",
    response_class=HTMLResponse,
    responses={
        200: {"content": {"text/html": {}}, "description": "the rendered invoice"},
        **JSON_ERRORS,
    },
)
def invoice_html(deps: DepsDep, invoice_id: PathId, _: KeyInfo = KEY) -> HTMLResponse:
    """The invoice as rendered for the customer (their language and time zone)."""
    html = invoice_service.get_invoice(deps.sessions, invoice_id, lambda row: row.html)
    if not html:
        raise ApiError(404, f"Invoice {invoice_id!r} has not been rendered yet")
    return HTMLResponse(html)


def invoice_subscription(deps: Deps, invoice_id: str) -> tuple[str, str, str]:
    """The invoice's subscription id, the invoice's status and the subscription's."""
    return invoice_service.invoice_and_subscription_status(deps.sessions, invoice_id)


async def check_in_collection(deps: Deps, invoice_id: str, done: str) -> str:
    """The invoice's subscription, if the invoice is the one in dunning; else 409."""
    subscription_id, invoice_status, subscription_status = await run_in_threadpool(
        invoice_subscription, deps, invoice_id
    )
    not_it = ApiError(
        409,
        f"Invoice {invoice_id!r} is not the one in collection; "
        f"only an invoice in dunning can be {done}",
    )
    if invoice_status != InvoiceStatus.OPEN or subscription_status == SubscriptionStatus.CANCELED:
        raise not_it
    client = await deps.connected()
    async with subscription_service.workflow_errors(
        subscription_id, "status query", unavailable="Temporal did not answer; try again"
    ):
        view = await subscription_service.subscription_status(client, subscription_id)
    outstanding = view.outstanding_invoice
    if outstanding is None or outstanding.invoice_id != invoice_id:
        raise not_it
    return subscription_id


def read_invoice(deps: Deps, invoice_id: str) -> InvoiceDetail:
    return invoice_service.get_invoice(deps.sessions, invoice_id, InvoiceDetail.with_lines)


async def do_waive(
    deps: Deps,
    invoice_id: str,
    body: InvoiceActionCreate,
    key: KeyInfo,
    mark_as: InvoiceStatus,
) -> InvoiceDetail:
    done = "voided" if mark_as == InvoiceStatus.VOID else "marked uncollectible"
    subscription_id = await check_in_collection(deps, invoice_id, done)
    await run_update(
        deps,
        subscription_id,
        "void" if mark_as == InvoiceStatus.VOID else "write-off",
        lambda client: subscription_service.waive_invoice(
            client,
            subscription_id,
            reason=body.reason,
            requested_by=requester(key),
            mark_as=mark_as,
            invoice_id=invoice_id,  # the workflow refuses if another took its place
        ),
    )
    return await run_in_threadpool(read_invoice, deps, invoice_id)


@router.post(
    "/invoices/{invoice_id}/void", response_model=InvoiceDetail, responses=ACTION_RESPONSES
)
async def void_invoice(
    deps: DepsDep,
    invoice_id: PathId,
    body: InvoiceActionCreate,
    request: Request,
    idempotency_key: IdemKey = None,
    key: KeyInfo = KEY,
) -> JSONResponse:
    """Void the invoice in dunning (support, admin): nothing more is charged for it and
    the subscription is active again (the ``waive_invoice`` update)."""
    return await once(
        request,
        deps.sessions,
        key,
        idempotency_key,
        status=200,
        work=lambda: do_waive(deps, invoice_id, body, key, InvoiceStatus.VOID),
    )


@router.post(
    "/invoices/{invoice_id}/mark_uncollectible",
    response_model=InvoiceDetail,
    responses=ACTION_RESPONSES,
)
async def mark_invoice_uncollectible(
    deps: DepsDep,
    invoice_id: PathId,
    body: InvoiceActionCreate,
    request: Request,
    idempotency_key: IdemKey = None,
    key: KeyInfo = KEY,
) -> JSONResponse:
    """Write the invoice in dunning off as ``uncollectible`` (support, admin); the
    subscription is active again (the ``waive_invoice`` update)."""
    return await once(
        request,
        deps.sessions,
        key,
        idempotency_key,
        status=200,
        work=lambda: do_waive(deps, invoice_id, body, key, InvoiceStatus.UNCOLLECTIBLE),
    )


async def do_retry(deps: Deps, invoice_id: str, key: KeyInfo) -> RetryAccepted:
    subscription_id = await check_in_collection(deps, invoice_id, "retried")
    client = await deps.connected()
    async with subscription_service.workflow_errors(subscription_id, "retry"):
        await payment_service.retry_payment_now(
            client, subscription_id, requested_by=requester(key)
        )
    return RetryAccepted(invoice_id=invoice_id, subscription_id=subscription_id)


@router.post(
    "/invoices/{invoice_id}/retry",
    status_code=202,
    response_model=RetryAccepted,
    responses=ACTION_RESPONSES,
)
async def retry_invoice(
    deps: DepsDep,
    invoice_id: PathId,
    request: Request,
    idempotency_key: IdemKey = None,
    key: KeyInfo = KEY,
) -> JSONResponse:
    """Charge the invoice in dunning again now, with the card on file (support, admin).

    Accepted (202): the workflow charges it; a decline keeps the dunning schedule.
    """
    return await once(
        request,
        deps.sessions,
        key,
        idempotency_key,
        status=202,
        work=lambda: do_retry(deps, invoice_id, key),
    )
