"""Invoice arithmetic: lines, discounts, tax per rate, credit balance, amount due.

The order of operations, all in integer minor units of one currency:

1. **Subtotal** = the sum of the line amounts, as entered. A line's amount already
   includes an inclusive tax rate; a negative line (a proration credit) must be
   marked not discountable.
2. **Discounts**, each its own invoice line. Coupons apply in the order given, each
   to the discountable amount that earlier coupons left (so together they never
   exceed it); a coupon's amount is computed once on that whole amount and rounded
   half-even once (``billing.discounts.discount_amount``).
3. **Allocation.** Lines are grouped by their set of tax rates ("tax groups",
   ordered by their sorted rate ids, the untaxed group first). Each discount is
   split across the groups in proportion to what each group still has to discount
   (its discountable lines minus earlier discounts), with the largest-remainder
   method (``billing.rounding.allocate``): exact, deterministic, never more than a
   group has, and adding up to the discount. So the per-rate subtotals on the
   invoice are after discounts and add up.
4. **Tax** once per rate on the sum of the discounted groups carrying that rate,
   rounded once with the configurable mode (down by default;
   ``billing.tax.compute_taxes``). Exclusive tax is added; inclusive tax is already
   inside the amounts and only reported.
5. **Total** = subtotal - discounts + exclusive tax.
6. **Customer credit** (the balance from earlier credit notes) is applied last:
   ``credit_applied = min(balance, total)``, ``amount_due = total - credit_applied``,
   never negative. An invoice whose total is negative (credits exceeding charges)
   has nothing due, and ``excess_credit = -total`` goes back to the customer's
   balance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from billing.discounts import Coupon, discount_amount
from billing.money import normalize_currency
from billing.rounding import RoundingMode, allocate
from billing.tax import RateTotal, TaxableAmount, TaxRate, compute_taxes, line_rate_error


@dataclass(frozen=True)
class InvoiceLine:
    """A line to invoice.

    Attributes:
        description: What the line is for.
        amount: Minor units (tax included if its rate is inclusive).
        tax_rate_ids: The tax rates that apply (order does not matter).
        discountable: Whether coupons reduce this line.
    """

    description: str
    amount: int
    tax_rate_ids: tuple[str, ...] = ()
    discountable: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise TypeError(f"line {self.description!r}: amounts are integers in minor units")
        if self.discountable and self.amount < 0:
            raise ValueError(
                f"line {self.description!r} is negative and must be marked not discountable"
            )
        object.__setattr__(self, "tax_rate_ids", tuple(self.tax_rate_ids))


@dataclass(frozen=True)
class DiscountAllocation:
    """The part of a discount that falls on one tax group."""

    tax_rate_ids: tuple[str, ...]
    amount: int


@dataclass(frozen=True)
class DiscountLine:
    """A discount shown as its own invoice line.

    Attributes:
        coupon_code: The coupon's code.
        amount: The discount in minor units (positive; it is subtracted).
        allocations: How it splits across tax groups; adds up to ``amount``.
    """

    coupon_code: str
    amount: int
    allocations: tuple[DiscountAllocation, ...]


@dataclass(frozen=True)
class TaxGroup:
    """The lines sharing one set of tax rates.

    Attributes:
        tax_rate_ids: The sorted rate ids (empty for untaxed lines).
        amount: The sum of the group's lines.
        discount: The discounts allocated to the group.
        net: ``amount - discount``: the base its rates are computed on (for an
            inclusive rate, still including the tax).
    """

    tax_rate_ids: tuple[str, ...]
    amount: int
    discount: int
    net: int


@dataclass(frozen=True)
class InvoiceTotals:
    """A composed invoice's numbers, all integers in minor units of ``currency``.

    Attributes:
        currency: ISO 4217 code.
        lines: The lines, as given.
        subtotal: The sum of the lines.
        discounts: One line per coupon that gave a discount.
        discount_total: The sum of the discounts.
        groups: The tax groups, after discounts.
        taxes: Per rate: net (税抜), tax, gross (税込), in the order of the rates given.
        exclusive_tax: The tax added on top (exclusive rates).
        inclusive_tax: The tax contained in the amounts (inclusive rates).
        total: ``subtotal - discount_total + exclusive_tax``.
        credit_applied: Customer credit balance used on this invoice.
        amount_due: ``total - credit_applied``, never negative.
        excess_credit: ``-total`` when the total is negative, else 0: goes back to
            the customer's credit balance.
    """

    currency: str
    lines: tuple[InvoiceLine, ...]
    subtotal: int
    discounts: tuple[DiscountLine, ...]
    discount_total: int
    groups: tuple[TaxGroup, ...]
    taxes: tuple[RateTotal, ...]
    exclusive_tax: int
    inclusive_tax: int
    total: int
    credit_applied: int
    amount_due: int
    excess_credit: int

    def tax_for(self, rate_id: str) -> RateTotal | None:
        """The totals of one rate (e.g. the 10%対象 and 8%対象 blocks), if used."""
        return next((item for item in self.taxes if item.rate.id == rate_id), None)


def compose_invoice(
    *,
    currency: str,
    lines: Sequence[InvoiceLine],
    tax_rates: Sequence[TaxRate] = (),
    coupons: Sequence[Coupon] = (),
    credit_balance: int = 0,
    tax_rounding: RoundingMode = RoundingMode.DOWN,
) -> InvoiceTotals:
    """Compute an invoice's discounts, taxes per rate and totals.

    Args:
        currency: The invoice's ISO 4217 currency.
        lines: The invoice lines.
        tax_rates: The rates the lines refer to; the per-rate totals follow this
            order.
        coupons: Coupons to apply, in order (the caller has already decided they
            apply to this period: ``billing.discounts.applies``).
        credit_balance: The customer's credit balance (minor units, not negative).
        tax_rounding: How tax is rounded per rate, down (切り捨て) by default.

    Returns:
        The composed totals.

    Raises:
        ValueError: For an unknown tax rate id or an impossible combination of rates
            on a line, a negative credit balance, or a coupon in another currency.
    """
    code = normalize_currency(currency)
    if not isinstance(credit_balance, int) or isinstance(credit_balance, bool):
        raise TypeError("credit_balance is an integer in minor units")
    if credit_balance < 0:
        raise ValueError("credit_balance must not be negative")
    rates_by_id = {rate.id: rate for rate in tax_rates}
    if len(rates_by_id) != len(tax_rates):
        raise ValueError("tax rate ids must be unique")
    amounts, discountable = _sums_by_rates(lines, rates_by_id)
    keys = sorted(amounts)
    discounted, discount_lines = _apply_coupons(coupons, keys, discountable, code)
    groups = tuple(
        TaxGroup(
            tax_rate_ids=key,
            amount=amounts[key],
            discount=discounted[key],
            net=amounts[key] - discounted[key],
        )
        for key in keys
    )
    taxes = compute_taxes(
        amounts=[TaxableAmount(amount=g.net, tax_rate_ids=g.tax_rate_ids) for g in groups],
        rates=tax_rates,
        rounding=tax_rounding,
    )
    exclusive_tax = sum(item.tax for item in taxes if not item.rate.inclusive)
    inclusive_tax = sum(item.tax for item in taxes if item.rate.inclusive)
    subtotal = sum(line.amount for line in lines)
    discount_total = sum(item.amount for item in discount_lines)
    total = subtotal - discount_total + exclusive_tax
    payable = max(total, 0)
    credit_applied = min(credit_balance, payable)
    return InvoiceTotals(
        currency=code,
        lines=tuple(lines),
        subtotal=subtotal,
        discounts=tuple(discount_lines),
        discount_total=discount_total,
        groups=groups,
        taxes=taxes,
        exclusive_tax=exclusive_tax,
        inclusive_tax=inclusive_tax,
        total=total,
        credit_applied=credit_applied,
        amount_due=payable - credit_applied,
        excess_credit=max(-total, 0),
    )


RateKey = tuple[
    str, ...
]  # a line's tax rate ids, sorted: lines with the same key are taxed together


def _sums_by_rates(
    lines: Sequence[InvoiceLine], rates_by_id: dict[str, TaxRate]
) -> tuple[dict[RateKey, int], dict[RateKey, int]]:
    """Each rate combination's amount, and how much of it coupons may discount."""
    amounts: dict[RateKey, int] = {}
    discountable: dict[RateKey, int] = {}
    for line in lines:
        unknown = [rate_id for rate_id in line.tax_rate_ids if rate_id not in rates_by_id]
        if unknown:
            raise ValueError(f"line {line.description!r}: unknown tax rate(s) {unknown}")
        reason = line_rate_error([rates_by_id[rate_id] for rate_id in line.tax_rate_ids])
        if reason is not None:
            raise ValueError(f"line {line.description!r}: {reason}")
        key = tuple(sorted(line.tax_rate_ids))
        amounts[key] = amounts.get(key, 0) + line.amount
        if line.discountable:
            discountable[key] = discountable.get(key, 0) + line.amount
    return amounts, discountable


def _apply_coupons(
    coupons: Sequence[Coupon], keys: list[RateKey], discountable: dict[RateKey, int], code: str
) -> tuple[dict[RateKey, int], list[DiscountLine]]:
    """Each coupon in order on what is left, split across rates by largest remainder."""
    left = {key: discountable.get(key, 0) for key in keys}
    discounted = dict.fromkeys(keys, 0)
    discount_lines = []
    for coupon in coupons:
        off = discount_amount(coupon, subtotal=sum(left.values()), currency=code)
        if off == 0:
            continue
        shares = allocate(off, [Fraction(left[key]) for key in keys])
        for key, share in zip(keys, shares, strict=True):
            left[key] -= share
            discounted[key] += share
        discount_lines.append(
            DiscountLine(
                coupon_code=coupon.code,
                amount=off,
                allocations=tuple(
                    DiscountAllocation(tax_rate_ids=key, amount=share)
                    for key, share in zip(keys, shares, strict=True)
                    if share
                ),
            )
        )
    return discounted, discount_lines
