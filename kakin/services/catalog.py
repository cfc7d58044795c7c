"""The catalog beyond flat prices: billable metrics, priced usage, tax rates, coupons.

Every entry point (HTTP API, CLI, the console) creates these through here, so each is
validated once, by the pure rules in billing/, with an error that says what is wrong.

A face that knows who asked passes ``actor`` (the console: ``staff:<email>``) and the
request's ``origin`` (address, user agent): the change is then an audit row
(``entity_type`` price, metric, tax_rate or coupon) written in the same transaction, so
a refused request leaves none.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from billing import discounts, metering, tax
from billing.calendar import Interval
from billing.money import normalize_currency
from billing.rounding import parse_decimal
from kakin.services import errors, ledger
from kakin.services.invoice_drafts import rating_price
from kakin.services.shaping import Reads
from kakin.services.staff import Origin
from models.repositories import audit as audit_sql
from models.repositories import catalog as catalog_sql
from models.repositories import subscriptions as subscription_sql
from models.repositories.common import find, new_id
from models.tables import (
    BillableMetric,
    Coupon,
    Price,
    Product,
    SubscriptionDiscount,
    SubscriptionItem,
    TaxRate,
)

# The typed error itself (kept under this name: callers catch catalog.InvalidRequestError).
InvalidRequestError = errors.InvalidRequestError


class CatalogError(InvalidRequestError):
    """A catalog request that cannot be carried out; the message says why."""


class CatalogMissingError(errors.MissingError, CatalogError):
    """A catalog request naming a product, tax rate or coupon that does not exist."""


def _rule(check: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a billing/ constructor, turning its ValueError/TypeError into CatalogError."""
    try:
        return check(*args, **kwargs)
    except (ValueError, TypeError) as error:
        raise CatalogError(str(error)) from None


def _audit(
    session: Session,
    asked: tuple[str | None, Origin | None],
    kind: str,
    row_id: str,
    action: str,
    **details: Any,
) -> None:
    """The audit row of a change an actor asked for, from where (none without an actor)."""
    actor, origin = asked
    if actor is not None:
        audit_sql.audit(
            session, entity_type=kind, entity_id=row_id, action=f"{kind}.{action}",
            actor=actor[:200], occurred_at=datetime.now(UTC),
            details={**(origin or Origin()).details(), **details},
        )  # fmt: skip


def _add_unique(session: Session, row: object, *, taken: str) -> None:
    """Add ``row`` and commit; a unique key it repeats (a code, a coupon already held)
    is a ``CatalogError`` saying ``taken``."""
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        raise CatalogError(taken) from None


def create_metric(
    sessions: sessionmaker[Session],
    *,
    code: str,
    name: str,
    aggregation: str,
    property: str | None = None,
    actor: str | None = None,
    origin: Origin | None = None,
) -> str:
    _rule(metering.BillableMetric, code=code, aggregation=aggregation, property=property)
    with sessions() as session:
        metric = BillableMetric(
            id=new_id("bm"), code=code, name=name, aggregation=aggregation, property=property
        )
        _audit(
            session,
            (actor, origin),
            "metric",
            metric.id,
            "created",
            code=code,
            aggregation=aggregation,
        )
        _add_unique(session, metric, taken=f"a metric with code {code!r} exists already")
        return metric.id


def create_tax_rate(
    sessions: sessionmaker[Session],
    *,
    name: str,
    percentage: str,
    inclusive: bool = False,
    jurisdiction: str = "",
    reduced: bool = False,
    actor: str | None = None,
    origin: Origin | None = None,
) -> str:
    terms = _rule(tax.TaxRate, id="new", name=name, percentage=percentage, inclusive=inclusive)
    with sessions() as session:
        rate = TaxRate(
            id=new_id("txr"),
            name=name,
            percentage=str(terms.percentage),
            inclusive=inclusive,
            jurisdiction=jurisdiction,
            reduced=reduced,
        )
        session.add(rate)
        _audit(
            session,
            (actor, origin),
            "tax_rate",
            rate.id,
            "created",
            name=name,
            percentage=rate.percentage,
        )
        session.commit()
        return rate.id


def _tax_rate_ids(session: Session, ids: list[str]) -> list[str]:
    for rate_id in ids:
        rate = find(session, TaxRate, rate_id)
        if rate is None or not rate.active:
            raise CatalogMissingError(f"tax rate {rate_id!r} does not exist or is archived")
    return list(ids)


def create_price(
    sessions: sessionmaker[Session],
    *,
    product_name: str | None = None,
    product_id: str | None = None,
    currency: str,
    interval: str = "month",
    interval_count: int = 1,
    nickname: str = "",
    pricing_model: str = "flat",
    unit_amount: int = 0,
    unit_amount_decimal: str | None = None,
    package_size: int | None = None,
    tiers: list[dict[str, Any]] | None = None,
    metric_code: str | None = None,
    tax_rate_ids: list[str] | None = None,
    actor: str | None = None,
    origin: Origin | None = None,
) -> str:
    """Create a price of any pricing model (a new product unless ``product_id``)."""
    try:
        currency = normalize_currency(currency)
        interval = Interval(interval)
    except ValueError as error:
        raise CatalogError(f"{error}; intervals are day, week, month, year") from None
    if interval_count < 1:
        raise CatalogError("interval_count must be at least 1")
    if unit_amount < 0:
        raise CatalogError("unit_amount must not be negative")
    if unit_amount_decimal is not None:
        _rule(parse_decimal, unit_amount_decimal, what="unit_amount_decimal")
    if (product_name is None) == (product_id is None):
        raise CatalogError("give exactly one of product_name and product_id")
    with sessions() as session:
        product = (
            Product(id=new_id("prod"), name=product_name or "")
            if product_id is None
            else find(session, Product, product_id)
        )
        if product is None:
            raise CatalogMissingError(f"product {product_id!r} does not exist")
        metric = None
        if metric_code is not None:
            metric = catalog_sql.metric_by_code(session, metric_code)
            if metric is None:
                raise CatalogError(f"unknown metric {metric_code!r}")
            if pricing_model == "flat":
                raise CatalogError("a metered price needs a usage pricing model, not flat")
        price = Price(
            id=new_id("price"),
            product=product,
            nickname=nickname,
            currency=currency,
            unit_amount=unit_amount,
            interval=interval,
            interval_count=interval_count,
            pricing_model=pricing_model,
            unit_amount_decimal=unit_amount_decimal,
            package_size=package_size,
            tiers=tiers,
            metric=metric,
            tax_rate_ids=_tax_rate_ids(session, tax_rate_ids or []),
        )
        _rule(rating_price, price)  # the tiers, package size and amounts make sense
        session.add(price)
        _audit(
            session, (actor, origin), "price", price.id, "created", product=product.name,
            currency=currency, pricing_model=pricing_model,
        )  # fmt: skip
        session.commit()
        return price.id


def add_item(
    sessions: sessionmaker[Session], *, subscription_id: str, price_id: str, quantity: int = 1
) -> str:
    """Add a price (a metered charge, an add-on) to a subscription from its next invoice."""
    if quantity < 1:
        raise CatalogError("quantity must be at least 1")
    with sessions() as session:
        subscription = subscription_sql.subscription(session, subscription_id)
        price = catalog_sql.price(session, price_id)
        if not price.active:
            raise CatalogError(f"price {price_id!r} is archived and takes no new subscriptions")
        if price.currency != subscription.price.currency:
            raise CatalogError(
                f"price is in {price.currency} but the subscription bills in "
                f"{subscription.price.currency}"
            )
        if price.id == subscription.price_id or any(
            item.price_id == price.id for item in subscription.items
        ):
            raise CatalogError(f"subscription {subscription_id} holds price {price_id} already")
        item = SubscriptionItem(id=new_id("si"), price=price, quantity=quantity)
        subscription.items.append(item)
        ledger.record_item_added(
            session, subscription, item.id, price, occurred_at=datetime.now(UTC)
        )
        session.commit()
        return item.id


def create_coupon(
    sessions: sessionmaker[Session],
    *,
    code: str,
    name: str,
    duration: str,
    percent_off: str | None = None,
    amount_off: int | None = None,
    currency: str | None = None,
    duration_in_periods: int | None = None,
    redeem_by: datetime | None = None,
    max_redemptions: int | None = None,
    actor: str | None = None,
    origin: Origin | None = None,
) -> str:
    terms = _rule(
        discounts.Coupon,
        code=code,
        duration=duration,
        percent_off=Decimal(percent_off) if percent_off is not None else None,
        amount_off=amount_off,
        currency=currency,
        duration_in_periods=duration_in_periods,
        redeem_by=redeem_by,
        max_redemptions=max_redemptions,
    )
    with sessions() as session:
        coupon = Coupon(
            id=new_id("co"),
            code=code,
            name=name,
            percent_off=str(terms.percent_off) if terms.percent_off is not None else None,
            amount_off=amount_off,
            currency=terms.currency,
            duration=str(terms.duration),
            duration_periods=duration_in_periods,
            redeem_by=redeem_by,
            max_redemptions=max_redemptions,
        )
        _audit(
            session,
            (actor, origin),
            "coupon",
            coupon.id,
            "created",
            code=code,
            duration=coupon.duration,
        )
        _add_unique(session, coupon, taken=f"a coupon with code {code!r} exists already")
        return coupon.id


def redeem_coupon(
    sessions: sessionmaker[Session], *, subscription_id: str, code: str, at: datetime | None = None
) -> str:
    """Apply a coupon to a subscription from its next period invoice.

    The redemption count goes up in a conditional UPDATE, so two requests racing for
    the last redemption cannot both win.
    """
    at = at or datetime.now(UTC)
    with sessions() as session:
        subscription = subscription_sql.subscription(session, subscription_id)
        coupon = catalog_sql.coupon_by_code(session, code)
        if coupon is None or not coupon.active:
            raise CatalogMissingError(f"coupon {code!r} does not exist or is archived")
        terms = discounts.Coupon(
            code=coupon.code,
            duration=coupon.duration,  # type: ignore[arg-type]
            percent_off=Decimal(coupon.percent_off) if coupon.percent_off else None,
            amount_off=coupon.amount_off,
            currency=coupon.currency,
            duration_in_periods=coupon.duration_periods,
            redeem_by=coupon.redeem_by,
            max_redemptions=coupon.max_redemptions,
        )
        if any(held.coupon_id == coupon.id for held in subscription.discounts):
            raise CatalogError(f"subscription {subscription_id} has coupon {code!r} already")
        reason = discounts.redemption_error(terms, at=at, times_redeemed=coupon.times_redeemed)
        if reason is not None:
            raise CatalogError(reason)
        if coupon.currency and coupon.currency != subscription.price.currency:
            raise CatalogError(
                f"coupon {code!r} takes {coupon.currency} off, but the subscription bills "
                f"in {subscription.price.currency}"
            )
        if not catalog_sql.take_coupon_redemption(session, coupon.id):
            raise CatalogError(f"coupon {code!r} has reached its limit of redemptions")
        redemption = SubscriptionDiscount(
            id=new_id("di"), subscription_id=subscription.id, coupon_id=coupon.id,
            redeemed_at=at,
        )  # fmt: skip
        session.add(redemption)
        try:
            ledger.record_coupon_applied(
                session, subscription, redemption.id, coupon, occurred_at=at
            )
            session.commit()
        except IntegrityError:
            raise CatalogError(
                f"subscription {subscription_id} has coupon {code!r} already"
            ) from None
        return redemption.id


# --- reads and archiving, for the faces (each shapes a row inside its session) ---

T = TypeVar("T")

_prices = Reads(Price, "Price")
find_price, get_price, list_prices = _prices.find, _prices.get, _prices.page
_metrics = Reads(BillableMetric, "Metric")
get_metric, list_metrics = _metrics.get, _metrics.page
_tax_rates = Reads(TaxRate, "Tax rate")
get_tax_rate, list_tax_rates = _tax_rates.get, _tax_rates.page
_coupons = Reads(Coupon, "Coupon")
get_coupon, list_coupons = _coupons.get, _coupons.page


def archive_price(
    sessions: sessionmaker[Session],
    price_id: str,
    shape: Callable[[Price], T],
    *,
    actor: str | None = None,
    origin: Origin | None = None,
) -> T:
    """Archive a price: it takes no new subscriptions; running ones continue."""
    with sessions() as session:
        row = find_price(session, price_id)
        if row.active:
            _audit(session, (actor, origin), "price", row.id, "archived", product=row.product.name)
        row.active = False
        session.commit()
        return shape(row)
