"""The catalog: prices, metrics, tax rates and coupons (and taking a redemption)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models.repositories.common import get
from models.tables import BillableMetric, Coupon, Price, TaxRate


def price(session: Session, price_id: str) -> Price:
    return get(session, Price, price_id)


def tax_rates(session: Session, ids: set[str]) -> dict[str, TaxRate]:
    if not ids:
        return {}
    return {row.id: row for row in session.scalars(select(TaxRate).where(TaxRate.id.in_(ids)))}


def metric_by_code(session: Session, code: str) -> BillableMetric | None:
    return session.scalars(select(BillableMetric).where(BillableMetric.code == code)).first()


def coupon_by_code(session: Session, code: str) -> Coupon | None:
    return session.scalars(select(Coupon).where(Coupon.code == code)).first()


def take_coupon_redemption(session: Session, coupon_id: str) -> bool:
    """Count one more redemption unless the coupon has reached its limit; True if counted.

    One conditional UPDATE, so two redemptions at once cannot both take the last one.
    """
    taken = session.execute(
        update(Coupon)
        .where(Coupon.id == coupon_id)
        .where(
            (Coupon.max_redemptions.is_(None)) | (Coupon.times_redeemed < Coupon.max_redemptions)
        )
        .values(times_redeemed=Coupon.times_redeemed + 1)
    )
    return bool(getattr(taken, "rowcount", 0))
