"""Invoice composition: discounts as lines, allocated per tax group, tax per rate, credit."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.discounts import Coupon, CouponDuration
from billing.invoice_math import InvoiceLine, InvoiceTotals, compose_invoice
from billing.rounding import RoundingMode, round_fraction
from billing.tax import TaxRate

STANDARD = TaxRate(id="jct10", name="消費税 10%", percentage=Decimal(10), jurisdiction="JP")
REDUCED = TaxRate(id="jct8", name="消費税 8%(軽減)", percentage=Decimal(8), jurisdiction="JP")
INCLUDED = TaxRate(id="vat20-incl", name="VAT", percentage=Decimal(20), inclusive=True)
RATES = [STANDARD, REDUCED]

YEN_1000 = Coupon(code="Y1000", duration=CouponDuration.ONCE, amount_off=1000, currency="JPY")


def jp(description: str, amount: int, rate: str, *, discountable: bool = True) -> InvoiceLine:
    return InvoiceLine(
        description=description, amount=amount, tax_rate_ids=(rate,), discountable=discountable
    )


def test_three_lines_of_105_yen_are_taxed_once() -> None:
    invoice = compose_invoice(
        currency="JPY", lines=[jp(f"item {i}", 105, "jct10") for i in range(3)], tax_rates=RATES
    )
    ten = invoice.tax_for("jct10")
    assert ten is not None and (ten.net_amount, ten.tax) == (315, 31)
    assert (invoice.subtotal, invoice.exclusive_tax, invoice.total) == (315, 31, 346)
    assert invoice.tax_for("jct8") is None


def test_ten_and_eight_percent_show_both_subtotals_and_both_taxes() -> None:
    invoice = compose_invoice(
        currency="JPY",
        lines=[
            jp("Pro plan", 9800, "jct10"),
            jp("Extra seats", 1200, "jct10"),
            jp("Coffee beans (軽減税率)", 5400, "jct8"),
        ],
        tax_rates=RATES,
    )
    ten, eight = invoice.taxes
    assert (ten.rate.id, ten.net_amount, ten.tax, ten.gross_amount) == ("jct10", 11000, 1100, 12100)
    assert (eight.rate.id, eight.net_amount, eight.tax, eight.gross_amount) == (
        "jct8", 5400, 432, 5832,
    )  # fmt: skip
    assert (invoice.subtotal, invoice.exclusive_tax, invoice.total) == (16400, 1532, 17932)
    assert invoice.amount_due == 17932


def test_a_discount_is_its_own_line_split_across_rates_by_largest_remainder() -> None:
    invoice = compose_invoice(
        currency="JPY",
        lines=[jp("Pro plan", 11000, "jct10"), jp("Coffee beans", 5400, "jct8")],
        tax_rates=RATES,
        coupons=[YEN_1000],
    )
    (discount,) = invoice.discounts
    assert (discount.coupon_code, discount.amount) == ("Y1000", 1000)
    # 1,000 x 11,000/16,400 = 670.73 and x 5,400/16,400 = 329.27: the spare yen goes
    # to the larger remainder.
    assert [(a.tax_rate_ids, a.amount) for a in discount.allocations] == [
        (("jct10",), 671),
        (("jct8",), 329),
    ]
    ten, eight = invoice.taxes
    assert (ten.net_amount, ten.tax) == (10329, 1032)  # 1,032.9 rounded down
    assert (eight.net_amount, eight.tax) == (5071, 405)  # 405.68 rounded down
    assert invoice.total == 16400 - 1000 + 1437


def test_coupons_apply_in_order_to_what_is_left_and_skip_other_lines() -> None:
    half = Coupon(code="HALF", duration=CouponDuration.ONCE, percent_off=Decimal(50))
    big = Coupon(code="BIG", duration=CouponDuration.ONCE, amount_off=10_000, currency="JPY")
    invoice = compose_invoice(
        currency="JPY",
        lines=[jp("Plan", 3000, "jct10"), jp("Setup fee", 2000, "jct10", discountable=False)],
        tax_rates=RATES,
        coupons=[half, big, YEN_1000],
    )
    # 50% of 3,000; then 10,000 capped at the 1,500 left; then nothing is left.
    assert [(d.coupon_code, d.amount) for d in invoice.discounts] == [("HALF", 1500), ("BIG", 1500)]
    assert invoice.discount_total == 3000
    assert invoice.tax_for("jct10") is not None
    assert invoice.total == 5000 - 3000 + 200


def test_credit_balance_is_applied_last() -> None:
    lines = [jp("Plan", 10000, "jct10")]
    some = compose_invoice(currency="JPY", lines=lines, tax_rates=RATES, credit_balance=500)
    assert (some.total, some.credit_applied, some.amount_due) == (11000, 500, 10500)
    lots = compose_invoice(currency="JPY", lines=lines, tax_rates=RATES, credit_balance=50000)
    assert (lots.total, lots.credit_applied, lots.amount_due) == (11000, 11000, 0)


def test_negative_total_goes_back_to_the_customer_balance() -> None:
    invoice = compose_invoice(
        currency="JPY",
        lines=[
            jp("Unused time on Pro", -4900, "jct10", discountable=False),
            jp("Remaining time on Basic", 1500, "jct10"),
        ],
        tax_rates=RATES,
        credit_balance=100,
    )
    assert invoice.exclusive_tax == -340  # -3,400 x 10% = -340
    assert invoice.total == -3740
    assert (invoice.credit_applied, invoice.amount_due, invoice.excess_credit) == (0, 0, 3740)


def test_inclusive_rates_are_reported_not_added() -> None:
    invoice = compose_invoice(
        currency="EUR",
        lines=[InvoiceLine(description="Plan", amount=1200, tax_rate_ids=("vat20-incl",))],
        tax_rates=[INCLUDED],
        coupons=[Coupon(code="T", duration=CouponDuration.ONCE, percent_off=Decimal(10))],
    )
    (vat,) = invoice.taxes
    # 1,200 - 120 = 1,080 gross; 1,080 x 20/120 = 180.
    assert (vat.gross_amount, vat.net_amount, vat.tax) == (1080, 900, 180)
    assert (invoice.inclusive_tax, invoice.exclusive_tax, invoice.total) == (180, 0, 1080)


def test_untaxed_lines_form_their_own_group() -> None:
    invoice = compose_invoice(
        currency="USD",
        lines=[InvoiceLine(description="Donation", amount=500), jp("Plan", 1000, "jct10")],
        tax_rates=RATES,
    )
    assert [g.tax_rate_ids for g in invoice.groups] == [(), ("jct10",)]
    assert invoice.total == 1600


def test_tax_rounding_mode_is_passed_through() -> None:
    lines = [jp(f"item {i}", 105, "jct10") for i in range(3)]
    invoice = compose_invoice(
        currency="JPY", lines=lines, tax_rates=RATES, tax_rounding=RoundingMode.HALF_UP
    )
    assert invoice.exclusive_tax == 32


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"lines": [jp("x", 1, "vat")]}, ValueError, "unknown tax rate"),
        ({"credit_balance": -1}, ValueError, "credit_balance"),
        ({"currency": "XXX"}, ValueError, "XXX"),
        (
            {"coupons": [Coupon(code="U", duration="once", amount_off=1, currency="USD")]},  # type: ignore[arg-type]
            ValueError,
            "cannot apply to a JPY invoice",
        ),
        (
            {"lines": [InvoiceLine(description="x", amount=1, tax_rate_ids=("jct10", "inc"))]},
            ValueError,
            "only tax rate",
        ),
    ],
)
def test_bad_invoices_are_refused(
    arguments: dict[str, object], error: type[Exception], message: str
) -> None:
    defaults: dict[str, object] = {
        "currency": "JPY",
        "lines": [jp("Plan", 1000, "jct10")],
        "tax_rates": [*RATES, TaxRate(id="inc", name="I", percentage=Decimal(5), inclusive=True)],
    }
    with pytest.raises(error, match=message):
        compose_invoice(**defaults | arguments)  # type: ignore[arg-type]


def test_negative_lines_must_not_be_discountable() -> None:
    with pytest.raises(ValueError, match="not discountable"):
        InvoiceLine(description="Credit", amount=-100)
    with pytest.raises(TypeError, match="integers"):
        InvoiceLine(description="Half", amount=1.5)  # type: ignore[arg-type]


# --- properties -------------------------------------------------------------------------------

POOL = [
    STANDARD,
    REDUCED,
    TaxRate(id="ca", name="CA", percentage=Decimal("7.25")),
    TaxRate(id="sf", name="SF", percentage=Decimal("1.375")),
    INCLUDED,
    TaxRate(id="gst-incl", name="GST", percentage=Decimal(15), inclusive=True),
]
RATE_SETS = [(), ("jct10",), ("jct8",), ("ca",), ("ca", "sf"), ("vat20-incl",), ("gst-incl",)]


@st.composite
def invoice_lines(draw: st.DrawFn) -> InvoiceLine:
    discountable = draw(st.booleans())
    low = 0 if discountable else -(10**6)
    return InvoiceLine(
        description="line",
        amount=draw(st.integers(min_value=low, max_value=10**7)),
        tax_rate_ids=draw(st.sampled_from(RATE_SETS)),
        discountable=discountable,
    )


coupons = st.one_of(
    st.builds(
        Coupon,
        code=st.just("P"),
        duration=st.just(CouponDuration.FOREVER),
        percent_off=st.decimals(min_value=Decimal("0.01"), max_value=100, places=2),
    ),
    st.builds(
        Coupon,
        code=st.just("F"),
        duration=st.just(CouponDuration.ONCE),
        amount_off=st.integers(min_value=1, max_value=10**7),
        currency=st.just("JPY"),
    ),
)


def _all_amounts_are_ints(invoice: InvoiceTotals) -> bool:
    numbers: list[object] = [
        invoice.subtotal, invoice.discount_total, invoice.exclusive_tax, invoice.inclusive_tax,
        invoice.total, invoice.credit_applied, invoice.amount_due, invoice.excess_credit,
    ]  # fmt: skip
    numbers += [d.amount for d in invoice.discounts]
    numbers += [a.amount for d in invoice.discounts for a in d.allocations]
    numbers += [n for g in invoice.groups for n in (g.amount, g.discount, g.net)]
    numbers += [n for t in invoice.taxes for n in (t.net_amount, t.tax, t.gross_amount)]
    return all(type(n) is int for n in numbers)


@given(
    st.lists(invoice_lines(), max_size=12),
    st.lists(coupons, max_size=3),
    st.integers(min_value=0, max_value=10**8),
    st.sampled_from(list(RoundingMode)),
)
def test_invoice_invariants(
    lines: list[InvoiceLine], applied: list[Coupon], balance: int, mode: RoundingMode
) -> None:
    invoice = compose_invoice(
        currency="JPY",
        lines=lines,
        tax_rates=POOL,
        coupons=applied,
        credit_balance=balance,
        tax_rounding=mode,
    )
    # total = sum of lines - discounts + exclusive tax
    assert invoice.subtotal == sum(line.amount for line in lines)
    assert invoice.total == invoice.subtotal - invoice.discount_total + invoice.exclusive_tax
    # no amount has more decimals than the currency: every amount is an int
    assert _all_amounts_are_ints(invoice)
    # discounts: each one adds up over its allocations, never exceeds what was discountable
    discountable = sum(line.amount for line in lines if line.discountable)
    assert 0 <= invoice.discount_total <= discountable
    for discount in invoice.discounts:
        assert sum(a.amount for a in discount.allocations) == discount.amount > 0
    for group in invoice.groups:
        group_discountable = sum(
            line.amount
            for line in lines
            if line.discountable and tuple(sorted(line.tax_rate_ids)) == group.tax_rate_ids
        )
        assert 0 <= group.discount <= group_discountable
    assert sum(g.net for g in invoice.groups) == invoice.subtotal - invoice.discount_total
    # tax once per rate on the discounted sum, rounded once
    for item in invoice.taxes:
        base = sum(g.net for g in invoice.groups if item.rate.id in g.tax_rate_ids)
        p = Fraction(item.rate.percentage)
        divisor = 100 + p if item.rate.inclusive else Fraction(100)
        assert item.tax == round_fraction(base * p / divisor, mode)
        assert item.gross_amount == item.net_amount + item.tax
    # credit applied last, never making anything negative
    assert invoice.amount_due >= 0 and invoice.credit_applied >= 0
    assert invoice.credit_applied <= balance
    assert invoice.amount_due + invoice.credit_applied == max(invoice.total, 0)
    assert invoice.excess_credit == max(-invoice.total, 0)


@given(st.lists(invoice_lines(), max_size=8), st.lists(coupons, max_size=2), st.randoms())
def test_line_order_does_not_change_the_numbers(
    lines: list[InvoiceLine], applied: list[Coupon], random: Random
) -> None:
    shuffled = list(lines)
    random.shuffle(shuffled)
    first = compose_invoice(currency="JPY", lines=lines, tax_rates=POOL, coupons=applied)
    second = compose_invoice(currency="JPY", lines=shuffled, tax_rates=POOL, coupons=applied)
    assert (first.groups, first.discounts, first.taxes, first.total) == (
        second.groups, second.discounts, second.taxes, second.total,
    )  # fmt: skip
