"""The ``data`` of an outgoing webhook event: its object exactly as the HTTP API shows it
(``GET /v1/customers/{id}``, ``/v1/subscriptions/{id}``, ``/v1/invoices/{id}``, a credit
note as ``/v1/invoices/{id}/credit-notes`` lists it). The worker is handed this function
(``kakin.runtime``): views are a layer above the activities that build the body."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from kakin.views.credit_notes import CreditNoteOut
from kakin.views.customers import CustomerOut
from kakin.views.invoices import InvoiceDetail
from kakin.views.subscriptions import SubscriptionOut
from models.tables import CreditNote, Customer, Invoice, Subscription


def event_data(row: Any) -> dict[str, Any]:
    """The JSON object of ``row`` (a customer, subscription, invoice or credit note)."""
    shown: BaseModel
    if isinstance(row, Customer):
        shown = CustomerOut.of(row)
    elif isinstance(row, Subscription):
        shown = SubscriptionOut.of(row)
    elif isinstance(row, Invoice):
        shown = InvoiceDetail.with_lines(row)
    elif isinstance(row, CreditNote):
        shown = CreditNoteOut.model_validate(row)
    else:
        raise TypeError(f"no webhook shape for {type(row).__name__}")
    return shown.model_dump(mode="json")
