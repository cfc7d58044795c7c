"""Credit notes against a finalized invoice: how much may be credited, split by tax rate.

- **Creditable remainder** = the invoice's total minus the amounts of the credit
  notes already issued against it (never below zero; an invoice with a negative
  total has nothing to credit). A credit note for more is refused with a
  ``CreditNoteError`` that names the remainder. A credit note without an amount is
  a full credit of the remainder.
- **Split across tax rates.** An invoice's total is made of *parts*: per tax group
  (``billing.invoice_math.TaxGroup``) the amount excluding tax, and per rate its tax
  (for an inclusive rate, the tax is taken out of its group's part). A credit note
  is split across the parts in proportion to what each part still has uncredited
  (its amount minus earlier credit notes' shares), with the largest-remainder
  method (``billing.rounding.allocate``). The split is exact (the shares add up to
  the credit note), deterministic (parts ordered as on the invoice: groups by their
  sorted rate ids, then rates in the invoice's order), and cumulative credit on any
  part never exceeds the part. So the per-rate amounts and taxes of all credit
  notes together never exceed the invoice's, which a Japanese return invoice
  (返還インボイス) needs: it shows the credited amount and tax per rate.
- **Settlement**: a credit note is refunded (through Stripe) or kept as customer
  credit that the next invoice uses first (``credit_balance`` in
  ``billing.invoice_math.compose_invoice``). This module records the choice.
- Whether the invoice may be credited at all (finalized, not void) is the
  caller's check: this module sees numbers, not invoice states.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction

from billing.invoice_math import InvoiceTotals
from billing.rounding import allocate


class CreditNoteError(ValueError):
    """A credit note that cannot be issued (too large, nothing left, bad amount)."""


class CreditNoteReason(StrEnum):
    """Why a credit note is issued (Stripe's reasons)."""

    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"
    ORDER_CHANGE = "order_change"
    PRODUCT_UNSATISFACTORY = "product_unsatisfactory"


class CreditSettlement(StrEnum):
    """Where the credited money goes."""

    REFUND = "refund"  # back to the payment method
    CUSTOMER_BALANCE = "customer_balance"  # used first by the next invoice


@dataclass(frozen=True)
class CreditedNet:
    """The part of a credit note that credits a tax group's amount excluding tax."""

    tax_rate_ids: tuple[str, ...]
    amount: int


@dataclass(frozen=True)
class CreditedTax:
    """The part of a credit note that credits one rate's tax."""

    rate_id: str
    amount: int


@dataclass(frozen=True)
class RateCredit:
    """A credit note's amount excluding tax and its tax for one rate (per-rate block)."""

    rate_id: str
    net_amount: int
    tax: int


@dataclass(frozen=True)
class CreditNote:
    """A credit note's numbers.

    Attributes:
        amount: The credited amount in minor units (tax included).
        reason: Why it is issued.
        settlement: Refund or customer balance.
        memo: Free text for the customer, e.g. the support ticket.
        nets: Credited amounts excluding tax, per tax group.
        taxes: Credited tax per rate.
    """

    amount: int
    reason: CreditNoteReason
    settlement: CreditSettlement
    memo: str | None
    nets: tuple[CreditedNet, ...]
    taxes: tuple[CreditedTax, ...]

    @property
    def by_rate(self) -> tuple[RateCredit, ...]:
        """Per tax rate: the credited amount excluding tax and the credited tax."""
        rate_ids = [item.rate_id for item in self.taxes]
        return tuple(
            RateCredit(
                rate_id=rate_id,
                net_amount=sum(n.amount for n in self.nets if rate_id in n.tax_rate_ids),
                tax=sum(t.amount for t in self.taxes if t.rate_id == rate_id),
            )
            for rate_id in rate_ids
        )


_Key = tuple[str, tuple[str, ...]]


def _parts(invoice: InvoiceTotals) -> dict[_Key, int]:
    """The invoice's total as parts: per group excluding tax, per rate its tax."""
    inclusive_tax = {item.rate.id: item.tax for item in invoice.taxes if item.rate.inclusive}
    parts: dict[_Key, int] = {}
    for group in invoice.groups:
        # A group with an inclusive rate carries only that rate (billing.tax), so
        # the rate's whole tax sits in this one group.
        contained = sum(inclusive_tax.get(rate_id, 0) for rate_id in group.tax_rate_ids)
        parts[("net", group.tax_rate_ids)] = group.net - contained
    for item in invoice.taxes:
        parts[("tax", (item.rate.id,))] = item.tax
    return parts


def _credited(previous: Sequence[CreditNote]) -> dict[_Key, int]:
    credited: dict[_Key, int] = {}
    for note in previous:
        for net in note.nets:
            key: _Key = ("net", net.tax_rate_ids)
            credited[key] = credited.get(key, 0) + net.amount
        for tax in note.taxes:
            key = ("tax", (tax.rate_id,))
            credited[key] = credited.get(key, 0) + tax.amount
    return credited


def creditable_remainder(*, invoice: InvoiceTotals, previous: Sequence[CreditNote] = ()) -> int:
    """What can still be credited: the total minus earlier credit notes, not below 0."""
    return max(invoice.total - sum(note.amount for note in previous), 0)


def create_credit_note(
    *,
    invoice: InvoiceTotals,
    reason: CreditNoteReason,
    amount: int | None = None,
    previous: Sequence[CreditNote] = (),
    settlement: CreditSettlement = CreditSettlement.CUSTOMER_BALANCE,
    memo: str | None = None,
) -> CreditNote:
    """Issue a full or partial credit note against a finalized invoice.

    Args:
        invoice: The invoice's totals (``billing.invoice_math.compose_invoice``).
        reason: Why the credit note is issued.
        amount: The amount to credit in minor units, tax included; ``None`` credits
            the whole remainder.
        previous: The credit notes already issued against this invoice.
        settlement: Refund, or keep as customer credit (default).
        memo: Free text shown on the credit note.

    Returns:
        The credit note, split across tax groups and rates.

    Raises:
        CreditNoteError: For an amount that is not a positive integer, above the
            creditable remainder, or when nothing is left to credit; or for an
            invoice whose parts are negative (credit lines outweighing a group),
            which cannot be split proportionally.
    """
    reason = CreditNoteReason(reason)
    settlement = CreditSettlement(settlement)
    remainder = creditable_remainder(invoice=invoice, previous=previous)
    if amount is None:
        if remainder == 0:
            raise CreditNoteError("nothing left to credit on this invoice")
        amount = remainder
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise CreditNoteError("a credit note's amount is a positive integer in minor units")
    if amount > remainder:
        raise CreditNoteError(
            f"cannot credit {amount}: only {remainder} of the invoice's {invoice.total} "
            "remains creditable"
        )
    parts = _parts(invoice)
    credited = _credited(previous)
    unknown = set(credited) - set(parts)
    if unknown:
        raise CreditNoteError(f"earlier credit notes name parts this invoice lacks: {unknown}")
    uncredited = {key: value - credited.get(key, 0) for key, value in parts.items()}
    if any(value < 0 for value in uncredited.values()):
        raise CreditNoteError(
            "this invoice has negative parts (credits outweigh charges in a tax group); "
            "it cannot be split proportionally"
        )
    keys = list(uncredited)
    shares = dict(zip(keys, allocate(amount, [Fraction(uncredited[k]) for k in keys]), strict=True))
    return CreditNote(
        amount=amount,
        reason=reason,
        settlement=settlement,
        memo=memo,
        nets=tuple(
            CreditedNet(tax_rate_ids=key[1], amount=share)
            for key, share in shares.items()
            if key[0] == "net"
        ),
        taxes=tuple(
            CreditedTax(rate_id=key[1][0], amount=share)
            for key, share in shares.items()
            if key[0] == "tax"
        ),
    )
