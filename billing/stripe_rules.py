"""What Stripe accepts as a charge amount, per currency: steps and minimums.

Pure rules, no I/O. Two of Stripe's currency rules decide what an invoice can charge:

- **Three-decimal currencies** (BHD, JOD, KWD, OMR, TND) are charged in steps of 10
  minor units: Stripe refuses 1.235 KWD (1235 fils); 1.230 or 1.240 go through.
- **Minimum charge amounts**: Stripe refuses a charge below its minimum for the
  currency (50 JPY, 0.50 USD, 0.30 GBP...). A Stripe invoice whose amount due is
  positive but below the minimum is marked paid and the amount is carried to the
  customer's balance, so the next invoice collects it; kakin does the same.

``settle`` applies both to an invoice's amount due: an amount below the minimum is
carried forward whole instead of charged; any other is rounded **down** to the
currency's step (the customer is never charged more than the lines and taxes add up
to; the seller gives up at most 0.009 of a three-decimal currency).
"""

from __future__ import annotations

from dataclasses import dataclass

from billing.money import normalize_currency

# Stripe charges these in steps of 10 minor units (the last digit must be 0).
CHARGE_STEPS: dict[str, int] = {"BHD": 10, "JOD": 10, "KWD": 10, "OMR": 10, "TND": 10}

# Stripe's published minimum charge amounts, in minor units of the currency. For a
# currency not listed, Stripe's minimum is the equivalent of 0.50 USD at the day's
# exchange rate, which a pure rule cannot know: no minimum is applied to it (Stripe
# refuses such a charge as ``amount_too_small``, and the charge is declined).
MINIMUM_CHARGES: dict[str, int] = {
    "USD": 50, "AED": 200, "AUD": 50, "BGN": 100, "BRL": 50, "CAD": 50, "CHF": 50,
    "CZK": 1500, "DKK": 250, "EUR": 50, "GBP": 30, "HKD": 400, "HUF": 17500, "INR": 50,
    "JPY": 50, "MXN": 1000, "MYR": 200, "NOK": 300, "NZD": 50, "PLN": 200, "RON": 200,
    "SEK": 300, "SGD": 50, "THB": 1000,
}  # fmt: skip


def charge_step(currency: str) -> int:
    """The step Stripe charges ``currency`` in, in minor units (10 for KWD, else 1)."""
    return CHARGE_STEPS.get(normalize_currency(currency), 1)


def minimum_charge(currency: str) -> int:
    """Stripe's minimum charge in minor units (50 for JPY and USD), 0 if not known."""
    return MINIMUM_CHARGES.get(normalize_currency(currency), 0)


def chargeable(amount: int, currency: str) -> bool:
    """Whether Stripe accepts ``amount`` (minor units) as a charge in ``currency``."""
    return amount >= minimum_charge(currency) and amount % charge_step(currency) == 0


@dataclass(frozen=True)
class Settlement:
    """How an invoice's amount due becomes a charge Stripe accepts.

    Attributes:
        rounding: Added to the invoice (zero or negative): the amount due rounded
            down to the currency's step, minus the amount due (0 when carried).
        carried_forward: Not charged now but added to the customer's balance for the
            next invoice, because it is below the minimum charge (else 0).
        charge: What is charged: ``amount_due + rounding - carried_forward``; either 0
            or an amount Stripe accepts (``chargeable``).
    """

    rounding: int
    carried_forward: int
    charge: int


def settle(amount_due: int, currency: str) -> Settlement:
    """Round ``amount_due`` to what Stripe can charge, and carry forward a too-small one.

    Args:
        amount_due: The invoice's amount due in minor units (0 or more).
        currency: ISO 4217 code.

    Raises:
        TypeError: For an amount that is not an integer.
        ValueError: For a negative amount due.
    """
    if not isinstance(amount_due, int) or isinstance(amount_due, bool):
        raise TypeError("amounts are integers in minor units")
    if amount_due < 0:
        raise ValueError("an amount due is never negative")
    if 0 < amount_due < minimum_charge(currency):
        # Carried whole: the next invoice collects it exactly, nothing is rounded away.
        return Settlement(rounding=0, carried_forward=amount_due, charge=0)
    rounded = amount_due - amount_due % charge_step(currency)
    return Settlement(rounding=rounded - amount_due, carried_forward=0, charge=rounded)
