"""Rating: turn a quantity into an amount with a price's pricing model.

Five models, after Stripe's prices, Lago's charge models and Chargebee's pricing
models:

===============  ==============================================================
``flat``         a fixed amount, whatever the quantity (a base fee)
``per_unit``     quantity x unit amount (seats, or 0.015 JPY per API call)
``graduated``    each tier's units at that tier's own unit amount, plus the flat
                 fee of every tier the quantity reaches, summed
``volume``       the *whole* quantity at the unit amount of the one tier it lands
                 in, plus that tier's flat fee
``package``      ceil(quantity / package size) packages at the package amount
                 (1,001 calls at 1,000 per package are two packages)
===============  ==============================================================

Rules:

- **Price amounts are in minor units** of the currency (yen for JPY, cents for
  USD), as ``Decimal`` so they can be finer than a minor unit (0.015 yen per call,
  0.25 cents per message). They are given as ``Decimal``, ``int`` or ``str``, never
  ``float``, and must not be negative. Quantities are non-negative ``Decimal`` (or
  ``int``) and may be fractional (1.5 GB).
- **Tiers** are given in ascending order of ``up_to``; each tier covers the units
  above the previous tier's ``up_to`` *up to and including* its own, and the last
  tier is open-ended (``up_to=None``). A quantity of exactly 1,000 lands in the
  tier ``up_to=1000``; 1,000.5 lands in the next one. Zero lands in the first tier,
  so the first tier's flat fee is charged even without usage (as in Stripe: a flat
  fee on the first tier is a minimum charge). In graduated pricing a later tier's
  flat fee is charged once the quantity goes beyond the previous ``up_to``.
- **Rounding happens once**: the exact total (``Decimal`` arithmetic without a
  precision limit) is rounded half-even to whole minor units at the very end. The
  per-tier ``components`` show the exact amount of each part and its share of the
  rounded total, split with the largest-remainder method, so the component
  amounts always add up to the line's ``amount``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import MAX_PREC, Decimal, localcontext
from enum import StrEnum
from fractions import Fraction

from billing.money import normalize_currency
from billing.rounding import RoundingMode, allocate, parse_decimal, round_fraction


class PricingModel(StrEnum):
    FLAT = "flat"
    PER_UNIT = "per_unit"
    GRADUATED = "graduated"
    VOLUME = "volume"
    PACKAGE = "package"


def _amount(value: Decimal | int | str, *, what: str) -> Decimal:
    number = parse_decimal(value, what=what)
    if number < 0:
        raise ValueError(f"{what} must not be negative, got {value!r}")
    return number


@dataclass(frozen=True)
class Tier:
    """One tier of a graduated or volume price.

    Attributes:
        up_to: The last unit the tier covers (inclusive), or ``None`` for the
            open-ended last tier.
        unit_amount: The price per unit in minor units, may be sub-minor.
        flat_amount: A flat fee in minor units for reaching the tier (default 0).
    """

    up_to: Decimal | None
    unit_amount: Decimal = Decimal(0)
    flat_amount: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if self.up_to is not None:
            up_to = _amount(self.up_to, what="a tier's up_to")
            if up_to == 0:
                raise ValueError("a tier's up_to must be positive")
            object.__setattr__(self, "up_to", up_to)
        object.__setattr__(self, "unit_amount", _amount(self.unit_amount, what="unit_amount"))
        object.__setattr__(self, "flat_amount", _amount(self.flat_amount, what="flat_amount"))


def _validated_tiers(tiers: Sequence[Tier]) -> tuple[Tier, ...]:
    checked = tuple(tiers)
    if not checked:
        raise ValueError("a tiered price needs at least one tier")
    for index, tier in enumerate(checked):
        if not isinstance(tier, Tier):
            raise TypeError(f"tier {index + 1} is a {type(tier).__name__}, not a Tier")
        last = index == len(checked) - 1
        if last and tier.up_to is not None:
            raise ValueError("the last tier must be open-ended (up_to=None)")
        if not last and tier.up_to is None:
            raise ValueError(f"only the last tier may be open-ended; tier {index + 1} is")
        if index and not last:
            previous = checked[index - 1].up_to
            assert previous is not None and tier.up_to is not None
            if tier.up_to <= previous:
                raise ValueError(
                    f"tiers must ascend: tier {index + 1} ends at {tier.up_to}, "
                    f"not after tier {index}'s {previous}"
                )
    return checked


@dataclass(frozen=True)
class FlatPrice:
    """A fixed amount per period, whatever the quantity."""

    amount: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "amount", _amount(self.amount, what="amount"))


@dataclass(frozen=True)
class PerUnitPrice:
    """``quantity x unit_amount``."""

    unit_amount: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "unit_amount", _amount(self.unit_amount, what="unit_amount"))


@dataclass(frozen=True)
class GraduatedPrice:
    """Each tier's units at that tier's unit amount, plus the flat fees reached."""

    tiers: tuple[Tier, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", _validated_tiers(self.tiers))


@dataclass(frozen=True)
class VolumePrice:
    """The whole quantity at the unit amount (and flat fee) of the tier it lands in."""

    tiers: tuple[Tier, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", _validated_tiers(self.tiers))


@dataclass(frozen=True)
class PackagePrice:
    """``ceil(quantity / package_size)`` packages at ``package_amount`` each."""

    package_size: Decimal
    package_amount: Decimal

    def __post_init__(self) -> None:
        size = _amount(self.package_size, what="package_size")
        if size == 0:
            raise ValueError("package_size must be positive")
        object.__setattr__(self, "package_size", size)
        object.__setattr__(
            self, "package_amount", _amount(self.package_amount, what="package_amount")
        )


Price = FlatPrice | PerUnitPrice | GraduatedPrice | VolumePrice | PackagePrice

_MODELS: dict[type, PricingModel] = {
    FlatPrice: PricingModel.FLAT,
    PerUnitPrice: PricingModel.PER_UNIT,
    GraduatedPrice: PricingModel.GRADUATED,
    VolumePrice: PricingModel.VOLUME,
    PackagePrice: PricingModel.PACKAGE,
}


@dataclass(frozen=True)
class RatedComponent:
    """One part of a rated line, to show how the amount was computed.

    Attributes:
        tier: The 1-based tier number, or ``None`` outside tiered pricing.
        from_units: Units above this are covered (the previous tier's ``up_to``;
            0 for the first tier and for untiered prices).
        up_to: The tier's last unit, ``None`` if open-ended or untiered.
        units: The units priced here (for ``package``: the number of packages).
        unit_amount: The price per unit (per package) in minor units.
        flat_amount: The flat fee charged here in minor units.
        exact_amount: ``units x unit_amount + flat_amount``, unrounded.
        amount: This part's share of the line's rounded amount (minor units).
    """

    tier: int | None
    from_units: Decimal
    up_to: Decimal | None
    units: Decimal
    unit_amount: Decimal
    flat_amount: Decimal
    exact_amount: Decimal
    amount: int


@dataclass(frozen=True)
class Rating:
    """The result of rating a quantity: an invoice line with its explanation.

    Attributes:
        model: The pricing model used.
        currency: The ISO 4217 code (upper case).
        quantity: The quantity rated.
        exact_amount: The exact total before rounding, in minor units.
        amount: The total in minor units, rounded half-even once.
        components: How the total breaks down; the amounts add up to ``amount``.
    """

    model: PricingModel
    currency: str
    quantity: Decimal
    exact_amount: Decimal
    amount: int
    components: tuple[RatedComponent, ...]


def rate(*, price: Price, quantity: Decimal | int, currency: str) -> Rating:
    """Rate ``quantity`` with ``price``.

    Args:
        price: One of ``FlatPrice``, ``PerUnitPrice``, ``GraduatedPrice``,
            ``VolumePrice``, ``PackagePrice``.
        quantity: Non-negative units (``Decimal`` or ``int``; usage may be
            fractional).
        currency: The ISO 4217 currency the price amounts are in.

    Returns:
        The rounded amount and the components explaining it.

    Raises:
        ValueError: For a negative or non-finite quantity, or an unknown currency.
        TypeError: For a float quantity or an unknown price type.
    """
    code = normalize_currency(currency)
    if isinstance(quantity, str):
        raise TypeError("quantity must be a Decimal or an int, not str")
    units = parse_decimal(quantity, what="quantity")
    if units < 0:
        raise ValueError(f"quantity must not be negative, got {quantity!r}")
    model = _MODELS.get(type(price))
    if model is None:
        raise TypeError(f"unknown price type {type(price).__name__}")
    with localcontext() as context:
        # Unlimited precision: products and sums of Decimals are then exact, and
        # the one rounding below is the only one.
        context.prec = MAX_PREC
        parts = _parts(price, units)
        exact_total = sum((part[-1] for part in parts), Decimal(0))
    amount = round_fraction(Fraction(exact_total), RoundingMode.HALF_EVEN)
    shares = allocate(amount, [Fraction(part[-1]) for part in parts])
    components = tuple(
        RatedComponent(
            tier=tier,
            from_units=from_units,
            up_to=up_to,
            units=part_units,
            unit_amount=unit_amount,
            flat_amount=flat_amount,
            exact_amount=exact,
            amount=share,
        )
        for (tier, from_units, up_to, part_units, unit_amount, flat_amount, exact), share in zip(
            parts, shares, strict=True
        )
    )
    return Rating(
        model=model,
        currency=code,
        quantity=units,
        exact_amount=exact_total,
        amount=amount,
        components=components,
    )


_Part = tuple[int | None, Decimal, Decimal | None, Decimal, Decimal, Decimal, Decimal]


def _part(
    tier: int | None,
    from_units: Decimal,
    up_to: Decimal | None,
    units: Decimal,
    unit_amount: Decimal,
    flat_amount: Decimal,
) -> _Part:
    return (
        tier,
        from_units,
        up_to,
        units,
        unit_amount,
        flat_amount,
        units * unit_amount + flat_amount,
    )


def _parts(price: Price, quantity: Decimal) -> list[_Part]:
    zero = Decimal(0)
    if isinstance(price, FlatPrice):
        return [_part(None, zero, None, quantity, zero, price.amount)]
    if isinstance(price, PerUnitPrice):
        return [_part(None, zero, None, quantity, price.unit_amount, zero)]
    if isinstance(price, PackagePrice):
        # Fraction, not Decimal division: 1/3 has no finite decimal expansion.
        ratio = Fraction(quantity) / Fraction(price.package_size)
        packages = Decimal(-(-ratio.numerator // ratio.denominator))
        return [_part(None, zero, None, packages, price.package_amount, zero)]
    if isinstance(price, VolumePrice):
        lower = zero
        for number, tier in enumerate(price.tiers, start=1):
            if tier.up_to is None or quantity <= tier.up_to:
                return [
                    _part(number, lower, tier.up_to, quantity, tier.unit_amount, tier.flat_amount)
                ]
            lower = tier.up_to
        raise AssertionError("the last tier is open-ended")  # pragma: no cover
    parts: list[_Part] = []
    lower = zero
    for number, tier in enumerate(price.tiers, start=1):
        if number > 1 and quantity <= lower:
            break
        top = quantity if tier.up_to is None else min(quantity, tier.up_to)
        parts.append(
            _part(number, lower, tier.up_to, top - lower, tier.unit_amount, tier.flat_amount)
        )
        if tier.up_to is None:
            break
        lower = tier.up_to
    return parts
