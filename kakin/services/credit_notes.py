"""Credit notes: give money back on a paid invoice, as a Stripe refund or as credit.

The numbers come from ``billing.credit_notes`` (never more than remains creditable,
split per tax group and rate). This module keeps the promises around them:

- the note, its number and (for credit) the customer's balance entry commit in one
  transaction, with the invoice row locked, so two requests cannot both credit the
  last yen;
- a refund is recorded as ``pending_refund`` *before* Stripe is called, and finding
  the refund by the note's key in the refund's metadata makes a retry (after a crash
  or a lost answer) settle the same refund instead of refunding twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from billing import credit_notes as rules
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import ledger
from kakin.services.errors import ConflictError, InvalidRequestError
from kakin.services.invoices import find_invoice, lines_total, stored_totals
from kakin.services.shaping import shaped
from models.payloads import InvoiceStatus
from models.repositories import audit as audit_sql
from models.repositories import credit_notes as credit_sql
from models.repositories import invoices as invoice_sql
from models.repositories import payments as payment_sql
from models.repositories.common import get, new_id
from models.tables import CreditNote, CreditTransaction, Invoice


class CreditNoteRefusedError(ConflictError, InvalidRequestError):
    """The credit note cannot be issued; the message says why in one sentence."""


def _settlement(method: str) -> rules.CreditSettlement:
    """A ``refund`` goes back to the card; a ``credit`` to the customer's balance."""
    if method == "refund":
        return rules.CreditSettlement.REFUND
    return rules.CreditSettlement.CUSTOMER_BALANCE


def _previous(notes: list[CreditNote]) -> list[rules.CreditNote]:
    return [
        rules.CreditNote(
            amount=note.amount,
            reason=rules.CreditNoteReason(note.reason),
            settlement=_settlement(note.method),
            memo=note.memo,
            nets=tuple(
                rules.CreditedNet(tax_rate_ids=tuple(item["tax_rate_ids"]), amount=item["amount"])
                for item in note.breakdown.get("nets", [])
            ),
            taxes=tuple(
                rules.CreditedTax(rate_id=item["rate_id"], amount=item["amount"])
                for item in note.breakdown.get("taxes", [])
            ),
        )
        for note in notes
    ]


def _not_refunded(invoice: Invoice, notes: list[CreditNote]) -> int:
    """What was paid on the invoice and not refunded yet."""
    return invoice.amount_paid - sum(n.amount for n in notes if n.method == "refund")


def _check_refundable(
    session: Session, invoice: Invoice, notes: list[CreditNote], amount: int
) -> None:
    """A refund goes back to the card: no more than was paid by card and not refunded."""
    left = _not_refunded(invoice, notes)
    if amount > left:
        raise CreditNoteRefusedError(
            f"only {left} was paid by card and not yet "
            "refunded; credit the rest to the customer's balance"
        )
    if payment_sql.paid_intent(session, invoice.id) is None:
        raise CreditNoteRefusedError(
            f"invoice {invoice.id} was not paid through Stripe; credit it instead"
        )


def _breakdown(note: rules.CreditNote) -> dict[str, Any]:
    """What the note credits, per tax-rate group and per tax (stored with the row)."""
    return {
        "nets": [{"tax_rate_ids": list(n.tax_rate_ids), "amount": n.amount} for n in note.nets],
        "taxes": [{"rate_id": t.rate_id, "amount": t.amount} for t in note.taxes],
    }


def issue_credit_note(
    sessions: sessionmaker[Session],
    stripe: StripeGateway,
    *,
    invoice_id: str,
    reason: str,
    method: Literal["refund", "credit"],
    actor: str,
    amount: int | None = None,
    memo: str = "",
    at: datetime | None = None,
) -> str:
    """Issue a full (``amount`` None) or partial credit note; returns its id.

    ``at`` dates the note (its audit row and ledger entries): the wall clock unless a
    caller on another clock (a time-skipping test) says otherwise."""
    at = at or datetime.now(UTC)
    try:
        reason = rules.CreditNoteReason(reason)
    except ValueError:
        known = ", ".join(r.value for r in rules.CreditNoteReason)
        raise CreditNoteRefusedError(f"reason must be one of {known}") from None
    with sessions() as session:
        invoice = invoice_sql.invoice_for_update(session, invoice_id)
        if invoice.status != InvoiceStatus.PAID:
            raise CreditNoteRefusedError(
                f"invoice {invoice.id} is {invoice.status}: only paid invoices take credit "
                "notes (void or waive an open one instead)"
            )
        notes = credit_sql.credit_notes_of(session, invoice.id)
        try:
            note = rules.create_credit_note(
                invoice=stored_totals(invoice),
                reason=reason,
                amount=amount,
                previous=_previous(notes),
                settlement=_settlement(method),
                memo=memo or None,
            )
        except rules.CreditNoteError as error:
            raise CreditNoteRefusedError(str(error)) from None
        if method == "refund":
            _check_refundable(session, invoice, notes, note.amount)
        row = _record(
            session, invoice, note, reason=reason, method=method, memo=memo, actor=actor, at=at
        )
        session.commit()
        note_id = row.id
    if method == "refund":
        settle_refund(sessions, stripe, credit_note_id=note_id, at=at)
    return note_id


def _record(
    session: Session,
    invoice: Invoice,
    note: rules.CreditNote,
    *,
    reason: rules.CreditNoteReason,
    method: str,
    memo: str,
    actor: str,
    at: datetime,
) -> CreditNote:
    """Add the note's row (numbered in the CN- series), the balance it credits (for a
    ``credit``) and its audit row to the session, uncommitted."""
    row = CreditNote(
        id=new_id("cn"),
        number=invoice_sql.take_number(session, "credit_note", "CN"),
        invoice_id=invoice.id,
        customer_id=invoice.customer_id,
        currency=invoice.currency,
        amount=note.amount,
        tax_amount=sum(item.amount for item in note.taxes),
        reason=str(reason),
        memo=memo,
        method=method,
        status="pending_refund" if method == "refund" else "credited",
        actor=actor,
        breakdown=_breakdown(note),
    )
    session.add(row)
    if method == "credit":
        session.add(
            CreditTransaction(
                business_key=f"credit:{row.id}",
                customer_id=invoice.customer_id,
                currency=invoice.currency,
                amount=note.amount,
                credit_note_id=row.id,
            )
        )
    audit_sql.audit(
        session,
        entity_type="invoice",
        entity_id=invoice.id,
        action="credit_note_issued",
        actor=actor,
        reason=memo or str(reason),
        occurred_at=at,
        details={"credit_note": row.number, "amount": note.amount, "method": method},
    )
    ledger.record_credit_note(session, invoice, row, occurred_at=at)
    return row


def settle_refund(
    sessions: sessionmaker[Session],
    stripe: StripeGateway,
    *,
    credit_note_id: str,
    at: datetime | None = None,
) -> None:
    """Make the Stripe refund of a ``pending_refund`` note (dated ``at``, by default
    now); safe to call again."""
    with sessions() as session:
        note = get(session, CreditNote, credit_note_id, "credit note")
        if note.status != "pending_refund":
            return
        intent = payment_sql.paid_intent(session, note.invoice_id)
        assert intent is not None  # checked when the note was issued
        key = f"refund:{note.id}"
        refund_id = stripe.find_refund(payment_intent_id=intent, kakin_key=key)
        if refund_id is None:
            refund_id = stripe.refund(
                payment_intent_id=intent, amount=note.amount, kakin_key=key, idempotency_key=key
            )
        note.stripe_refund_id = refund_id
        note.status = "refunded"
        ledger.record_refund(session, note.invoice, note, occurred_at=at or datetime.now(UTC))
        session.commit()


# --- credit note reads, for the faces (each shapes rows inside its session) ---

T = TypeVar("T")


@dataclass(frozen=True)
class Creditable:
    """What a credit note on an invoice may still give back (0 and 0: none may be issued)."""

    amount: int  # the creditable remainder, tax included
    refundable: int  # of it, what may go back to the card (the rest only as credit)


def credit_for_lines(sessions: sessionmaker[Session], invoice_id: str, positions: list[int]) -> int:
    """The amount, tax included, that credits the invoice's lines at ``positions``
    (``invoices.lines_total``; ``InvalidRequestError`` for lines it lacks)."""
    with sessions() as session:
        try:
            return lines_total(find_invoice(session, invoice_id), positions)
        except ValueError as error:
            raise InvalidRequestError(str(error)) from None


def creditable(sessions: sessionmaker[Session], invoice_id: str) -> Creditable:
    """What ``issue_credit_note`` would allow now on the invoice, for a form to say
    before it is sent (the issue checks it again, under the invoice's lock)."""
    with sessions() as session:
        invoice = find_invoice(session, invoice_id)
        if invoice.status != InvoiceStatus.PAID:
            return Creditable(amount=0, refundable=0)
        notes = credit_sql.credit_notes_of(session, invoice.id)
        remainder = rules.creditable_remainder(
            invoice=stored_totals(invoice), previous=_previous(notes)
        )
        by_card = _not_refunded(invoice, notes)
        if payment_sql.paid_intent(session, invoice.id) is None:
            by_card = 0
        return Creditable(amount=remainder, refundable=max(0, min(remainder, by_card)))


def get_credit_note(
    sessions: sessionmaker[Session], credit_note_id: str, shape: Callable[[CreditNote], T]
) -> T:
    return shaped(
        sessions, lambda session: get(session, CreditNote, credit_note_id, "credit note"), shape
    )


def list_credit_notes(
    sessions: sessionmaker[Session], invoice_id: str, shape: Callable[[CreditNote], T]
) -> list[T]:
    """The invoice's credit notes (``NotFoundError`` when there is no such invoice)."""
    with sessions() as session:
        find_invoice(session, invoice_id)
        return [shape(row) for row in credit_sql.credit_notes_of(session, invoice_id)]
