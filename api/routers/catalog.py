"""The catalog: products and their prices, of any pricing model. Admin keys change it."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import KEY, Deps, DepsDep, PageDep, PathId
from api.errors import RESPONSES, ApiError
from api.idempotency import RESPONSES as IDEMPOTENT
from api.requests.catalog import PriceCreate
from api.writes import WriteDep
from kakin.services import catalog
from kakin.services.api_keys import KeyInfo
from kakin.views.catalog import PriceOut
from kakin.views.common import Page

router = APIRouter(prefix="/v1", responses=RESPONSES, tags=["catalog"])


@router.post("/prices", status_code=201, response_model=PriceOut, responses=IDEMPOTENT)
async def create_price(body: PriceCreate, write: WriteDep) -> JSONResponse:
    """Create a product and its price: flat, per unit, graduated, volume or package,
    metered when it names a metric (admin)."""
    return await write.run_sync(do_create_price, write.deps, body, status=201)


def do_create_price(deps: Deps, body: PriceCreate) -> PriceOut:
    try:
        price_id = catalog.create_price(deps.sessions, **body.service_arguments())
    except catalog.CatalogError as error:
        # 422 even for a missing product or tax rate: the body names them.
        raise ApiError(422, str(error)) from None
    return catalog.get_price(deps.sessions, price_id, PriceOut.of)


@router.get("/prices", response_model=Page[PriceOut])
def list_prices(deps: DepsDep, page: PageDep, _: KeyInfo = KEY) -> Page[PriceOut]:
    return page.read(PriceOut, catalog.list_prices, deps.sessions, PriceOut.of)


@router.get("/prices/{price_id}", response_model=PriceOut)
def get_price(deps: DepsDep, price_id: PathId, _: KeyInfo = KEY) -> PriceOut:
    return catalog.get_price(deps.sessions, price_id, PriceOut.of)


@router.post("/prices/{price_id}/archive", response_model=PriceOut, responses=IDEMPOTENT)
async def archive_price(price_id: PathId, write: WriteDep) -> JSONResponse:
    """Archive a price: it takes no new subscriptions; running ones continue."""
    return await write.run_sync(catalog.archive_price, write.sessions, price_id, PriceOut.of)
