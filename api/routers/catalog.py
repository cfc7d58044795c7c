"""The catalog: products and their prices, of any pricing model. Admin keys change it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.deps import After, Deps, IdemKey, Limit, PathId
from api.errors import RESPONSES, ApiError
from api.idempotency import RESPONSES as IDEMPOTENT
from api.idempotency import once
from api.lookups import load_price, paged
from api.schemas import Page, PriceCreate, PriceOut
from kakin.services import catalog
from kakin.services.api_keys import KeyInfo
from models import repositories as repo
from models.tables import Price


def router(deps: Deps) -> APIRouter:
    v1 = APIRouter(prefix="/v1", responses=RESPONSES, tags=["catalog"])
    sessions = deps.sessions

    @v1.post("/prices", status_code=201, response_model=PriceOut, responses=IDEMPOTENT)
    async def create_price(
        body: PriceCreate,
        request: Request,
        idempotency_key: IdemKey = None,
        key: KeyInfo = deps.key,
    ) -> JSONResponse:
        """Create a product and its price: flat, per unit, graduated, volume or package,
        metered when it names a metric (admin)."""
        return await once(
            request,
            sessions,
            key,
            idempotency_key,
            status=201,
            work=lambda: run_in_threadpool(do_create_price, body),
        )

    def do_create_price(body: PriceCreate) -> PriceOut:
        try:
            price_id = catalog.create_price(
                sessions,
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
        with sessions() as session:
            return PriceOut.of(load_price(session, price_id))

    @v1.get("/prices", response_model=Page[PriceOut])
    def list_prices(
        _: KeyInfo = deps.key, limit: Limit = 10, starting_after: After = None
    ) -> Page[PriceOut]:
        with sessions() as session:
            rows, more = paged(
                lambda: repo.page(session, Price, limit=limit, starting_after=starting_after)
            )
            return Page[PriceOut](data=[PriceOut.of(row) for row in rows], has_more=more)

    @v1.get("/prices/{price_id}", response_model=PriceOut)
    def get_price(price_id: PathId, _: KeyInfo = deps.key) -> PriceOut:
        with sessions() as session:
            return PriceOut.of(load_price(session, price_id))

    @v1.post("/prices/{price_id}/archive", response_model=PriceOut, responses=IDEMPOTENT)
    async def archive_price(
        price_id: PathId,
        request: Request,
        idempotency_key: IdemKey = None,
        key: KeyInfo = deps.key,
    ) -> JSONResponse:
        """Archive a price: it takes no new subscriptions; running ones continue."""
        return await once(
            request,
            sessions,
            key,
            idempotency_key,
            status=200,
            work=lambda: run_in_threadpool(do_archive_price, price_id),
        )

    def do_archive_price(price_id: str) -> PriceOut:
        with sessions() as session:
            row = load_price(session, price_id)
            row.active = False
            session.commit()
            return PriceOut.of(row)

    return v1
