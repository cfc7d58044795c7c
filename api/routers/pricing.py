"""Billable metrics, tax rates and coupons (admin), and what a subscription holds besides
its plan: metered prices and add-ons, and redeemed coupons (service or support)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import KEY, DepsDep, PageDep, PathId
from api.errors import RESPONSES
from api.idempotency import RESPONSES as IDEMPOTENT
from api.lookups import require_subscription
from api.requests.catalog import CouponCreate, MetricCreate, TaxRateCreate
from api.requests.common import Request
from api.requests.subscriptions import CouponRedeem, ItemCreate
from api.writes import WriteDep
from kakin.services import catalog
from kakin.services.api_keys import KeyInfo
from kakin.views.catalog import CouponOut, MetricOut, TaxRateOut
from kakin.views.common import FromRow, Page
from kakin.views.subscriptions import ItemOut, Redemption

M = TypeVar("M", bound=FromRow)
CREATED: dict[str, Any] = {"status_code": 201, "responses": IDEMPOTENT}

router = APIRouter(prefix="/v1", responses=RESPONSES, tags=["pricing"])


async def create(
    write: WriteDep,
    body: Request,
    make: Callable[..., str],
    read: Callable[..., M],
    out: type[M],
) -> JSONResponse:
    """``make`` a row from the body's fields (named as ``make`` takes them), and answer 201
    with it read back by ``read``; a refusal is a typed error that api.errors maps."""

    def work() -> M:
        made = make(write.sessions, **body.model_dump())
        return read(write.sessions, made, out.of)

    return await write.run_sync(work, status=201)


@router.post("/metrics", response_model=MetricOut, **CREATED)
async def create_metric(body: MetricCreate, write: WriteDep) -> JSONResponse:
    """Define what usage events of one code add up to over a period (admin)."""
    return await create(write, body, catalog.create_metric, catalog.get_metric, MetricOut)


@router.get("/metrics", response_model=Page[MetricOut])
def list_metrics(deps: DepsDep, page: PageDep, _: KeyInfo = KEY) -> Page[MetricOut]:
    return page.read(MetricOut, catalog.list_metrics, deps.sessions, MetricOut.of)


@router.get("/metrics/{metric_id}", response_model=MetricOut)
def get_metric(deps: DepsDep, metric_id: PathId, _: KeyInfo = KEY) -> MetricOut:
    return catalog.get_metric(deps.sessions, metric_id, MetricOut.of)


# -- tax rates --------------------------------------------------------------------


@router.post("/tax-rates", response_model=TaxRateOut, **CREATED)
async def create_tax_rate(body: TaxRateCreate, write: WriteDep) -> JSONResponse:
    """A tax rate for prices or customers, e.g. 消費税 10% or 8% (reduced) (admin)."""
    return await create(write, body, catalog.create_tax_rate, catalog.get_tax_rate, TaxRateOut)


@router.get("/tax-rates", response_model=Page[TaxRateOut])
def list_tax_rates(deps: DepsDep, page: PageDep, _: KeyInfo = KEY) -> Page[TaxRateOut]:
    return page.read(TaxRateOut, catalog.list_tax_rates, deps.sessions, TaxRateOut.of)


@router.get("/tax-rates/{tax_rate_id}", response_model=TaxRateOut)
def get_tax_rate(deps: DepsDep, tax_rate_id: PathId, _: KeyInfo = KEY) -> TaxRateOut:
    return catalog.get_tax_rate(deps.sessions, tax_rate_id, TaxRateOut.of)


# -- coupons ----------------------------------------------------------------------


@router.post("/coupons", response_model=CouponOut, **CREATED)
async def create_coupon(body: CouponCreate, write: WriteDep) -> JSONResponse:
    """A percentage or fixed-amount coupon, once, for N periods or forever (admin)."""
    return await create(write, body, catalog.create_coupon, catalog.get_coupon, CouponOut)


@router.get("/coupons", response_model=Page[CouponOut])
def list_coupons(deps: DepsDep, page: PageDep, _: KeyInfo = KEY) -> Page[CouponOut]:
    return page.read(CouponOut, catalog.list_coupons, deps.sessions, CouponOut.of)


@router.get("/coupons/{coupon_id}", response_model=CouponOut)
def get_coupon(deps: DepsDep, coupon_id: PathId, _: KeyInfo = KEY) -> CouponOut:
    return catalog.get_coupon(deps.sessions, coupon_id, CouponOut.of)


# -- what a subscription holds ------------------------------------------------------


@router.post("/subscriptions/{subscription_id}/discounts", response_model=Redemption, **CREATED)
async def redeem_coupon(
    subscription_id: PathId, body: CouponRedeem, write: WriteDep
) -> JSONResponse:
    """Apply a coupon from the subscription's next period invoice."""

    def work() -> Redemption:
        require_subscription(write.sessions, subscription_id)
        redemption = catalog.redeem_coupon(
            write.sessions, subscription_id=subscription_id, code=body.code
        )
        return Redemption(id=redemption, subscription_id=subscription_id, coupon=body.code)

    return await write.run_sync(work, status=201)


@router.post("/subscriptions/{subscription_id}/items", response_model=ItemOut, **CREATED)
async def add_item(subscription_id: PathId, body: ItemCreate, write: WriteDep) -> JSONResponse:
    """Add a price (a metered charge or an add-on) from the next invoice on."""

    def work() -> ItemOut:
        require_subscription(write.sessions, subscription_id)
        item_id = catalog.add_item(write.sessions, subscription_id=subscription_id, **vars(body))
        return ItemOut(id=item_id, subscription_id=subscription_id, **vars(body))

    return await write.run_sync(work, status=201)
