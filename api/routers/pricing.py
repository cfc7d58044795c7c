"""Billable metrics, tax rates and coupons (admin), and what a subscription holds besides
its plan: metered prices and add-ons, and redeemed coupons (service or support)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import KEY, After, Deps, DepsDep, IdemKey, Limit, PathId
from api.errors import RESPONSES
from api.idempotency import RESPONSES as IDEMPOTENT
from api.idempotency import once
from api.requests.catalog import CouponCreate, MetricCreate, TaxRateCreate
from api.requests.subscriptions import CouponRedeem, ItemCreate
from kakin.services import catalog
from kakin.services import subscriptions as subscription_service
from kakin.services.api_keys import KeyInfo
from kakin.views.catalog import CouponOut, MetricOut, TaxRateOut
from kakin.views.common import Page
from kakin.views.subscriptions import ItemOut, Redemption

M = TypeVar("M", bound=BaseModel)


router = APIRouter(prefix="/v1", responses=RESPONSES, tags=["pricing"])


async def create(
    deps: Deps,
    request: Request,
    key: KeyInfo,
    idempotency_key: str | None,
    work: Callable[[], M],
) -> JSONResponse:
    return await once(
        request,
        deps.sessions,
        key,
        idempotency_key,
        status=201,
        # A refusal is a typed error: api.errors maps it (422, or 404 naming a missing row).
        work=lambda: run_in_threadpool(work),
    )


def paged_out(out: type[M], page: tuple[list[M], bool]) -> Page[M]:
    rows, more = page
    return Page[out](data=rows, has_more=more)  # type: ignore[valid-type]


@router.post("/metrics", status_code=201, response_model=MetricOut, responses=IDEMPOTENT)
async def create_metric(
    deps: DepsDep,
    body: MetricCreate,
    request: Request,
    idempotency_key: IdemKey = None,
    key: KeyInfo = KEY,
) -> JSONResponse:
    """Define what usage events of one code add up to over a period (admin)."""

    def work() -> MetricOut:
        metric_id = catalog.create_metric(
            deps.sessions, code=body.code, name=body.name, aggregation=body.aggregation,
            property=body.property,
        )  # fmt: skip
        return catalog.get_metric(deps.sessions, metric_id, MetricOut.model_validate)

    return await create(deps, request, key, idempotency_key, work)


@router.get("/metrics", response_model=Page[MetricOut])
def list_metrics(
    deps: DepsDep, _: KeyInfo = KEY, limit: Limit = 10, starting_after: After = None
) -> Page[MetricOut]:
    return paged_out(
        MetricOut,
        catalog.list_metrics(
            deps.sessions, MetricOut.model_validate, limit=limit, starting_after=starting_after
        ),
    )


@router.get("/metrics/{metric_id}", response_model=MetricOut)
def get_metric(deps: DepsDep, metric_id: PathId, _: KeyInfo = KEY) -> MetricOut:
    return catalog.get_metric(deps.sessions, metric_id, MetricOut.model_validate)


# -- tax rates --------------------------------------------------------------------


@router.post("/tax-rates", status_code=201, response_model=TaxRateOut, responses=IDEMPOTENT)
async def create_tax_rate(
    deps: DepsDep,
    body: TaxRateCreate,
    request: Request,
    idempotency_key: IdemKey = None,
    key: KeyInfo = KEY,
) -> JSONResponse:
    """A tax rate for prices or customers, e.g. 消費税 10% or 8% (reduced) (admin)."""

    def work() -> TaxRateOut:
        rate_id = catalog.create_tax_rate(
            deps.sessions, name=body.name, percentage=body.percentage, inclusive=body.inclusive,
            jurisdiction=body.jurisdiction, reduced=body.reduced,
        )  # fmt: skip
        return catalog.get_tax_rate(deps.sessions, rate_id, TaxRateOut.model_validate)

    return await create(deps, request, key, idempotency_key, work)


@router.get("/tax-rates", response_model=Page[TaxRateOut])
def list_tax_rates(
    deps: DepsDep, _: KeyInfo = KEY, limit: Limit = 10, starting_after: After = None
) -> Page[TaxRateOut]:
    return paged_out(
        TaxRateOut,
        catalog.list_tax_rates(
            deps.sessions, TaxRateOut.model_validate, limit=limit, starting_after=starting_after
        ),
    )


@router.get("/tax-rates/{tax_rate_id}", response_model=TaxRateOut)
def get_tax_rate(deps: DepsDep, tax_rate_id: PathId, _: KeyInfo = KEY) -> TaxRateOut:
    return catalog.get_tax_rate(deps.sessions, tax_rate_id, TaxRateOut.model_validate)


# -- coupons ----------------------------------------------------------------------


@router.post("/coupons", status_code=201, response_model=CouponOut, responses=IDEMPOTENT)
async def create_coupon(
    deps: DepsDep,
    body: CouponCreate,
    request: Request,
    idempotency_key: IdemKey = None,
    key: KeyInfo = KEY,
) -> JSONResponse:
    """A percentage or fixed-amount coupon, once, for N periods or forever (admin)."""

    def work() -> CouponOut:
        coupon_id = catalog.create_coupon(
            deps.sessions, code=body.code, name=body.name, duration=body.duration,
            percent_off=body.percent_off, amount_off=body.amount_off,
            currency=body.currency, duration_in_periods=body.duration_in_periods,
            redeem_by=body.redeem_by, max_redemptions=body.max_redemptions,
        )  # fmt: skip
        return catalog.get_coupon(deps.sessions, coupon_id, CouponOut.model_validate)

    return await create(deps, request, key, idempotency_key, work)


@router.get("/coupons", response_model=Page[CouponOut])
def list_coupons(
    deps: DepsDep, _: KeyInfo = KEY, limit: Limit = 10, starting_after: After = None
) -> Page[CouponOut]:
    return paged_out(
        CouponOut,
        catalog.list_coupons(
            deps.sessions, CouponOut.model_validate, limit=limit, starting_after=starting_after
        ),
    )


@router.get("/coupons/{coupon_id}", response_model=CouponOut)
def get_coupon(deps: DepsDep, coupon_id: PathId, _: KeyInfo = KEY) -> CouponOut:
    return catalog.get_coupon(deps.sessions, coupon_id, CouponOut.model_validate)


# -- what a subscription holds ------------------------------------------------------


@router.post(
    "/subscriptions/{subscription_id}/discounts",
    status_code=201,
    response_model=Redemption,
    responses=IDEMPOTENT,
)
async def redeem_coupon(
    deps: DepsDep,
    subscription_id: PathId,
    body: CouponRedeem,
    request: Request,
    idempotency_key: IdemKey = None,
    key: KeyInfo = KEY,
) -> JSONResponse:
    """Apply a coupon from the subscription's next period invoice."""

    def work() -> Redemption:
        subscription_service.get_subscription(deps.sessions, subscription_id, lambda _: None)
        redemption = catalog.redeem_coupon(
            deps.sessions, subscription_id=subscription_id, code=body.code
        )
        return Redemption(id=redemption, subscription_id=subscription_id, coupon=body.code)

    return await create(deps, request, key, idempotency_key, work)


@router.post(
    "/subscriptions/{subscription_id}/items",
    status_code=201,
    response_model=ItemOut,
    responses=IDEMPOTENT,
)
async def add_item(
    deps: DepsDep,
    subscription_id: PathId,
    body: ItemCreate,
    request: Request,
    idempotency_key: IdemKey = None,
    key: KeyInfo = KEY,
) -> JSONResponse:
    """Add a price (a metered charge or an add-on) from the next invoice on."""

    def work() -> ItemOut:
        subscription_service.get_subscription(deps.sessions, subscription_id, lambda _: None)
        item_id = catalog.add_item(
            deps.sessions,
            subscription_id=subscription_id,
            price_id=body.price_id,
            quantity=body.quantity,
        )
        return ItemOut(
            id=item_id,
            subscription_id=subscription_id,
            price_id=body.price_id,
            quantity=body.quantity,
        )

    return await create(deps, request, key, idempotency_key, work)
