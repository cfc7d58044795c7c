"""The renewal's first step: its invoice issued and charged in one activity.

Two activities' work under one Temporal action (billed per action on Temporal Cloud),
each step as safe to repeat as it was on its own: issuing is idempotent per period
(the invoice's business key ``invoice:<subscription>:<period>``; a retry finds the
invoice and, if it has no number yet, finishes it), and the charge per attempt (its
key ``charge:<invoice>:<attempt>`` is unique and Stripe's idempotency key; a retry
resumes the stored PaymentIntent). So a retry after a Stripe error or a crash
between the two steps re-reads the issued invoice (one query) and resumes the charge:
no second invoice, no second number, no second charge.

The steps are the activities' own methods (``InvoicingActivities.issue_invoice``,
``PaymentActivities.charge_invoice``), called as plain functions, so whatever they
record or count they still do. The activity runs where the charge runs: on the
Stripe task queue when one is configured (its rate is the charge's).
"""

from __future__ import annotations

from typing import Any

from temporalio import activity

from activities.invoicing import InvoicingActivities
from activities.payments import PaymentActivities
from kakin import contracts
from models.payloads import ChargeRequest, IssueAndChargeRequest, IssuedCharge


class RenewalActivities:
    """The issue-and-charge activity, over the invoicing and payment activities."""

    def __init__(self, *, invoicing: InvoicingActivities, payments: PaymentActivities) -> None:
        self._invoicing = invoicing
        self._payments = payments

    @activity.defn(name=contracts.ACTIVITY_ISSUE_AND_CHARGE_INVOICE)
    def issue_and_charge_invoice(self, request: IssueAndChargeRequest) -> IssuedCharge:
        """Issue the period's invoice (created, numbered, open), then charge it (attempt 1).

        A decline is an answer (``IssuedCharge.charge``), not an error; Stripe's
        network errors, 5xx and 429 raise, and the retry repeats both steps safely.
        """
        invoice = self._invoicing.issue_invoice(request)
        charge = self._payments.charge_invoice(
            ChargeRequest(
                invoice_id=invoice.invoice_id,
                attempt=1,
                attempted_at=request.issued_at,
                test_clock=request.test_clock,
            )
        )
        return IssuedCharge(invoice=invoice, charge=charge)

    def activities(self) -> list[Any]:
        """Every activity method, for ``Worker(activities=...)``."""
        return [self.issue_and_charge_invoice]
