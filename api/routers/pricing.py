"""Billable metrics, tax rates and coupons (admin), and what a subscription holds besides
its plan: metered prices and add-ons, and redeemed coupons (service or support)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.billing_schemas import (
    CouponCreate,
    CouponOut,
    CouponRedeem,
    ItemCreate,
    ItemOut,
    MetricCreate,
    MetricOut,
    Redemption,
    TaxRateCreate,
    TaxRateOut,
)
from api.deps import After, Deps, IdemKey, Limit, PathId
from api.errors import RESPONSES, ApiError
from api.idempotency import RESPONSES as IDEMPOTENT
from api.idempotency import once
from api.lookups import load_subscription, paged
from api.schemas import Page
from kakin.services import catalog
from kakin.services.api_keys import KeyInfo
from models import repositories as repo
from models.tables import BillableMetric, Coupon, TaxRate

M = TypeVar("M", bound=BaseModel)


def _refused(work: Callable[[], M]) -> M:
    """Run a catalog change; its refusal is a 422 (a 404 when it names a missing row)."""
    try:
        return work()
    except catalog.CatalogError as error:
        message = str(error)
        raise ApiError(404 if "does not exist" in message else 422, message) from None
    except repo.NotFoundError as error:
        raise ApiError(404, str(error)) from None


def router(deps: Deps) -> APIRouter:
    v1 = APIRouter(prefix="/v1", responses=RESPONSES, tags=["pricing"])
    sessions = deps.sessions

    async def create(
        request: Request, key: KeyInfo, idempotency_key: str | None, work: Callable[[], M]
    ) -> JSONResponse:
        return await once(
            request,
            sessions,
            key,
            idempotency_key,
            status=201,
            work=lambda: run_in_threadpool(_refused, work),
        )

    def listed(model: Any, out: type[M], limit: int, after: str | None) -> Page[M]:
        with sessions() as session:
            rows, more = paged(lambda: repo.page(session, model, limit=limit, starting_after=after))
            return Page[out](  # type: ignore[valid-type]
                data=[out.model_validate(row) for row in rows], has_more=more
            )

    def one(model: Any, out: type[M], row_id: str, what: str) -> M:
        with sessions() as session:
            row = session.get(model, row_id)
            if row is None:
                raise ApiError(404, f"{what} {row_id!r} does not exist")
            return out.model_validate(row)

    # -- metrics --------------------------------------------------------------------

    @v1.post("/metrics", status_code=201, response_model=MetricOut, responses=IDEMPOTENT)
    async def create_metric(
        body: MetricCreate,
        request: Request,
        idempotency_key: IdemKey = None,
        key: KeyInfo = deps.key,
    ) -> JSONResponse:
        """Define what usage events of one code add up to over a period (admin)."""

        def work() -> MetricOut:
            metric_id = catalog.create_metric(
                sessions, code=body.code, name=body.name, aggregation=body.aggregation,
                property=body.property,
            )  # fmt: skip
            return one(BillableMetric, MetricOut, metric_id, "Metric")

        return await create(request, key, idempotency_key, work)

    @v1.get("/metrics", response_model=Page[MetricOut])
    def list_metrics(
        _: KeyInfo = deps.key, limit: Limit = 10, starting_after: After = None
    ) -> Page[MetricOut]:
        return listed(BillableMetric, MetricOut, limit, starting_after)

    @v1.get("/metrics/{metric_id}", response_model=MetricOut)
    def get_metric(metric_id: PathId, _: KeyInfo = deps.key) -> MetricOut:
        return one(BillableMetric, MetricOut, metric_id, "Metric")

    # -- tax rates --------------------------------------------------------------------

    @v1.post("/tax-rates", status_code=201, response_model=TaxRateOut, responses=IDEMPOTENT)
    async def create_tax_rate(
        body: TaxRateCreate,
        request: Request,
        idempotency_key: IdemKey = None,
        key: KeyInfo = deps.key,
    ) -> JSONResponse:
        """A tax rate for prices or customers, e.g. 消費税 10% or 8% (reduced) (admin)."""

        def work() -> TaxRateOut:
            rate_id = catalog.create_tax_rate(
                sessions, name=body.name, percentage=body.percentage, inclusive=body.inclusive,
                jurisdiction=body.jurisdiction, reduced=body.reduced,
            )  # fmt: skip
            return one(TaxRate, TaxRateOut, rate_id, "Tax rate")

        return await create(request, key, idempotency_key, work)

    @v1.get("/tax-rates", response_model=Page[TaxRateOut])
    def list_tax_rates(
        _: KeyInfo = deps.key, limit: Limit = 10, starting_after: After = None
    ) -> Page[TaxRateOut]:
        return listed(TaxRate, TaxRateOut, limit, starting_after)

    @v1.get("/tax-rates/{tax_rate_id}", response_model=TaxRateOut)
    def get_tax_rate(tax_rate_id: PathId, _: KeyInfo = deps.key) -> TaxRateOut:
        return one(TaxRate, TaxRateOut, tax_rate_id, "Tax rate")

    # -- coupons ----------------------------------------------------------------------

    @v1.post("/coupons", status_code=201, response_model=CouponOut, responses=IDEMPOTENT)
    async def create_coupon(
        body: CouponCreate,
        request: Request,
        idempotency_key: IdemKey = None,
        key: KeyInfo = deps.key,
    ) -> JSONResponse:
        """A percentage or fixed-amount coupon, once, for N periods or forever (admin)."""

        def work() -> CouponOut:
            coupon_id = catalog.create_coupon(
                sessions, code=body.code, name=body.name, duration=body.duration,
                percent_off=body.percent_off, amount_off=body.amount_off,
                currency=body.currency, duration_in_periods=body.duration_in_periods,
                redeem_by=body.redeem_by, max_redemptions=body.max_redemptions,
            )  # fmt: skip
            return one(Coupon, CouponOut, coupon_id, "Coupon")

        return await create(request, key, idempotency_key, work)

    @v1.get("/coupons", response_model=Page[CouponOut])
    def list_coupons(
        _: KeyInfo = deps.key, limit: Limit = 10, starting_after: After = None
    ) -> Page[CouponOut]:
        return listed(Coupon, CouponOut, limit, starting_after)

    @v1.get("/coupons/{coupon_id}", response_model=CouponOut)
    def get_coupon(coupon_id: PathId, _: KeyInfo = deps.key) -> CouponOut:
        return one(Coupon, CouponOut, coupon_id, "Coupon")

    # -- what a subscription holds ------------------------------------------------------

    @v1.post(
        "/subscriptions/{subscription_id}/discounts",
        status_code=201,
        response_model=Redemption,
        responses=IDEMPOTENT,
    )
    async def redeem_coupon(
        subscription_id: PathId,
        body: CouponRedeem,
        request: Request,
        idempotency_key: IdemKey = None,
        key: KeyInfo = deps.key,
    ) -> JSONResponse:
        """Apply a coupon from the subscription's next period invoice."""

        def work() -> Redemption:
            with sessions() as session:
                load_subscription(session, subscription_id)
            redemption = catalog.redeem_coupon(
                sessions, subscription_id=subscription_id, code=body.code
            )
            return Redemption(id=redemption, subscription_id=subscription_id, coupon=body.code)

        return await create(request, key, idempotency_key, work)

    @v1.post(
        "/subscriptions/{subscription_id}/items",
        status_code=201,
        response_model=ItemOut,
        responses=IDEMPOTENT,
    )
    async def add_item(
        subscription_id: PathId,
        body: ItemCreate,
        request: Request,
        idempotency_key: IdemKey = None,
        key: KeyInfo = deps.key,
    ) -> JSONResponse:
        """Add a price (a metered charge or an add-on) from the next invoice on."""

        def work() -> ItemOut:
            with sessions() as session:
                load_subscription(session, subscription_id)
            item_id = catalog.add_item(
                sessions,
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

        return await create(request, key, idempotency_key, work)

    return v1
