"""Invoices: list, read (with lines), the rendered HTML; support acts on one in dunning.

Void, mark uncollectible and retry act only on the subscription's outstanding
invoice (the one its workflow is collecting); any other invoice is a 409.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

from api.deps import KEY, Deps, DepsDep, PageDep, PathId
from api.errors import RESPONSES, ApiError, ErrorBody
from api.requests.invoices import InvoiceActionCreate
from api.workflow_calls import TEMPORAL_DOWN, run_update
from api.writes import Write, WriteDep
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

# Writing an invoice off answers with the invoice as it is after.
WAIVE: dict[str, Any] = {"response_model": InvoiceDetail, "responses": ACTION_RESPONSES}

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
    page: PageDep,
    _: KeyInfo = KEY,
    customer_id: str | None = None,
    subscription_id: str | None = None,
    status: InvoiceStatus | None = None,
    overdue: Annotated[
        bool, Query(description="only open invoices past their due date (due when issued)")
    ] = False,
    period_from: Annotated[
        date | None, Query(description="the period starts on or after this day")
    ] = None,
    period_to: Annotated[
        date | None, Query(description="the period starts on or before this day")
    ] = None,
) -> Page[InvoiceOut]:
    """Newest first. The period's days are in the seller's reporting time zone
    (``KAKIN_REPORTING_TIME_ZONE``), as the console's filter takes them."""
    zone = deps.settings.reporting_time_zone
    starts_from, starts_before = invoice_service.period_bounds(period_from, period_to, zone)
    filters: dict[str, Any] = {
        "status": status, "customer_id": customer_id, "subscription_id": subscription_id,
        "overdue_at": datetime.now(UTC) if overdue else None,
        "period_from": starts_from, "period_until": starts_before,
    }  # fmt: skip
    return page.read(
        InvoiceOut, invoice_service.list_invoices, deps.sessions, InvoiceOut.of, **filters
    )


@router.get("/invoices/{invoice_id}", response_model=InvoiceDetail)
def get_invoice(deps: DepsDep, invoice_id: PathId, _: KeyInfo = KEY) -> InvoiceDetail:
    return read_invoice(deps, invoice_id)


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
    write: Write, invoice_id: str, body: InvoiceActionCreate, mark_as: InvoiceStatus
) -> InvoiceDetail:
    return await waive(
        write.deps, invoice_id, reason=body.reason, requested_by=write.requested_by,
        mark_as=mark_as,
    )  # fmt: skip


async def waive(
    deps: Deps, invoice_id: str, *, reason: str, requested_by: str, mark_as: InvoiceStatus
) -> InvoiceDetail:
    """Void or write off the invoice in dunning (the console's forms call it too)."""
    done = "voided" if mark_as == InvoiceStatus.VOID else "marked uncollectible"
    subscription_id = await check_in_collection(deps, invoice_id, done)
    await run_update(
        deps,
        subscription_id,
        "void" if mark_as == InvoiceStatus.VOID else "write-off",
        lambda client: subscription_service.waive_invoice(
            client,
            subscription_id,
            reason=reason,
            requested_by=requested_by,
            mark_as=mark_as,
            invoice_id=invoice_id,  # the workflow refuses if another took its place
        ),
    )
    return await run_in_threadpool(read_invoice, deps, invoice_id)


@router.post(
    "/invoices/{invoice_id}/void", response_model=InvoiceDetail, responses=ACTION_RESPONSES
)
async def void_invoice(
    invoice_id: PathId, body: InvoiceActionCreate, write: WriteDep
) -> JSONResponse:
    """Void the invoice in dunning (support, admin): nothing more is charged for it and
    the subscription is active again (the ``waive_invoice`` update)."""
    return await write.run(lambda: do_waive(write, invoice_id, body, InvoiceStatus.VOID))


@router.post(
    "/invoices/{invoice_id}/mark_uncollectible",
    response_model=InvoiceDetail,
    responses=ACTION_RESPONSES,
)
async def mark_invoice_uncollectible(
    invoice_id: PathId, body: InvoiceActionCreate, write: WriteDep
) -> JSONResponse:
    """Write the invoice in dunning off as ``uncollectible`` (support, admin); the
    subscription is active again (the ``waive_invoice`` update)."""
    uncollectible = InvoiceStatus.UNCOLLECTIBLE
    return await write.run(lambda: do_waive(write, invoice_id, body, uncollectible))


async def do_retry(write: Write, invoice_id: str) -> RetryAccepted:
    deps = write.deps
    subscription_id = await check_in_collection(deps, invoice_id, "retried")
    client = await deps.connected()
    async with subscription_service.workflow_errors(subscription_id, "retry"):
        await payment_service.retry_payment_now(
            client, subscription_id, requested_by=write.requested_by
        )
    return RetryAccepted(invoice_id=invoice_id, subscription_id=subscription_id)


@router.post(
    "/invoices/{invoice_id}/retry",
    status_code=202,
    response_model=RetryAccepted,
    responses=ACTION_RESPONSES,
)
async def retry_invoice(invoice_id: PathId, write: WriteDep) -> JSONResponse:
    """Charge the invoice in dunning again now, with the card on file (support, admin).

    Accepted (202): the workflow charges it; a decline keeps the dunning schedule.
    """
    return await write.run(lambda: do_retry(write, invoice_id), status=202)
