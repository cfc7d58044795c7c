"""An invoice as it is printed: the document (HTML, PDF, emails) resolved from its rows,
and the seller who issues it.

Emails, the HTTP API and the CLI all print an invoice through here, so the page, the
PDF and the email attachment cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import jinja2

from billing.tax import normalize_registration_number
from kakin.adapters.pdf import html_to_pdf
from kakin.adapters.rendering import (
    DocumentLine,
    InvoiceDocument,
    TaxSummary,
    render_invoice_html,
)
from models.tables import Invoice, InvoiceLine


@dataclass(frozen=True)
class Seller:
    """Who issues the invoices (printed on every invoice and email)."""

    name: str
    address: str
    registration_number: str = ""
    payment_update_url: str = ""
    billing_page_url: str = ""  # the customer's billing page, linked from every email
    email_from: str = "billing@kakin.example"
    email_from_name: str = "kakin billing"
    link_secret: str = "kakin-embedded-link-secret"  # signs links in emails (KAKIN_LINK_SECRET)
    # How tax is rounded, once per rate per invoice (KAKIN_TAX_ROUNDING): down is
    # 切り捨て, the usual choice of Japanese sellers.
    tax_rounding: str = "down"
    # The invoice PDF goes with every email about an invoice (KAKIN_ATTACH_INVOICE_PDF).
    attach_invoice_pdf: bool = True

    def __post_init__(self) -> None:
        # Checked wherever a Seller is built (settings, tests, the bench), not only in
        # Settings: the number is printed on every qualified invoice, so a wrong check
        # digit must never reach one. Stored canonical (T + 13 ASCII digits).
        if self.registration_number.strip():
            number = normalize_registration_number(self.registration_number)
            object.__setattr__(self, "registration_number", number)


def invoice_pdf(invoice: Invoice, seller: Seller, templates: jinja2.Environment) -> bytes:
    """The invoice as a PDF, rendered from its rows now (not the stored page: a receipt's
    PDF says paid). Emails, the API and the CLI all print it through here."""
    return html_to_pdf(invoice_html(invoice, seller, templates))


def invoice_html(invoice: Invoice, seller: Seller, templates: jinja2.Environment) -> str:
    """The invoice's page (kept with the invoice by ``render_invoice``), from its rows."""
    return render_invoice_html(templates, invoice_document(invoice, seller))


def invoice_document(invoice: Invoice, seller: Seller) -> InvoiceDocument:
    """The invoice as printed (HTML, PDF, emails), resolved from its rows."""
    customer = invoice.customer
    rates = {item["tax_rate_id"]: item for item in invoice.tax_breakdown}

    def tax_label(line: InvoiceLine) -> tuple[str, bool]:
        rate = rates.get(line.tax_rate_id or "")
        if rate is None:
            return "", False
        return f"{rate['percentage']}%{'※' if rate['reduced'] else ''}", bool(rate["reduced"])

    lines = []
    for line in invoice.lines:
        label, reduced = tax_label(line)
        lines.append(
            DocumentLine(
                description=line.description,
                unit_amount=line.unit_amount,
                quantity=line.quantity,
                amount=line.amount,
                period_start=line.period_start,
                period_end=line.period_end,
                kind=line.kind,
                usage_quantity=line.usage_quantity,
                tax_label=label,
                reduced_rate=reduced,
            )
        )
    return InvoiceDocument(
        number=invoice.number,
        status=invoice.status,
        currency=invoice.currency,
        locale=customer.locale,
        time_zone=customer.time_zone,
        customer_name=customer.name,
        customer_email=customer.email,
        seller_name=seller.name,
        seller_address=seller.address,
        # As finalized: an invoice keeps the number it was issued under.
        seller_registration_number=invoice.registration_number or seller.registration_number,
        issued_at=invoice.finalized_at or invoice.issued_at,
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        lines=lines,
        subtotal=invoice.subtotal,
        total=invoice.total,
        amount_paid=invoice.amount_paid,
        amount_due=invoice.amount_due,
        discount_total=invoice.discount_total,
        tax_total=invoice.tax_total,
        credit_applied=invoice.credit_applied,
        carried_forward=invoice.carried_forward,
        taxes=tuple(
            TaxSummary(
                label=item["name"],
                percentage=item["percentage"],
                inclusive=item["inclusive"],
                reduced=item["reduced"],
                taxable=item["taxable"],
                tax=item["tax"],
            )
            for item in invoice.tax_breakdown
        ),
    )
