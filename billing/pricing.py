"""Rating: turn a price and a quantity into invoice lines (flat-rate for now)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Line:
    """One invoice line in minor units. ``amount`` = ``unit_amount`` x ``quantity``."""

    description: str
    unit_amount: int
    quantity: int
    amount: int


def flat_rate_line(*, description: str, unit_amount: int, quantity: int) -> Line:
    """A flat fee per unit and period (a seat, a plan), billed in advance."""
    if not isinstance(unit_amount, int) or unit_amount < 0:
        raise ValueError("unit_amount must be a non-negative integer in minor units")
    if not isinstance(quantity, int) or quantity < 1:
        raise ValueError("quantity must be a positive integer")
    return Line(
        description=description,
        unit_amount=unit_amount,
        quantity=quantity,
        amount=unit_amount * quantity,
    )


def invoice_total(lines: list[Line]) -> int:
    return sum(line.amount for line in lines)
