"""The catalog: products and their prices, of any pricing model. Admin keys change it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.deps import KEY, After, Deps, DepsDep, IdemKey, Limit, PathId
from api.errors import RESPONSES, ApiError
from api.idempotency import RESPONSES as IDEMPOTENT
from api.idempotency import once
from api.lookups import load_price, paged
from api.schemas import Page, PriceCreate, PriceOut
from kakin.services import catalog
from kakin.services.api_keys import KeyInfo
from models import repositories as repo
from models.tables import Price

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
        raise ApiError(422, str(error)) from None
    with deps.sessions() as session:
        return PriceOut.of(load_price(session, price_id))


@router.get("/prices", response_model=Page[PriceOut])
def list_prices(
    deps: DepsDep, _: KeyInfo = KEY, limit: Limit = 10, starting_after: After = None
) -> Page[PriceOut]:
    with deps.sessions() as session:
        rows, more = paged(
            lambda: repo.page(session, Price, limit=limit, starting_after=starting_after)
        )
        return Page[PriceOut](data=[PriceOut.of(row) for row in rows], has_more=more)


@router.get("/prices/{price_id}", response_model=PriceOut)
def get_price(deps: DepsDep, price_id: PathId, _: KeyInfo = KEY) -> PriceOut:
    with deps.sessions() as session:
        return PriceOut.of(load_price(session, price_id))


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
        work=lambda: run_in_threadpool(do_archive_price, deps, price_id),
    )


def do_archive_price(deps: Deps, price_id: str) -> PriceOut:
    with deps.sessions() as session:
        row = load_price(session, price_id)
        row.active = False
        session.commit()
        return PriceOut.of(row)
