"""What an invoice for a period holds, computed the same way for the bill and its preview.

An invoice issued at the start of a period carries:

- the plan and every non-metered item **in advance**, for the period starting now;
- every metered item **in arrears**, on the usage of the period that just ended
  (the subscription's current period until this invoice replaces it);
- one discount line per coupon that still applies, then tax once per rate on the
  whole invoice (``billing.invoice_math``), then the customer's balance (a credit
  spent, or a debit carried from an earlier invoice added);
- then what Stripe can charge (``billing.stripe_rules``): a rounding line takes a
  three-decimal currency's amount due down to a multiple of 10, and an amount due
  below Stripe's minimum charge is carried forward to the customer's balance.

The draft is pure data: ``create_invoice`` stores it, and the upcoming-invoice preview
shows it without storing anything, so the two cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy.orm import Session

from billing import rating
from billing.discounts import Coupon as CouponTerms
from billing.discounts import applies
from billing.invoice_math import InvoiceLine as MathLine
from billing.invoice_math import InvoiceTotals, compose_invoice
from billing.money import format_amount
from billing.rounding import RoundingMode
from billing.stripe_rules import charge_step, settle
from billing.tax import TaxRate as RateTerms
from models.repositories import catalog as catalog_sql
from models.repositories import credit_notes as credit_sql
from models.repositories import invoices as invoice_sql
from models.repositories import usage as usage_sql
from models.tables import InvoiceLine, Price, Subscription, SubscriptionDiscount, TaxRate


@dataclass(frozen=True)
class DraftLine:
    """One line of a draft invoice, in the invoice currency's minor unit."""

    description: str
    # subscription (the plan and add-ons: details["price_id"] tells which) | usage |
    # discount | proration | rounding
    kind: str
    amount: int
    period_start: datetime
    period_end: datetime
    unit_amount: int = 0
    quantity: int = 1
    usage_quantity: str | None = None
    tax_rate_ids: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Draft:
    currency: str
    lines: tuple[DraftLine, ...]  # charges first, then one discount line per coupon
    totals: InvoiceTotals
    rates: dict[str, TaxRate]
    rounding: RoundingMode = RoundingMode.DOWN
    # Below Stripe's minimum charge: moved to the customer's balance, not charged.
    carried_forward: int = 0
    customer_id: str = ""

    @property
    def tax_breakdown(self) -> list[dict[str, Any]]:
        """Per rate, as a qualified invoice prints it: the amount it applies to and the tax."""
        return [
            {
                "tax_rate_id": item.rate.id,
                "name": item.rate.name,
                "percentage": str(item.rate.percentage),
                "inclusive": item.rate.inclusive,
                "reduced": self.rates[item.rate.id].reduced,
                "taxable": item.gross_amount if item.rate.inclusive else item.net_amount,
                "tax": item.tax,
                "rounding": str(self.rounding),
            }
            for item in self.totals.taxes
        ]


class PriceColumns(Protocol):
    """What rates a stored price: a ``Price`` row, or its columns read by a migration."""

    @property
    def pricing_model(self) -> str: ...
    @property
    def unit_amount(self) -> int: ...
    @property
    def unit_amount_decimal(self) -> str | None: ...
    @property
    def package_size(self) -> int | None: ...
    @property
    def tiers(self) -> list[dict[str, Any]] | None: ...


class CouponColumns(Protocol):
    """What a stored coupon takes off: a ``Coupon`` row, or its columns."""

    @property
    def code(self) -> str: ...
    @property
    def duration(self) -> str: ...
    @property
    def percent_off(self) -> str | None: ...
    @property
    def amount_off(self) -> int | None: ...
    @property
    def currency(self) -> str | None: ...
    @property
    def duration_periods(self) -> int | None: ...


def rating_price(price: PriceColumns) -> rating.Price:
    """The pricing model of a stored price; ValueError says what is wrong with it."""
    unit = price.unit_amount_decimal if price.unit_amount_decimal is not None else price.unit_amount
    model = price.pricing_model
    if model == "flat":
        return rating.FlatPrice(amount=Decimal(price.unit_amount))
    if model == "per_unit":
        return rating.PerUnitPrice(unit_amount=Decimal(unit))
    if model == "package":
        if not price.package_size:
            raise ValueError("a package price needs package_size")
        return rating.PackagePrice(
            package_size=Decimal(price.package_size), package_amount=Decimal(unit)
        )
    if model in ("graduated", "volume"):
        tiers = tuple(
            rating.Tier(
                up_to=None if tier.get("up_to") is None else Decimal(str(tier["up_to"])),
                unit_amount=Decimal(str(tier.get("unit_amount", 0))),
                flat_amount=Decimal(str(tier.get("flat_amount", 0))),
            )
            for tier in price.tiers or []
        )
        if model == "graduated":
            return rating.GraduatedPrice(tiers=tiers)
        return rating.VolumePrice(tiers=tiers)
    raise ValueError(f"unknown pricing model {model!r}")


def _name(price: Price) -> str:
    return price.nickname or price.product.name


def _rates_for(subscription: Subscription, price: Price) -> tuple[str, ...]:
    # A price's own rates win (8% food beside 10% services); else the customer's.
    return tuple(price.tax_rate_ids or subscription.customer.tax_rate_ids or ())


def _advance_line(
    subscription: Subscription, price: Price, quantity: int, start: datetime, end: datetime
) -> DraftLine:
    if price.pricing_model == "flat":
        # A flat price is per seat: the amount times the subscription's quantity.
        return DraftLine(
            description=_name(price),
            kind="subscription",
            unit_amount=price.unit_amount,
            quantity=quantity,
            amount=price.unit_amount * quantity,
            period_start=start,
            period_end=end,
            tax_rate_ids=_rates_for(subscription, price),
            details={"price_id": price.id},
        )
    rated = rating.rate(price=rating_price(price), quantity=quantity, currency=price.currency)
    return DraftLine(
        description=_name(price),
        kind="subscription",
        quantity=quantity,
        amount=rated.amount,
        period_start=start,
        period_end=end,
        tax_rate_ids=_rates_for(subscription, price),
        details={"price_id": price.id, **_explain(rated)},
    )


def _explain(rated: rating.Rating) -> dict[str, Any]:
    return {
        "model": str(rated.model),
        "components": [
            {
                "tier": part.tier,
                "units": str(part.units),
                "unit_amount": str(part.unit_amount),
                "flat_amount": str(part.flat_amount),
                "amount": part.amount,
            }
            for part in rated.components
        ],
    }


def plan_lines(
    subscription: Subscription, *, start: datetime, end: datetime, plan: Price | None = None
) -> list[DraftLine]:
    """The plan (``plan`` if a downgrade is due) and the non-metered items, in advance."""
    price = plan or subscription.price
    lines = [_advance_line(subscription, price, subscription.quantity, start, end)]
    for item in subscription.items:
        if item.price.metric_id is None:
            lines.append(_advance_line(subscription, item.price, item.quantity, start, end))
    return lines


def usage_lines(
    session: Session, subscription: Subscription, *, start: datetime, end: datetime
) -> list[DraftLine]:
    """The metered items, billed in arrears on the usage of [start, end)."""
    lines = []
    for item in subscription.items:
        price = item.price
        if price.metric is None:
            continue
        quantity = usage_sql.aggregate(
            session, subscription_id=subscription.id, metric=price.metric, start=start, end=end
        )
        rated = rating.rate(price=rating_price(price), quantity=quantity, currency=price.currency)
        lines.append(
            DraftLine(
                description=_name(price),
                kind="usage",
                amount=rated.amount,
                period_start=start,
                period_end=end,
                usage_quantity=f"{quantity.normalize():f}",
                tax_rate_ids=_rates_for(subscription, price),
                details={"price_id": price.id, "metric": price.metric.code, **_explain(rated)},
            )
        )
    return lines


def _coupons_due(session: Session, subscription: Subscription) -> list[CouponTerms]:
    """The redeemed coupons that discount the subscription's next period invoice.

    A coupon's period index is how many period invoices were made since it was
    redeemed: counted from the invoices themselves, so a retried invoice creation
    never spends a period twice.
    """
    due = []
    for redemption in subscription.discounts:
        terms = coupon_terms(redemption.coupon)
        if applies(terms, period_index=coupon_periods_used(session, redemption)):
            due.append(terms)
    return due


def coupon_periods_used(session: Session, redemption: SubscriptionDiscount) -> int:
    """How many period invoices the redeemed coupon has seen (its next period's index)."""
    return invoice_sql.period_invoices_since(
        session, redemption.subscription_id, redemption.redeemed_at
    )


def coupon_terms(coupon: CouponColumns) -> CouponTerms:
    """A stored coupon's discount terms (what it takes off, for how long)."""
    return CouponTerms(
        code=coupon.code,
        duration=coupon.duration,  # type: ignore[arg-type]
        percent_off=Decimal(coupon.percent_off) if coupon.percent_off else None,
        amount_off=coupon.amount_off,
        currency=coupon.currency,
        duration_in_periods=coupon.duration_periods,
    )


def compose(
    session: Session,
    subscription: Subscription,
    charges: list[DraftLine],
    *,
    with_coupons: bool = True,
    rounding: RoundingMode = RoundingMode.DOWN,
) -> Draft:
    """Discounts, tax per rate and credit on top of the charge lines."""
    currency = subscription.price.currency
    rates = catalog_sql.tax_rates(
        session, {rate_id for line in charges for rate_id in line.tax_rate_ids}
    )
    # Higher rates first: Japanese invoices list 10% before 8%.
    ordered = sorted(rates.values(), key=lambda row: (-Decimal(row.percentage), row.id))
    coupons = _coupons_due(session, subscription) if with_coupons else []
    balance = credit_sql.credit_balance(session, subscription.customer_id, currency)
    totals = compose_invoice(
        currency=currency,
        lines=[
            MathLine(
                description=line.description,
                amount=line.amount,
                tax_rate_ids=line.tax_rate_ids,
                discountable=line.amount >= 0,
            )
            for line in charges
        ],
        tax_rates=[
            RateTerms(
                id=row.id,
                name=row.name,
                percentage=Decimal(row.percentage),
                inclusive=row.inclusive,
                jurisdiction=row.jurisdiction or None,
            )
            for row in ordered
        ],
        coupons=coupons,
        credit_balance=max(balance, 0),
        tax_rounding=rounding,
    )
    start = min((line.period_start for line in charges), default=None)
    end = max((line.period_end for line in charges), default=None)
    discounts = [
        DraftLine(
            description=f"{line.coupon_code}",
            kind="discount",
            amount=-line.amount,
            unit_amount=-line.amount,
            period_start=start or subscription.created_at,
            period_end=end or subscription.created_at,
            details={"coupon": line.coupon_code},
        )
        for line in totals.discounts
    ]
    if balance < 0:
        # A debit (an earlier invoice below the minimum charge) is collected now: the
        # balance applied is negative, so the amount due grows by it.
        totals = replace(totals, credit_applied=balance, amount_due=totals.amount_due - balance)
    totals, extra, carried = chargeable_totals(
        totals,
        period_start=start or subscription.created_at,
        period_end=end or subscription.created_at,
    )
    return Draft(
        currency=currency,
        lines=(*charges, *discounts, *extra),
        totals=totals,
        rates=rates,
        rounding=rounding,
        carried_forward=carried,
        customer_id=subscription.customer_id,
    )


def chargeable_totals(
    totals: InvoiceTotals, *, period_start: datetime, period_end: datetime
) -> tuple[InvoiceTotals, list[DraftLine], int]:
    """The totals with an amount due Stripe can charge, the rounding line, and the
    amount carried forward (``billing.stripe_rules.settle``).

    The rounding line is outside the subtotal (as discounts are) and untaxed: the tax
    stays what the lines owe; only the total and the amount due move, by less than
    the currency's step.
    """
    settled = settle(totals.amount_due, totals.currency)
    lines = []
    if settled.rounding:
        step = format_amount(charge_step(totals.currency), totals.currency)
        lines.append(
            DraftLine(
                description=f"Rounding (Stripe charges {totals.currency} in steps of {step})",
                kind="rounding",
                amount=settled.rounding,
                unit_amount=settled.rounding,
                period_start=period_start,
                period_end=period_end,
            )
        )
    totals = replace(
        totals,
        total=totals.total + settled.rounding,
        amount_due=settled.charge,
    )
    return totals, lines, settled.carried_forward


def period_draft(
    session: Session,
    subscription: Subscription,
    *,
    period_start: datetime,
    period_end: datetime,
    usage_period: tuple[datetime, datetime] | None,
    rounding: RoundingMode = RoundingMode.DOWN,
    plan: Price | None = None,
) -> Draft:
    """The invoice of a period: plan in advance, the previous period's usage in arrears."""
    charges = plan_lines(subscription, start=period_start, end=period_end, plan=plan)
    if usage_period is not None:
        charges += usage_lines(session, subscription, start=usage_period[0], end=usage_period[1])
    return compose(session, subscription, charges, rounding=rounding)


def closing_period(
    subscription: Subscription, next_start: datetime
) -> tuple[datetime, datetime] | None:
    """The period whose usage the invoice starting at ``next_start`` bills in arrears."""
    start, end = subscription.current_period_start, subscription.current_period_end
    if start is None or end is None or end > next_start:
        return None
    return start, end


def final_draft(
    session: Session, subscription: Subscription, *, rounding: RoundingMode = RoundingMode.DOWN
) -> Draft | None:
    """The invoice of a subscription's last period when it ends: the period's metered usage
    in arrears and no plan line (no period follows). None when there is nothing to bill
    (no metered prices, or no usage cost)."""
    start, end = subscription.current_period_start, subscription.current_period_end
    if start is None or end is None:
        return None
    charges = usage_lines(session, subscription, start=start, end=end)
    if sum(line.amount for line in charges) <= 0:
        return None
    return compose(session, subscription, charges, rounding=rounding)


def line_rows(draft: Draft) -> list[InvoiceLine]:
    """The draft's lines as rows to store with the invoice."""
    return [
        InvoiceLine(
            position=position,
            description=line.description,
            kind=line.kind,
            unit_amount=line.unit_amount,
            quantity=line.quantity,
            amount=line.amount,
            usage_quantity=line.usage_quantity,
            # The first rate is the one printed beside the line; details keep them all
            # (a line may carry several exclusive rates) for stored_totals.
            tax_rate_id=line.tax_rate_ids[0] if line.tax_rate_ids else None,
            details={**line.details, "tax_rate_ids": list(line.tax_rate_ids)},
            period_start=line.period_start,
            period_end=line.period_end,
        )
        for position, line in enumerate(draft.lines)
    ]


def upcoming_draft(
    session: Session,
    subscription: Subscription,
    *,
    next_start: datetime,
    next_end: datetime,
    pending_price: Price | None = None,
    rounding: RoundingMode = RoundingMode.DOWN,
) -> Draft:
    """The invoice the next renewal will create, as it stands now (nothing is stored).

    ``next_start``/``next_end`` come from the workflow's ``status`` query, which
    knows the anchored calendar; the usage is what has been received so far.
    """
    return period_draft(
        session,
        subscription,
        period_start=next_start,
        period_end=next_end,
        usage_period=closing_period(subscription, next_start),
        rounding=rounding,
        plan=pending_price,
    )


def current_usage(session: Session, subscription: Subscription) -> list[DraftLine]:
    """Usage of the open period so far, and what it costs so far (before tax)."""
    start, end = subscription.current_period_start, subscription.current_period_end
    if start is None or end is None:
        return []
    return usage_lines(session, subscription, start=start, end=end)
