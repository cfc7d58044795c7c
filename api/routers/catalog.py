"""The catalog: products and their prices, of any pricing model. Admin keys change it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.deps import KEY, After, Deps, DepsDep, IdemKey, Limit, PathId
from api.errors import RESPONSES, ApiError
from api.idempotency import RESPONSES as IDEMPOTENT
from api.idempotency import once
from api.requests.catalog import PriceCreate
from kakin.services import catalog
from kakin.services.api_keys import KeyInfo
from kakin.views.catalog import PriceOut
from kakin.views.common import Page

router = APIRouter(prefix="/v1", responses=RESPONSES, tags=["catalog"])


@router.post("/prices", status_code=201, response_model=PriceOut, responses=IDEMPOTENT)
async def create_price(
    deps: DepsDep,
    body: PriceCreate,
    request: Request,
    idempotency_key: IdemKey = None,
    key: KeyInfo = KEY,
) -> JSONResponse:
    """Create a product and its price: flat, per unit, graduated, volume or package,
    metered when it names a metric (admin)."""
    return await once(
        request,
        deps.sessions,
        key,
        idempotency_key,
        status=201,
        work=lambda: run_in_threadpool(do_create_price, deps, body),
    )


def do_create_price(deps: Deps, body: PriceCreate) -> PriceOut:
    try:
        price_id = catalog.create_price(
            deps.sessions,
            product_name=body.product_name,
            nickname=body.nickname,
            currency=body.currency,
            unit_amount=body.unit_amount,
            interval=body.interval,
            interval_count=body.interval_count,
            pricing_model=body.pricing_model,
            unit_amount_decimal=body.unit_amount_decimal,
            package_size=body.package_size,
            tiers=None if body.tiers is None else [t.model_dump() for t in body.tiers],
            metric_code=body.metric,
            tax_rate_ids=body.tax_rate_ids,
        )
    except catalog.CatalogError as error:
        # 422 even for a missing product or tax rate: the body names them.
        raise ApiError(422, str(error)) from None
    return catalog.get_price(deps.sessions, price_id, PriceOut.of)


@router.get("/prices", response_model=Page[PriceOut])
def list_prices(
    deps: DepsDep, _: KeyInfo = KEY, limit: Limit = 10, starting_after: After = None
) -> Page[PriceOut]:
    rows, more = catalog.list_prices(
        deps.sessions, PriceOut.of, limit=limit, starting_after=starting_after
    )
    return Page[PriceOut](data=rows, has_more=more)


@router.get("/prices/{price_id}", response_model=PriceOut)
def get_price(deps: DepsDep, price_id: PathId, _: KeyInfo = KEY) -> PriceOut:
    return catalog.get_price(deps.sessions, price_id, PriceOut.of)


@router.post("/prices/{price_id}/archive", response_model=PriceOut, responses=IDEMPOTENT)
async def archive_price(
    deps: DepsDep,
    price_id: PathId,
    request: Request,
    idempotency_key: IdemKey = None,
    key: KeyInfo = KEY,
) -> JSONResponse:
    """Archive a price: it takes no new subscriptions; running ones continue."""
    return await once(
        request,
        deps.sessions,
        key,
        idempotency_key,
        status=200,
        work=lambda: run_in_threadpool(catalog.archive_price, deps.sessions, price_id, PriceOut.of),
    )
