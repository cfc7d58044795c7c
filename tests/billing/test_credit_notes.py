"""Credit notes: never more than what remains creditable, split exactly across rates."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.credit_notes import (
    CreditNote,
    CreditNoteError,
    CreditNoteReason,
    CreditSettlement,
    create_credit_note,
    creditable_remainder,
)
from billing.invoice_math import InvoiceLine, InvoiceTotals, compose_invoice
from billing.tax import TaxRate

STANDARD = TaxRate(id="jct10", name="消費税 10%", percentage=Decimal(10))
REDUCED = TaxRate(id="jct8", name="消費税 8%", percentage=Decimal(8))
INCLUDED = TaxRate(id="vat20-incl", name="VAT", percentage=Decimal(20), inclusive=True)
POOL = [STANDARD, REDUCED, INCLUDED]


def invoice_of(*lines: tuple[int, tuple[str, ...]]) -> InvoiceTotals:
    return compose_invoice(
        currency="JPY",
        lines=[InvoiceLine(description="line", amount=a, tax_rate_ids=r) for a, r in lines],
        tax_rates=POOL,
    )


# 11,000 at 10% (+1,100) and 5,400 at 8% (+432): total 17,932.
MIXED = invoice_of((11000, ("jct10",)), (5400, ("jct8",)))
UNSATISFIED = CreditNoteReason.PRODUCT_UNSATISFACTORY


def test_a_full_credit_note_credits_every_part() -> None:
    note = create_credit_note(invoice=MIXED, reason=CreditNoteReason.DUPLICATE)
    assert note.amount == 17932
    assert [(r.rate_id, r.net_amount, r.tax) for r in note.by_rate] == [
        ("jct10", 11000, 1100),
        ("jct8", 5400, 432),
    ]
    assert note.settlement is CreditSettlement.CUSTOMER_BALANCE


def test_a_partial_credit_note_is_split_proportionally_and_exactly() -> None:
    note = create_credit_note(
        invoice=MIXED, reason=UNSATISFIED, amount=1000, settlement=CreditSettlement.REFUND
    )
    assert sum(n.amount for n in note.nets) + sum(t.amount for t in note.taxes) == 1000
    # Parts 11,000 / 5,400 / 1,100 / 432 of 17,932 give 613.43 / 301.14 / 61.34 /
    # 24.09: 999 in whole yen, and the last yen goes to the largest remainder (.43).
    assert [(r.rate_id, r.net_amount, r.tax) for r in note.by_rate] == [
        ("jct10", 614, 61),
        ("jct8", 301, 24),
    ]


def test_later_credit_notes_get_what_remains_and_no_more() -> None:
    first = create_credit_note(invoice=MIXED, reason=UNSATISFIED, amount=17000)
    assert creditable_remainder(invoice=MIXED, previous=[first]) == 932
    with pytest.raises(CreditNoteError, match="cannot credit 933: only 932 of the invoice's 17932"):
        create_credit_note(invoice=MIXED, reason=UNSATISFIED, amount=933, previous=[first])
    rest = create_credit_note(invoice=MIXED, reason=UNSATISFIED, previous=[first])
    assert rest.amount == 932
    with pytest.raises(CreditNoteError, match="nothing left"):
        create_credit_note(invoice=MIXED, reason=UNSATISFIED, previous=[first, rest])
    for rate_id, net, tax in (("jct10", 11000, 1100), ("jct8", 5400, 432)):
        credited = [r for note in (first, rest) for r in note.by_rate if r.rate_id == rate_id]
        assert sum(r.net_amount for r in credited) == net
        assert sum(r.tax for r in credited) == tax


def test_inclusive_tax_is_credited_out_of_its_gross() -> None:
    invoice = invoice_of((1200, ("vat20-incl",)))
    note = create_credit_note(invoice=invoice, reason=UNSATISFIED, amount=600)
    assert [(r.rate_id, r.net_amount, r.tax) for r in note.by_rate] == [("vat20-incl", 500, 100)]


@pytest.mark.parametrize("amount", [0, -5, True])
def test_amount_must_be_a_positive_integer(amount: int) -> None:
    with pytest.raises(CreditNoteError, match="positive integer"):
        create_credit_note(invoice=MIXED, reason=UNSATISFIED, amount=amount)


def test_credit_note_error_is_a_value_error_and_reasons_are_checked() -> None:
    assert issubclass(CreditNoteError, ValueError)
    with pytest.raises(ValueError, match="changed_my_mind"):
        create_credit_note(invoice=MIXED, reason="changed_my_mind")  # type: ignore[arg-type]


def test_invoices_with_negative_parts_cannot_be_split() -> None:
    invoice = compose_invoice(
        currency="JPY",
        lines=[
            InvoiceLine(description="Plan", amount=1000, tax_rate_ids=("jct10",)),
            InvoiceLine(description="Credit", amount=-200, discountable=False),
        ],
        tax_rates=POOL,
    )
    with pytest.raises(CreditNoteError, match="negative parts"):
        create_credit_note(invoice=invoice, reason=UNSATISFIED, amount=100)


def test_a_negative_invoice_has_nothing_to_credit() -> None:
    invoice = compose_invoice(
        currency="JPY",
        lines=[InvoiceLine(description="Credit", amount=-200, discountable=False)],
        tax_rates=POOL,
    )
    assert creditable_remainder(invoice=invoice) == 0


# --- properties ---------------------------------------------------------------------------------

RATE_SETS = [(), ("jct10",), ("jct8",), ("jct10", "jct8"), ("vat20-incl",)]


@st.composite
def invoices(draw: st.DrawFn) -> InvoiceTotals:
    lines = draw(
        st.lists(
            st.tuples(st.integers(0, 10**6), st.sampled_from(RATE_SETS)), min_size=1, max_size=6
        )
    )
    return invoice_of(*lines)


@given(invoices(), st.lists(st.integers(min_value=1, max_value=2 * 10**6), max_size=6))
def test_credit_notes_never_exceed_what_remains(
    invoice: InvoiceTotals, requests: list[int]
) -> None:
    issued: list[CreditNote] = []
    for requested in requests:
        remainder = creditable_remainder(invoice=invoice, previous=issued)
        if requested > remainder:
            with pytest.raises(CreditNoteError):
                create_credit_note(
                    invoice=invoice, reason=UNSATISFIED, amount=requested, previous=issued
                )
            continue
        note = create_credit_note(
            invoice=invoice, reason=UNSATISFIED, amount=requested, previous=issued
        )
        parts = [n.amount for n in note.nets] + [t.amount for t in note.taxes]
        assert all(type(p) is int and p >= 0 for p in parts)
        assert sum(parts) == note.amount == requested
        issued.append(note)
        assert creditable_remainder(invoice=invoice, previous=issued) == remainder - requested
    assert sum(note.amount for note in issued) <= invoice.total
    # Per rate, all credit notes together never exceed the invoice's amounts and taxes.
    for item in invoice.taxes:
        credited = [r for note in issued for r in note.by_rate if r.rate_id == item.rate.id]
        assert sum(r.tax for r in credited) <= item.tax
        assert sum(r.net_amount for r in credited) <= item.net_amount


@given(invoices())
def test_a_full_credit_gives_back_exactly_the_invoice(invoice: InvoiceTotals) -> None:
    if invoice.total == 0:
        with pytest.raises(CreditNoteError, match="nothing left"):
            create_credit_note(invoice=invoice, reason=UNSATISFIED)
        return
    note = create_credit_note(invoice=invoice, reason=UNSATISFIED)
    assert note.amount == invoice.total
    for item, credited in zip(invoice.taxes, note.by_rate, strict=True):
        assert (credited.rate_id, credited.net_amount, credited.tax) == (
            item.rate.id, item.net_amount, item.tax,
        )  # fmt: skip
