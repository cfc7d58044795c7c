"""The papers an accountant files: invoice PDFs, and credit notes against paid invoices."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from api.deps import KEY, Deps, DepsDep, PathId
from api.errors import RESPONSES, ApiError
from api.idempotency import RESPONSES as IDEMPOTENT
from api.lookups import require_invoice
from api.requests.invoices import CreditNoteCreate
from api.routers.invoices import JSON_ERRORS
from api.workflow_calls import capitalized
from api.writes import WriteDep
from kakin import runtime as wiring
from kakin.adapters.rendering import make_template_env
from kakin.services import credit_notes
from kakin.services import invoices as invoice_service
from kakin.services.api_keys import KeyInfo
from kakin.services.credit_notes import CreditNoteRefusedError, issue_credit_note
from kakin.services.invoice_documents import invoice_pdf
from kakin.views.credit_notes import CreditNoteOut

PDF_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/pdf": {}}, "description": "the invoice as PDF"}
}


class PdfResponse(Response):
    media_type = "application/pdf"


router = APIRouter(prefix="/v1", responses=RESPONSES, tags=["invoices"])
templates = make_template_env()


@router.get(
    "/invoices/{invoice_id}/pdf",
    response_class=PdfResponse,
    responses={**PDF_RESPONSE, **JSON_ERRORS},
)
def get_invoice_pdf(deps: DepsDep, invoice_id: PathId, _: KeyInfo = KEY) -> Response:
    """The invoice as a PDF (A4, the same template as the HTML, Japanese included)."""
    return pdf_response(deps, invoice_id)


def pdf_response(deps: Deps, invoice_id: str) -> PdfResponse:
    """The invoice's PDF, named by its number (the console's download serves it too)."""
    seller = wiring.seller(deps.settings)
    pdf, name = invoice_service.get_invoice(
        deps.sessions,
        invoice_id,
        lambda invoice: (
            invoice_pdf(invoice, seller, templates),
            invoice.number or f"draft-{invoice.id}",
        ),
    )
    return PdfResponse(
        pdf,
        headers={"Content-Disposition": f'inline; filename="{name}.pdf"'},
    )


@router.post(
    "/invoices/{invoice_id}/credit-notes",
    status_code=201,
    response_model=CreditNoteOut,
    responses=IDEMPOTENT,
)
async def create_credit_note(
    invoice_id: PathId, body: CreditNoteCreate, write: WriteDep
) -> JSONResponse:
    """Credit a paid invoice in full or in part: refunded through Stripe, or kept as
    credit that the customer's next invoices use first (support)."""
    actor = write.requested_by
    return await write.run_sync(do_credit, write.deps, invoice_id, body, actor, status=201)


def do_credit(deps: Deps, invoice_id: str, body: CreditNoteCreate, actor: str) -> CreditNoteOut:
    require_invoice(deps.sessions, invoice_id)
    try:
        note_id = issue_credit_note(
            deps.sessions, deps.stripe, invoice_id=invoice_id, reason=body.reason,
            method=body.method, actor=actor, amount=body.amount, memo=body.memo,
        )  # fmt: skip
    except CreditNoteRefusedError as error:
        raise ApiError(409, capitalized(str(error))) from None
    return credit_notes.get_credit_note(deps.sessions, note_id, CreditNoteOut.model_validate)


@router.get("/invoices/{invoice_id}/credit-notes", response_model=list[CreditNoteOut])
def list_credit_notes(deps: DepsDep, invoice_id: PathId, _: KeyInfo = KEY) -> list[CreditNoteOut]:
    return credit_notes.list_credit_notes(deps.sessions, invoice_id, CreditNoteOut.model_validate)
